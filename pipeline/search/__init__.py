"""Hyperparameter search with Optuna: job specs, samplers and pruners (``spec``), the shared
journal storage and its budget lock (``storage``), one trial (``trial``), the worker and
summary commands (``worker``; ``python -m pipeline.search worker|summary``) and the trials
table (``summary``).
"""
