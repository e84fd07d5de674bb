"""Training with Keras: one run (``run``; ``python -m pipeline.training.run`` is the single-run
app), a training job's runs (``cohort``; ``python -m pipeline.training`` is the job), schedules,
models, datasets (``data``; ``python -m pipeline.training.data`` builds the study's .npz),
resumable state (``resume``) and the device set-up (``device``).

TensorFlow is imported inside functions only, after ``device.configure_tensorflow`` has set
the thread counts; the Snakefile imports light parts of this package.
"""
