"""The population engine: a training job's runs advance together, as one compiled program.

A *population* is a set of runs (its *members*) that share the dataset, the model, the
optimizer and its settings, the batch size, the number of epochs and the training switches, and
differ in learning rate, seed (initial weights and batch order) and schedule. Each member is
its own Keras model, built from its seed and compiled with its own Keras optimizer, as
:func:`pipeline.training.run.build_run` builds every run. What changes is how they train:

- One member's Keras ``Model.train_step`` (Keras' loss, gradient, optimizer update and metrics)
  is traced once, as a function TensorFlow keeps as one callable unit, and so is its
  ``test_step``. Every member runs that same traced step, bound to its own variables (model,
  optimizer slots and step counter, metrics): model tracing, graph optimisation and kernel
  set-up are paid once per population instead of once per run (measured on the default
  study's 54-member jobs: ~0.6 s per member before, ~0.1 s now).
- One ``tf.function`` runs a whole epoch: each step gathers each seed's ``(seed, epoch)`` batch
  and calls every member's step on its own batch; a second one runs the validation set.
- A member's rate is a variable of its optimizer, set before each step to what the member's own
  Keras schedule gives at that step (computed for every step up front, in one program:
  :func:`pipeline.training.schedules.schedule_table`), the value the per-run engine's
  optimizer computes inside its step.

Why one shared step and not a vectorised (``vmap``) population: on a CPU, batched kernels are
no faster per member than one member's kernels (vmapped convolutions are slower), and they
round differently, so a member's numbers would depend on who shares its population. Here every
member runs the same graph on its own state, exactly as it would alone: a member's history is
bit-identical whichever other members train beside it, and (as Keras' own ``fit`` runs the same
``train_step``/``test_step``) equal to the per-run engine's history up to the order in which
TensorFlow's graph optimiser happens to fuse the ops (in practice identical, or within a few
float32 ulps). The shared step keeps only variables per member; a model whose traced step
captures any other value that differs between members (checked on two members of different
seeds) is not trained as a population.

What every member keeps from the per-run engine: its run folder (``history.csv`` with the rate
in force, ``summary.json``, ``config.yaml``), divergence as a result (a member whose epoch loss
is non-finite or above ``divergence_factor`` × its untrained loss stops at that epoch; the
others go on), its state saved at every epoch end (``resume.npz``, written on a background
thread while the next epoch trains: a killed job resumes every member from its last completed
epoch), skipping when complete, device and thread counts. ``seconds`` is a member's *share* of
the population's time: each epoch's wall time divided among the members that trained in it,
plus an equal share of building and tracing.

The engine's run configs say ``training.engine: population`` (and so have config hashes of
their own): a folder trained or half-trained by one engine is never resumed or skipped by the
other (their saved states differ too: a member's optimizer holds a rate variable).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from pipeline.training.optimizers import evaluation_weights
from pipeline.training.progress import EpochProgress

#: The keys of a run config's ``training`` section that may differ between members.
MEMBER_KEYS = ("lr", "seed")

#: Rebuild (retrace) the epoch function for the members still training once this share of
#: the members it was built for have stopped (diverged): their steps would be wasted work.
RETRACE_WHEN_STOPPED = 1 / 3


class PopulationError(ValueError):
    """Runs that cannot train as one population (they differ in more than rate, seed and
    schedule)."""


def population_key(run_config: Mapping[str, Any]) -> str:
    """What members of one population share: the run config without what may differ."""
    # The optimizer's settings are shared too: the members run one traced step, in which
    # they are constants. Only the rate (a variable set at every step) and the seed differ.
    shared = {key: value for key, value in run_config.items() if key not in ("study", "schedule")}
    shared["training"] = {key: value for key, value in run_config["training"].items() if key not in MEMBER_KEYS}
    return json.dumps(shared, sort_keys=True, default=str)


def check_population(run_configs: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`PopulationError` naming the first key on which two members disagree."""
    if not run_configs:
        return
    first = json.loads(population_key(run_configs[0]))
    for config in run_configs[1:]:
        other = json.loads(population_key(config))
        if other != first:
            keys = sorted(
                f"{section}.{key}"
                for section in set(first) | set(other)
                for key in set(first.get(section) or {}) | set(other.get(section) or {})
                if (first.get(section) or {}).get(key) != (other.get(section) or {}).get(key)
            )
            raise PopulationError(f"runs differ in {', '.join(keys) or 'their shared settings'}: not one population")


class PopulationUnsupported(RuntimeError):
    """A model the population engine cannot trace as a population (the message says what)."""


@dataclass(eq=False)
class Member:
    """One run of a population, with its Keras model (compiled with its own optimizer)."""

    run_config: Dict[str, Any]
    out_dir: Path
    run_hash: str
    model: Any = None
    schedule: Any = None
    #: The rate the member's schedule gives at each step 0..total steps (float32).
    rates: Any = None
    reference_loss: float = math.nan
    #: A ``plateau`` schedule's callback (pipeline.training.callbacks.Plateau), else None.
    plateau: Any = None
    rows: List[Dict[str, float]] = field(default_factory=list)
    diverged_epoch: Optional[int] = None
    #: The epoch after which the caller stopped the member (a search's pruner), or None.
    stopped_epoch: Optional[int] = None
    seconds: float = 0.0
    resumed_from_epoch: Optional[int] = None
    steps_per_epoch: int = 0

    @property
    def training(self) -> Dict[str, Any]:
        return self.run_config["training"]

    @property
    def done(self) -> bool:
        return (
            self.diverged_epoch is not None
            or self.stopped_epoch is not None
            or len(self.rows) >= int(self.training["epochs"])
        )

    def variables(self) -> List[Any]:
        """Every variable the member's training and validation steps touch, in a fixed order:
        its model's, its optimizer's and its metrics'."""
        model = self.model
        return [*model.variables, *model.optimizer.variables, *model.metrics_variables]


def _build_member(member: Member, arrays: Mapping[str, Any], reference_losses: Dict[int, float]) -> None:
    """Build and compile a member's model the way the per-run engine does, from its seed,
    with a rate variable in its optimizer; restore its saved state if it has one.

    ``reference_losses``: the untrained loss per seed, filled as members are built (members
    of one seed start from the same weights; measuring it takes ~90 ms a member)."""
    from pipeline.training.pipelines import first_examples
    from pipeline.training.resume import STATE_FILE, load_state
    from pipeline.training.run import build_run

    state_path = member.out_dir / STATE_FILE
    state = load_state(state_path, member.run_hash)
    seed = int(member.training["seed"])
    built = build_run(
        member.run_config, arrays, state, state_path, rate_from_schedule=False, reference_loss=reference_losses.get(seed)
    )
    if not state:
        reference_losses.setdefault(seed, built.reference_loss)
    model = built.model
    member.schedule, member.reference_loss, member.steps_per_epoch = built.schedule, built.reference_loss, built.steps_per_epoch
    member.plateau = built.plateau
    if member.plateau is not None:
        member.plateau.on_train_begin()
    # Keras makes the optimizer's and the metrics' variables lazily, at the first step; the
    # population's shared step needs every member's variables to exist before it is traced
    # (a restored state built the optimizer already).
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    sample_x, sample_y = first_examples(arrays, 1)
    model.compute_metrics(sample_x, sample_y, model(sample_x, training=False))
    model.reset_metrics()
    if state:
        member.rows = list(state["rows"])
        member.diverged_epoch = state["diverged_epoch"]
        member.seconds = float(state["seconds"])
        member.resumed_from_epoch = len(member.rows)
        print(f"{member.out_dir}: resuming after epoch {len(member.rows)} of {member.training['epochs']}", flush=True)
    member.model = model


def _rate_tables(members: Sequence[Member]) -> None:
    """Set each member's ``rates``: its schedule's rate at every step of its run (and one step
    beyond), computed in one program for the population (members that differ only in seed
    share a schedule)."""
    from pipeline.training.schedules import schedule_table

    distinct: Dict[str, int] = {}
    schedules: List[Any] = []
    keys = []
    for member in members:
        key = json.dumps([member.run_config["schedule"], member.training["lr"]], sort_keys=True, default=str)
        if key not in distinct:
            distinct[key] = len(schedules)
            schedules.append(member.schedule)
        keys.append(key)
    if not members:
        return
    total = int(members[0].training["epochs"]) * members[0].steps_per_epoch
    table = schedule_table(schedules, total + 1)
    for member, key in zip(members, keys):
        member.rates = table[:, distinct[key]]


class SharedStep:
    """A step traced once on one model and run on any model of the same structure, bound to
    that model's variables.

    ``function`` is traced with ``input_specs`` as a function TensorFlow keeps as one callable
    unit (``_noinline``: instantiated and optimised once, however many call sites it has);
    ``variables`` are the template's variables it may use (model, optimizer, metrics). Calling
    it with :meth:`bind`'s captures of another model runs the very same graph on that model's
    state: ``ConcreteFunction._call_flat`` is how TensorFlow itself calls a traced function
    with its captured inputs, and a member's variable handles take the template's places. A
    TensorFlow without it raises here, and the caller trains run by run.
    """

    def __init__(self, function: Callable[..., Any], input_specs: Sequence[Any], variables: Sequence[Any], xla: bool = False):
        import tensorflow as tf

        traced = tf.function(function, experimental_attributes={"_noinline": True}, jit_compile=xla)
        self.function = traced.get_concrete_function(*input_specs)
        if not hasattr(self.function, "_call_flat"):
            raise PopulationUnsupported(f"TensorFlow {tf.__version__} cannot call a traced step on another model's variables")
        self._position = {id(variable.handle): index for index, variable in enumerate(variables)}
        self._signature = _signature(variables)

    def constants(self) -> List[Any]:
        """The values the traced step holds besides variables, shared by every model it runs
        on: the captured tensors, and the constants written into its graph (a NumPy array a
        model's code uses becomes one), in graph order, as NumPy arrays."""
        import tensorflow as tf

        values = [np.asarray(value) for value in self.function.captured_inputs if value.dtype != tf.resource]
        graph = self.function.graph.as_graph_def()
        nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
        values += [tf.make_ndarray(node.attr["value"].tensor) for node in nodes if node.op == "Const"]
        return values

    def serves(self, other: "SharedStep") -> bool:
        """Whether this step, traced on one model, computes what ``other`` (the same step traced
        on another model of the same structure) computes: their non-variable values are equal."""
        mine, theirs = self.constants(), other.constants()
        return len(mine) == len(theirs) and all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f") for a, b in zip(mine, theirs)
        )

    def bind(self, variables: Sequence[Any], name: str = "a member") -> List[Any]:
        """The captured inputs that run this step on a model whose variables are ``variables``
        (in the template's order)."""
        import tensorflow as tf

        if _signature(variables) != self._signature:
            raise PopulationUnsupported(f"{name} has other variables (shapes or types) than the traced step's model")
        captures = []
        for value in self.function.captured_inputs:
            index = self._position.get(id(value))
            if index is None and value.dtype == tf.resource:
                raise PopulationUnsupported(f"the model's step uses a variable that is not its model's ({value})")
            captures.append(value if index is None else variables[index].handle)
        return captures

    def __call__(self, inputs: Sequence[Any], captures: Sequence[Any]) -> Any:
        return self.function._call_flat(list(inputs), list(captures))


def _signature(variables: Sequence[Any]) -> List[tuple]:
    return [(tuple(variable.shape), str(variable.dtype)) for variable in variables]


class _Programs:
    """The compiled programs of the members still training: one epoch of training, and one
    pass over the validation set, each as one ``tf.function``.

    One member's ``train_step`` (with the assignment of the step's rate) and ``test_step`` are
    traced once, as functions TensorFlow keeps as one callable unit (``_noinline``); the epoch
    programs call them once per member and step, each call bound to that member's variables.
    Tracing, graph optimisation and kernel set-up are paid once per program instead of once
    per member, and every member runs the very same graph: its numbers cannot depend on which
    other members share its population."""

    def __init__(self, members: Sequence[Member], arrays: Mapping[str, Any], batch_size: int) -> None:
        self.members = list(members)
        self.size = len(self.members)
        self.arrays = arrays
        self.batch_size = batch_size
        self._train_epoch: Any = None
        self._evaluate: Any = None

    def _step_functions(self, member: Member) -> tuple:
        """The shared ``(train, test)`` steps, traced on one member's model."""
        import tensorflow as tf

        model = member.model
        x, y = self.arrays["x_train"], self.arrays["y_train"]
        x_spec = tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype))
        # A user's pipeline has no label array: its batches' labels are int64 (PipelineData.batches).
        y_spec = tf.TensorSpec([None], tf.int64) if y is None else tf.TensorSpec([None, *y.shape[1:]], tf.as_dtype(y.dtype))
        # study.xla: the member's step is compiled by XLA, once for the whole population, where
        # Keras compiles the model with XLA too (``model.jit_compile``: Keras turns it off for
        # layers without XLA support and under op determinism), so both engines agree.
        xla = bool(member.training["xla"]) and bool(getattr(model, "jit_compile", False))

        def train(features: Any, labels: Any, rate: Any) -> None:
            model.optimizer.learning_rate.assign(rate)
            model.train_step((features, labels))

        def test(features: Any, labels: Any) -> None:
            model.test_step((features, labels))

        variables = member.variables()
        return (
            SharedStep(train, [x_spec, y_spec, tf.TensorSpec([], tf.float32)], variables, xla),
            SharedStep(test, [x_spec, y_spec], variables, xla),
        )

    def trace(self) -> None:
        """Trace the programs now, so that a model the engine cannot train as a population
        fails here, before any epoch, as :class:`PopulationUnsupported` naming the error."""
        try:
            self._trace()
        except PopulationUnsupported:
            raise
        except Exception as error:  # noqa: BLE001 - any tracing error means "not as a population"
            model = self.members[0].model
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise PopulationUnsupported(
                f"cannot trace model {getattr(model, 'name', type(model).__name__)!r} as a population "
                f"({type(error).__name__}: {message})"
            ) from error

    def _trace(self) -> None:
        import tensorflow as tf

        from pipeline.training.images import gather_rows, is_streamed
        from pipeline.training.pipelines import is_pipeline

        template = self.members[0]
        train_step, test_step = self._step_functions(template)
        # The shared steps keep only variables per member: any other captured value (a
        # constant the model made from its own initial weights, say) would be the template's
        # for every member. A second member, of another seed where there is one, is traced to
        # check that such values do not differ.
        if len(self.members) > 1:
            others = [member for member in self.members[1:] if member.training["seed"] != template.training["seed"]]
            other = (others or self.members[1:])[0]
            for shared, own in zip((train_step, test_step), self._step_functions(other)):
                if not shared.serves(own):
                    raise PopulationUnsupported(
                        f"the model's step captures values that differ between {template.out_dir} and {other.out_dir}"
                    )
        train_captures = [train_step.bind(member.variables(), str(member.out_dir)) for member in self.members]
        test_captures = [test_step.bind(member.variables(), str(member.out_dir)) for member in self.members]
        arrays, batch_size = self.arrays, self.batch_size
        # Each epoch's block of rates is an argument: a plateau member's column is its current
        # rate, known only once the epoch before it was validated.
        self.table = np.stack([member.rates for member in self.members], axis=1).astype(np.float32)
        member_seeds = [int(member.training["seed"]) for member in self.members]
        seeds = sorted(set(member_seeds))
        x_train, x_val = arrays["x_train"], arrays["x_val"]
        count, val_count = len(x_train), len(x_val)
        steps, val_steps = -(-count // batch_size), -(-val_count // batch_size)
        if is_pipeline(x_train):
            # A user's pipeline: every member takes the same batches, in the pipeline's order.
            train_batches, val_batches = x_train.batches(batch_size), x_val.batches(batch_size)

            @tf.function
            def train_pipeline_epoch(epoch: Any, rates: Any) -> None:
                for step, (features, labels) in train_batches.enumerate():
                    for index in range(len(member_seeds)):
                        train_step([features, labels, rates[step, index]], train_captures[index])

            @tf.function
            def evaluate_pipeline() -> None:
                for features, labels in val_batches:
                    for captures in test_captures:
                        test_step([features, labels], captures)

            self._finish_trace(train_pipeline_epoch, evaluate_pipeline, steps)
            return
        # Image files are decoded batch by batch inside the programs (pipeline.training.images).
        x_train_tensor = None if is_streamed(x_train) else tf.constant(x_train)
        x_val_tensor = None if is_streamed(x_val) else tf.constant(x_val)
        y_train, y_val = tf.constant(arrays["y_train"]), tf.constant(arrays["y_val"])

        @tf.function
        def train_epoch(epoch: Any, rates: Any) -> None:
            # Each seed's permutation of the training set in this epoch: the same stateless
            # shuffle as the per-run engine's (pipeline.training.resume.epoch_batches).
            orders = {
                seed: tf.random.experimental.stateless_shuffle(
                    tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
                )
                for seed in seeds
            }
            for step in tf.range(steps, dtype=tf.int64):
                start = step * batch_size
                batches = {}
                for seed in seeds:
                    rows = orders[seed][start : start + batch_size]
                    batches[seed] = (gather_rows(x_train, rows, x_train_tensor), tf.gather(y_train, rows))
                for index, seed in enumerate(member_seeds):
                    train_step([*batches[seed], rates[step, index]], train_captures[index])

        @tf.function
        def evaluate() -> None:
            for step in tf.range(val_steps):
                start = step * batch_size
                if x_val_tensor is None:  # image files: decode this batch's rows
                    rows = tf.range(tf.cast(start, tf.int64), tf.cast(tf.minimum(start + batch_size, val_count), tf.int64))
                    batch = [gather_rows(x_val, rows), tf.gather(y_val, rows)]
                else:
                    batch = [x_val_tensor[start : start + batch_size], y_val[start : start + batch_size]]
                for captures in test_captures:
                    test_step(batch, captures)

        self._finish_trace(train_epoch, evaluate, steps)

    def _finish_trace(self, train_epoch: Any, evaluate: Any, steps: int) -> None:
        """Trace the epoch's two programs now, for this population's shapes."""
        import tensorflow as tf

        train_epoch.get_concrete_function(tf.TensorSpec([], tf.int64), tf.TensorSpec([steps, len(self.members)], tf.float32))
        self.steps = steps
        evaluate.get_concrete_function()
        self._train_epoch, self._evaluate = train_epoch, evaluate

    def run_epoch(self, epoch: int) -> List[Dict[str, Dict[str, float]]]:
        """Train every member for epoch ``epoch`` (0-based) and evaluate it; each member's
        training and validation metrics, as ``fit`` reports them."""
        import keras
        import tensorflow as tf

        for member in self.members:
            member.model.reset_metrics()
        block = self.table[epoch * self.steps : (epoch + 1) * self.steps].copy()
        for index, member in enumerate(self.members):
            if member.plateau is not None:
                block[:, index] = np.float32(keras.ops.convert_to_numpy(member.model.optimizer.learning_rate))
        self._train_epoch(tf.constant(epoch, tf.int64), tf.constant(block))
        train_logs = [_metrics(member.model) for member in self.members]
        for member in self.members:
            member.model.reset_metrics()
        # Schedule-free AdamW members are evaluated on their averaged weights.
        with evaluation_weights([member.model for member in self.members]):
            self._evaluate()
        val_logs = [_metrics(member.model) for member in self.members]
        return [{"train": train, "val": val} for train, val in zip(train_logs, val_logs)]


def _metrics(model: Any) -> Dict[str, float]:
    import keras

    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in model.get_metrics_result().items()}


@contextlib.contextmanager
def _without_graph_optimizer_on_cpu() -> Iterator[None]:
    """Run the population's programs without TensorFlow's graph optimiser (Grappler) on a CPU.

    Measured on this project's models on a CPU: the programs start ~2.6 s sooner per
    54-member job and run as fast or faster (MLP 0.99 against 1.09 s an epoch, MNIST-1D CNN
    1.10 against 1.26 s), with the same numbers in every history we compared. On a GPU the
    optimiser stays on: its layout and fusion passes are what GPU kernels want."""
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        yield
        return
    before = bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


class _StateWriter:
    """Writes members' states (:func:`pipeline.training.resume.write_state`, each flushed to
    disk) on a background thread while the next epoch trains: ~50 files a second flushed
    one by one would otherwise hold the training up (~4 ms each here)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="population-state")
        self._pending: Any = None

    def submit(self, states: Sequence[tuple]) -> None:
        """Write ``(path, arrays)`` pairs, after the previous batch is written."""
        from pipeline.training.resume import write_state

        self.wait()
        if states:
            self._pending = self._pool.submit(lambda: [write_state(path, arrays) for path, arrays in states])

    def wait(self) -> None:
        """Block until every submitted state is on disk (re-raising a failed write)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def train_population(
    run_configs: Sequence[Mapping[str, Any]],
    arrays: Mapping[str, Any],
    out_dirs: Sequence[Path],
    device: str = "",
    resumable: bool = True,
    on_epoch: Optional[Callable[[EpochProgress], None]] = None,
    stop_member: Optional[Callable[[int, Mapping[str, float]], bool]] = None,
    extra_summaries: Optional[Sequence[Optional[Callable[[Dict[str, Any]], Mapping[str, Any]]]]] = None,
) -> List[Dict[str, Any]]:
    """Train the runs ``run_configs`` as one population and write each run's folder.

    Returns one summary per run, in order (the same keys as the per-run engine's
    ``summary.json``). ``resumable``: save each member's state at every epoch end and resume
    members that have one. ``on_epoch(progress)`` is called after each epoch with an
    :class:`EpochProgress` (the job logs its line). ``stop_member(index, row)`` is asked after each epoch of run ``index`` that did
    not diverge (its last epoch too), with its new history row; True stops that run there, as a
    search's pruner stops a trial. ``extra_summaries[index]``, like
    :func:`pipeline.training.run.train_run`'s ``extra_summary``, adds keys to that run's
    summary. TensorFlow must be configured already
    (:func:`pipeline.training.device.configure_tensorflow`).
    """
    import keras

    from pipeline.config.schema import config_hash
    from pipeline.training.resume import STATE_FILE, state_arrays
    from pipeline.training.run import finish_run

    run_configs = [json.loads(json.dumps(config)) for config in run_configs]
    if len(run_configs) != len(out_dirs):
        raise ValueError(f"{len(run_configs)} run configs but {len(out_dirs)} run folders")
    if extra_summaries is not None and len(extra_summaries) != len(run_configs):
        raise ValueError(f"{len(run_configs)} run configs but {len(extra_summaries)} extra summaries")
    check_population(run_configs)
    if not run_configs:
        return []
    training = run_configs[0]["training"]
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if training["mixed_precision"] else "float32")
    members = [
        Member(run_config=config, out_dir=Path(out_dir), run_hash=config_hash(config))
        for config, out_dir in zip(run_configs, out_dirs)
    ]
    reference_losses: Dict[int, float] = {}
    for member in members:
        _build_member(member, arrays, reference_losses)
    _rate_tables(members)
    setup_share = (time.perf_counter() - started) / len(members)
    for member in members:
        member.seconds += setup_share

    summaries: Dict[int, Dict[str, Any]] = {}
    index_of = {id(member): index for index, member in enumerate(members)}

    def finish(member: Member) -> Dict[str, Any]:
        return finish_run(
            member.run_config,
            member.out_dir,
            member.rows,
            member.diverged_epoch,
            reference_loss=member.reference_loss,
            # A member stops at its last epoch; its model may run on inside the program.
            steps=len(member.rows) * member.steps_per_epoch,
            steps_per_epoch=member.steps_per_epoch,
            seconds=member.seconds,
            resumed_from_epoch=member.resumed_from_epoch,
            device=device,
            extra_summary=extra_summaries[index_of[id(member)]] if extra_summaries is not None else None,
        )

    epochs = int(training["epochs"])
    programs: Optional[_Programs] = None
    writer = _StateWriter()
    try:
        with _without_graph_optimizer_on_cpu():
            first_epoch = min((len(member.rows) for member in members if not member.done), default=epochs)
            for epoch in range(first_epoch, epochs):
                # A member joins once the population reaches the epoch its saved state ended at.
                training_now = [member for member in members if not member.done and len(member.rows) == epoch]
                if not training_now:
                    continue
                programs = _programs_for(training_now, programs, arrays, int(training["batch_size"]))
                epoch_started = time.perf_counter()
                logs = programs.run_epoch(epoch)
                epoch_seconds = time.perf_counter() - epoch_started
                seconds = epoch_seconds / len(training_now)
                writer.wait()  # the previous epoch's states are on disk before any folder is finished
                states = []
                for member, log in zip(programs.members, logs):
                    if member not in training_now:
                        continue  # stopped earlier: its steps in this program are not results
                    _record_epoch(member, epoch, log, seconds)
                    # Asked after every epoch that did not diverge, the last one too (a search
                    # reports each epoch's val_loss, as the per-run engine's callback does).
                    if member.diverged_epoch is None and stop_member is not None and stop_member(index_of[id(member)], member.rows[-1]):
                        member.stopped_epoch = epoch + 1
                    if member.done:
                        # Written now, not when the population ends: a job killed later keeps it.
                        summaries[id(member)] = finish(member)
                    elif resumable:
                        states.append((member.out_dir / STATE_FILE, state_arrays(member.model, _state_meta(member))))
                writer.submit(states)
                if on_epoch is not None:
                    losses = [row["val_loss"] for member in members for row in member.rows if math.isfinite(row["val_loss"])]
                    still = sum(1 for member in training_now if not member.done)
                    on_epoch(EpochProgress(epoch + 1, epochs, len(training_now), still, min(losses, default=math.nan), epoch_seconds))
    finally:
        writer.close()

    for member in members:
        if id(member) not in summaries:
            summaries[id(member)] = finish(member)
    return [summaries[id(member)] for member in members]


def _programs_for(
    training_now: List[Member], programs: Optional[_Programs], arrays: Mapping[str, Any], batch_size: int
) -> _Programs:
    """The programs for the members training this epoch: the current ones, unless a member
    joined (resumed at this epoch) or enough have stopped to make their wasted steps costly."""
    if programs is not None and set(map(id, training_now)) == set(map(id, programs.members)):
        return programs
    if programs is not None:
        joined = any(member not in programs.members for member in training_now)
        stopped = programs.size - sum(1 for member in programs.members if member in training_now)
        if not joined and stopped < RETRACE_WHEN_STOPPED * programs.size:
            return programs
    built = time.perf_counter()
    programs = _Programs(training_now, arrays, batch_size)
    programs.trace()
    for member in training_now:
        member.seconds += (time.perf_counter() - built) / len(training_now)
    return programs


def _record_epoch(member: Member, epoch: int, log: Mapping[str, Mapping[str, float]], seconds: float) -> None:
    """Append a member's history row for epoch ``epoch`` (0-based) and mark it diverged when
    its training loss is non-finite or above ``divergence_factor`` × its untrained loss."""
    import keras

    if member.plateau is not None:
        # Keras' ReduceLROnPlateau on the member's optimizer, as the per-run engine runs it.
        member.plateau.on_epoch_end(epoch, {"val_loss": log["val"].get("loss", math.nan)})
        rate = member.model.optimizer.learning_rate
    else:
        rate = member.schedule((epoch + 1) * member.steps_per_epoch)
    row = {
        "epoch": epoch + 1,
        # The rate the next update would use, as the per-run engine reads it from its
        # optimizer: the member's own schedule at its step counter (or plateau's current rate).
        "lr": float(keras.ops.convert_to_numpy(rate)),
        "loss": log["train"].get("loss", math.nan),
        "accuracy": log["train"].get("accuracy", math.nan),
        "val_loss": log["val"].get("loss", math.nan),
        "val_accuracy": log["val"].get("accuracy", math.nan),
        "seconds": seconds,
    }
    member.rows.append(row)
    member.seconds += seconds
    loss = row["loss"]
    if not math.isfinite(loss) or loss > float(member.training["divergence_factor"]) * member.reference_loss:
        member.diverged_epoch = epoch + 1


def _state_meta(member: Member) -> Dict[str, Any]:
    """What a member's saved state holds besides its variables."""
    return {
        "config_hash": member.run_hash,
        "reference_loss": member.reference_loss,
        "rows": member.rows,
        "diverged_epoch": member.diverged_epoch,
        "seconds": member.seconds,
        **({"plateau": member.plateau.state()} if member.plateau is not None else {}),
    }
