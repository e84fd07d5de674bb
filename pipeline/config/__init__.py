"""The study: structured schemas with every default and each field's constraints (``schema``,
checked by the engine in ``constraints``), composition with Hydra (``compose``), validation of
the composed values (``validation``), learning rates and run paths (``rates``), and the study
file written beside the results (``studyfile``; ``python -m pipeline.config``). Pure Python: no
TensorFlow.
"""
