"""The study: structured schemas (``schema``), composition and validation with Hydra
(``compose``), learning rates and run paths (``rates``), and the study file written beside the
results (``studyfile``; ``python -m pipeline.config``). Pure Python: no TensorFlow.
"""
