"""Training with Keras: one run (``run``; ``python -m pipeline.training.run`` is the single-run
app), the population engine (``population``: a job's runs as one compiled program; its jobs in
``population_job``), a training
job (``cohort``; ``python -m pipeline.training`` is the job, for either engine), schedules,
optimizers, models, datasets (``data``; ``python -m pipeline.training.data`` builds the study's .npz),
resumable state (``resume``), the Keras callbacks of a run (``callbacks``) and the device
set-up (``device``).

TensorFlow is imported only after ``device.configure_tensorflow`` has set the thread counts:
inside functions, or at the top of the modules that need Keras throughout (``schedules``,
``callbacks``), which are in turn imported only inside functions. The Snakefile imports light
parts of this package.
"""
