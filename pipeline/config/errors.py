"""The one error type of a study configuration that cannot run."""

from __future__ import annotations


class StudyConfigError(ValueError):
    """A study configuration that cannot run; the message names the key and the valid choices."""
