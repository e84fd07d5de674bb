"""Where a job trains: TensorFlow's threads, GPUs and determinism, set once per process.

A job that asks for GPUs (``study.gpus``, the rules' ``gpu`` resource) trains on one:

- A job that sees one GPU (SLURM gave it one, or the machine has one) trains on it.
- A job that sees several claims a free one through a lock file (:func:`claim_gpu`) and
  hides the others. On a machine with several GPUs and no scheduler,
  ``snakemake --resources gpu=N`` runs at most N GPU jobs at once, and the claims spread them
  over N GPUs instead of piling them onto the first. On SLURM, a grouped job holds one GPU
  per member (the group's ``gpu`` resource is their sum) and every member sees all of them;
  the claims give each member its own. The locks of a SLURM job live in a folder of that job
  (``SLURM_JOB_ID``), since two jobs on one node may both see their own GPUs as 0..n-1.
  A lock is an ``flock`` held for the life of the process, so a killed job frees its GPU.
- ``gpus=0`` asks the scheduler for no GPU; TensorFlow still uses a GPU it can see (a
  workstation's, say).
- A job that asked for a GPU and sees none stops with an error before it trains, instead of
  running silently on the CPU.

Memory growth is on for every GPU, so that several jobs can share one device (TensorFlow
otherwise reserves nearly all of its memory for the first process).

Quiet logs: TensorFlow's C++ start-up messages (``cudart_stub ... Could not find cuda drivers``,
``failed call to cuInit``, ``NodeDef mentions attribute ...``) read like failures on a machine
without a GPU and bury the job's own lines. :func:`import_tensorflow` silences them: the C++ log
level is set to errors-hidden (``TF_CPP_MIN_LOG_LEVEL=3``) and the few lines printed during the
import itself, before that level applies, go to ``/dev/null``. ``LRSTUDY_VERBOSE=1`` (``lrstudy
--verbose``) brings all of them back. The device a job trains on is printed once, plainly
("training on CPU (no GPU visible)").
"""

from __future__ import annotations

import fcntl
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from pipeline.invocation import native_stderr_silenced, verbose

#: Whether this process printed its device line already.
_device_printed: List[str] = []


def import_tensorflow() -> Any:
    """Import TensorFlow (once per process) without its C++ start-up noise, unless
    :func:`pipeline.invocation.verbose`; returns the module."""
    import sys

    if "tensorflow" not in sys.modules and not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_silenced("tensorflow" not in sys.modules and not verbose()):
        import tensorflow as tf
    return tf


#: Machine-wide folder of GPU lock files (one per user, so that users don't share locks).
GPU_LOCK_DIR = Path(tempfile.gettempdir()) / f"lrstudy-gpu-locks-{os.getuid()}"

# GPU locks held by this process, (index, open lock file): closing the file (at exit, or when
# the process is killed) releases the GPU.
_held_locks: List[Tuple[int, Any]] = []


def gpu_lock_dir() -> Path:
    """The lock folder for this process' GPUs: one per SLURM job, else one per machine and user."""
    job = os.environ.get("SLURM_JOB_ID")
    return GPU_LOCK_DIR / f"slurm-job{job}" if job else GPU_LOCK_DIR


def claim_gpu(count: int, lock_dir: Optional[Path] = None) -> Optional[int]:
    """Claim the first of ``count`` GPUs that no other process holds; returns its index, or
    None when all are taken (more GPU jobs than GPUs: the caller shares the first one)."""
    lock_dir = lock_dir if lock_dir is not None else gpu_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        handle = open(lock_dir / f"gpu{index}.lock", "a+")  # noqa: SIM115 - held for the process' life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held_locks.append((index, handle))
        return index
    return None


def add_device_arguments(parser: Any) -> None:
    """The ``--threads`` and ``--gpus`` options of every TensorFlow job's command line (an
    ``argparse`` parser), filled from the rule's ``{threads}`` and ``{resources.gpu}``."""
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra/inter-op threads")
    parser.add_argument(
        "--gpus", type=int, default=0, help="GPUs the job asked for (the rule's gpu resource): with 1, a missing GPU is an error"
    )


def configure_tensorflow(threads: Optional[int] = None, deterministic: bool = True, gpus: int = 0) -> str:
    """Set up TensorFlow once per process; returns the device training runs on.

    Thread counts follow the job's ``threads`` so that parallel jobs don't oversubscribe the
    cores; they only take effect if set before TensorFlow is imported. ``gpus`` is what the
    job asked the scheduler for: with ``gpus >= 1`` a missing GPU is an error (see the
    module's docstring for how the GPU is chosen).
    """
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = import_tensorflow()

    if threads:
        # The environment variables cover thread pools created at import; the API call makes
        # the setting explicit and readable back (it is recorded in each summary.json).
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already ran in this process: its pools are fixed now
            pass
    gpus_seen = tf.config.list_physical_devices("GPU")
    if gpus and not gpus_seen:
        raise RuntimeError(
            f"study.gpus={gpus}: this job asked for a GPU, but TensorFlow sees none "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!s}, "
            f"TensorFlow built with CUDA: {tf.test.is_built_with_cuda()}). "
            "Run on a machine or partition with GPUs, or set study.gpus=0 to train on the CPU."
        )
    chosen = 0
    if len(gpus_seen) > 1 and _held_locks:  # configured before in this process: keep its GPU
        chosen = _held_locks[0][0]
    elif len(gpus_seen) > 1:
        claimed = claim_gpu(len(gpus_seen))
        chosen = claimed if claimed is not None else 0
        try:
            tf.config.set_visible_devices([gpus_seen[chosen]], "GPU")
        except RuntimeError:  # already initialised in this process: keep its devices
            chosen = 0
            _release_locks()
    for gpu in gpus_seen:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: growth was set before
            pass
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if gpus_seen:
        details = tf.config.experimental.get_device_details(gpus_seen[chosen])
        device = f"GPU:{chosen} ({details.get('device_name', 'unknown')})"
        plain = f"training on {device}"
    else:
        device = f"CPU ({platform.processor() or platform.machine()})"
        plain = "training on CPU (no GPU visible)"
    if not _device_printed:
        _device_printed.append(plain)
        print(plain, flush=True)
    return device


def _release_locks() -> None:
    while _held_locks:
        _held_locks.pop()[1].close()


def thread_settings() -> Dict[str, int]:
    """TensorFlow's intra/inter-op thread counts in this process (0 = TensorFlow's default: all cores)."""
    import tensorflow as tf

    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }
