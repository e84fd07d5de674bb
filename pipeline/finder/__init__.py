"""The LR range test: the pure ramp, smoothing and suggestion rules (``suggest``) apart
from the TensorFlow test itself (``range_test``; ``python -m pipeline.finder`` is the job).
"""
