"""Examples of a user's own components plugged in through ``_target_`` (see README)."""
