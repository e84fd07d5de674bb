"""The study's tables and what they say: aggregation of the run folders into runs.csv,
curves.csv and best.csv (``aggregate``; ``python -m pipeline.analysis``), the fit diagnosis of
each run (``diagnosis``), the report's warnings (``advice``), the range test against the grid
(``finder_vs_grid``), the method comparison (``methods``), the estimated optimum and LR
sensitivity (``optimum``) and the confirmation on fresh seeds (``confirm``). Pure
pandas/NumPy (SciPy for the confirmation's t quantile).
"""
