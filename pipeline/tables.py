"""The tables the stages hand each other: their columns, in one place.

``history.csv`` is written by training and read by the aggregation; a run is identified in
every study table by :data:`RUN_KEYS`.
"""

from __future__ import annotations

from typing import List

#: One row per epoch of a run (``runs/<...>/history.csv``), in file order.
HISTORY_COLUMNS: List[str] = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]

#: The columns that identify one run in runs.csv and curves.csv.
RUN_KEYS: List[str] = ["optimizer", "schedule", "lr", "seed"]
