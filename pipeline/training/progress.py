"""The line a training or search job logs after each epoch (both engines), e.g.

    epoch 12/30: 47 of 54 runs still training, best val_loss so far 0.3127, 0.41 s per epoch

Light: no TensorFlow or Keras import (the population module, which the Snakefile reaches, imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class EpochProgress:
    """What a population job logs after each epoch (``train_population``'s ``on_epoch``)."""

    epoch: int
    epochs: int
    #: Members that trained in this epoch, and those of them that go on to the next.
    trained: int
    still_training: int
    #: The lowest finite val_loss of any member so far (NaN before there is one).
    best_val_loss: float
    #: The epoch's wall time.
    seconds: float

    def line(self) -> str:
        best = f"{self.best_val_loss:.4g}" if math.isfinite(self.best_val_loss) else "none finite yet"
        return (
            f"epoch {self.epoch}/{self.epochs}: {self.still_training} of {self.trained} runs still training, "
            f"best val_loss so far {best}, {self.seconds:.2f} s per epoch"
        )
