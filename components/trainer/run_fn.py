"""The TFX Trainer `run_fn`: Model Maker's QA training on window TFRecords, then export.

Use with the standard Trainer (GenericExecutor)::

    tfx.components.Trainer(
        run_fn="components.trainer.run_fn.run_fn",
        examples=transform.outputs["examples"],       # SquadTransform windows
        train_args=tfx.proto.TrainArgs(num_steps=N),
        eval_args=tfx.proto.EvalArgs(num_steps=M),
        custom_config={"spec": spec.to_json()},      # optional: "batch_size", ...
        base_model=latest_blessed_model,              # optional warm start
        transform_graph=transform.outputs["transform_graph"],  # optional length buckets
    )

TensorBoard logs go to the execution's `model_run_dir` (`logs/`). Checkpoints (`backup/`,
`checkpoints/`) go under `<spec.model_dir>/<key>` if `spec.model_dir` is set, else under
`<pipeline_root>/Trainer/training_state/<key>`, where the key is a hash of what defines
the execution (input files, spec, steps, batch size, base model): a retried or re-run
execution after a crash (TFX gives it a new `model_run_dir`) resumes from its last
checkpoint and stops at the same step count; an execution with other inputs or settings
never restores it. With `mixed_precision` the model trains under that Keras policy and
is exported in float32 (see `train_and_export`). Only the chief of a multi-worker job
writes the model and checkpoints; the other workers wait for the chief's export before
returning (TFX's executor checks that the model exists on every replica).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf
from absl import logging

from components.qa import contracts, encoders, progress, tf1_hub
from components.qa import model as model_lib
from components.qa import spec as spec_lib
from components.squad_transform import length_buckets
from components.trainer import dataset as dataset_lib
from components.trainer import strategies

# custom_config keys besides 'spec'.
BATCH_SIZE_KEY = "batch_size"
CHECKPOINT_EVERY_KEY = "checkpoint_every_steps"
COLLECTIVE_TIMEOUT_KEY = "collective_timeout_s"
WARM_START_KEY = "warm_start"
TRIM_PADDING_KEY = "trim_padding"
MIXED_PRECISION_KEY = "mixed_precision"
# Set by QaTrainer's executor: what the windows were made from (`training_data.describe`),
# recorded in training.json; and whether to train when the base model saw the same data.
TRAINING_DATA_KEY = "training_data"
FORCE_RETRAIN_KEY = "force_retrain"
# The training's steps, time and loss, beside the SavedModel (TF Serving's extra assets).
# Where executions keep their resumable state, beside `model_run/` in the pipeline root.
TRAINING_STATE_DIR = "training_state"
# How long a non-chief worker waits for the chief's export before failing.
EXPORT_WAIT_S = 600.0
# Training shuffles with this seed: every worker shuffles alike, then takes its own shard.
SHUFFLE_SEED = 1234


class ProgressLogger(tf.keras.callbacks.Callback):
    """Shows the start (or resumption) of training, then its step, loss and examples/s: a bar
    on a terminal (`components.qa.progress`), else a log line every `every_steps` steps and
    at least every `progress.LOG_EVERY_S`; and each epoch's metrics. Under a coordinator
    (parameter servers) steps are known at epoch ends only."""

    def __init__(self, train_steps: int, global_batch_size: int, every_steps: int, task: str,
                 steps_per_epoch: int | None = None):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch or train_steps
        self._first_epoch = True
        self._supports_tf_logs = True
        self.train_steps = train_steps
        self.global_batch_size = global_batch_size
        self.every_steps = every_steps
        self.task = task
        self._last_time = 0.0
        self._last_step = 0
        self._bar = None

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _coordinated(self) -> bool:
        return bool(getattr(self.model.distribute_strategy, "_should_use_with_coordinator", False))

    def on_train_begin(self, logs=None):
        self._last_time = time.time()
        if self._coordinated():  # The step is known at the first epoch (on_epoch_begin).
            return
        self._last_step = self._step()
        if self._last_step:
            logging.info(
                "[%s] Resumed from checkpoint at step %d of %d",
                self.task, self._last_step, self.train_steps,
            )
        else:
            logging.info("[%s] Training from step 0 to %d", self.task, self.train_steps)
        if progress.on_terminal():
            self._bar = progress.progress(total=self.train_steps, desc=f"[{self.task}] training",
                                          unit="steps", initial=self._last_step)

    def on_train_batch_end(self, batch, logs=None):
        if self._coordinated():
            return
        step = self._step()
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
        now = time.time()
        if (step % self.every_steps and step != self.train_steps
                and now - self._last_time < progress.LOG_EVERY_S):
            return
        rate = (step - self._last_step) * self.global_batch_size / max(now - self._last_time, 1e-9)
        # The metric, not `logs`: Keras sums batch logs over replicas.
        loss = float(next(m for m in self.model.metrics if m.name == "loss").result())
        if self._bar is None:
            logging.info(
                "[%s] step %d/%d loss %.4f %.1f examples/s",
                self.task, step, self.train_steps, loss, rate,
            )
        else:
            self._bar.set_postfix({"loss": f"{loss:.4f}", "examples/s": f"{rate:.1f}"})
        self._last_time, self._last_step = now, step

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and self._coordinated():
            if epoch:  # Restored by BackupAndRestore.
                logging.info("[%s] Resumed from checkpoint at step %d of %d (epoch %d)",
                             self.task, epoch * self.steps_per_epoch, self.train_steps, epoch)
            else:
                logging.info("[%s] Training from step 0 to %d", self.task, self.train_steps)
        self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()))
        step = (epoch + 1) * self.steps_per_epoch
        logging.info("[%s] step %d/%d (end of epoch %d): %s", self.task, step, self.train_steps,
                     epoch + 1, metrics)


def _model_variables(path: str) -> dict[str, list[int]]:
    """A Keras checkpoint's model variables (names and shapes), without optimizer state."""
    return {name: shape for name, shape in tf.train.list_variables(path)
            if name.startswith("layer") and "/.OPTIMIZER_SLOT/" not in name}


def warm_start(model: tf.keras.Model, base_model: str) -> bool:
    """Loads `base_model`'s weights if it has exactly the model's variables and shapes.

    Returns whether it did; otherwise logs why and leaves the model as built (a cold start).
    Raises ValueError if `base_model` is not a SavedModel.
    """
    variables = os.path.join(base_model, "variables", "variables")
    if not tf.io.gfile.exists(variables + ".index"):
        raise ValueError(f"base_model {base_model!r} is not a SavedModel (no {variables}.index)")
    with tempfile.TemporaryDirectory() as scratch:  # the names and shapes this model saves
        own = os.path.join(scratch, "own")
        model.save_weights(own)
        mine = _model_variables(own)
    theirs = _model_variables(variables)
    differences = sorted(n for n in mine.keys() | theirs.keys() if mine.get(n) != theirs.get(n))
    if differences:
        logging.warning(
            "Cold start: base model %s has other variables than this model (%d differ, e.g. "
            "%s); training starts from the encoder's weights", base_model, len(differences),
            [(n, mine.get(n), theirs.get(n)) for n in differences[:3]],
        )
        return False
    model.load_weights(variables).assert_existing_objects_matched()
    logging.info("Warm start: loaded the weights of %s", base_model)
    return True


def _datasets(
    strategy: tf.distribute.Strategy,
    spec: spec_lib.BertQaSpec,
    train_files: Sequence[str],
    eval_files: Sequence[str],
    batch_size: int,
    eval_steps: int,
    trim: bool,
    padded_lengths: Sequence[int] | None,
):
    def make(files, training):
        seed = SHUFFLE_SEED if training else None
        if getattr(strategy, "_should_use_with_coordinator", False):
            dataset_lib.check_window_file(dataset_lib.list_window_files(files)[0], spec.seq_len)
            return tf.keras.utils.experimental.DatasetCreator(
                lambda context: dataset_lib.make_window_dataset(
                    files, batch_size, spec.seq_len, training, input_context=context, seed=seed,
                    trim=trim, padded_lengths=padded_lengths,
                )
            )
        return dataset_lib.make_window_dataset(files, batch_size, spec.seq_len, training,
                                               seed=seed, trim=trim,
                                               padded_lengths=padded_lengths)

    return make(train_files, True), (make(eval_files, False) if eval_steps else None)


@contextlib.contextmanager
def _global_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy is `name` inside, the previous one again after."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def _epochs(train_steps: int, checkpoint_every: int, coordinated: bool) -> tuple[int, int]:
    """`(epochs, steps_per_epoch)`: one epoch, or under parameter servers (where Keras backs
    up at epoch ends only) epochs of at most `checkpoint_every` steps."""
    if not coordinated:
        return 1, train_steps
    steps = max(d for d in range(1, min(checkpoint_every, train_steps) + 1) if train_steps % d == 0)
    return train_steps // steps, steps


def train_and_export(
    spec: spec_lib.BertQaSpec,
    train_files: str | Sequence[str],
    eval_files: str | Sequence[str],
    serving_dir: str,
    model_dir: str,
    train_steps: int,
    eval_steps: int,
    batch_size: int | None = None,
    base_model: str | None = None,
    checkpoint_every_steps: int | None = None,
    collective_timeout_s: float = strategies.DEFAULT_COLLECTIVE_TIMEOUT_S,
    export_wait_s: float = EXPORT_WAIT_S,
    log_dir: str | None = None,
    trim_padding: bool = True,
    mixed_precision: str = "",
    transform_graph: str | None = None,
    training_data: dict[str, Any] | None = None,
) -> str | None:
    """Trains the QA model of `spec` for `train_steps` steps and exports it to `serving_dir`.

    Checkpoints go under `model_dir`, TensorBoard logs to `log_dir` (default
    `model_dir/logs`). Warm-starts from `base_model` when it has the same variables and
    shapes (else a logged cold start). With `transform_graph` (the SquadTransform's length
    buckets, `length_buckets.read_padded_lengths`) each batch holds windows of one bucket, cut
    to its padded length (`dataset.batch_by_length_bucket`; also on TPUs: XLA compiles one
    program per bucket shape). Else, with `trim_padding`, each batch is cut to its longest
    window (`dataset.trim_padding`; not on TPUs, which would compile a program per length).
    `mixed_precision` ('' or one of `MIXED_PRECISION_POLICIES`) is the Keras policy the
    model is built and trained under: float32 variables, float16 or bfloat16 computations,
    float32 logits and loss; `compile` wraps the optimizer in a LossScaleOptimizer for
    'mixed_float16'. The exported SavedModel is a float32 copy of the trained model.
    `training_data` (what the windows were made from) goes into `training.json`.
    Returns `serving_dir` on the process that exported
    (the chief), None on the others (other workers, once the chief's export exists, and
    the `worker`/`ps` servers of a parameter-server job).
    """
    if strategies.serve_cluster_task(spec):
        return None
    if train_steps <= 0:
        raise ValueError(f"train_steps={train_steps} must be > 0")
    if mixed_precision not in ("", *contracts.MIXED_PRECISION_POLICIES):
        raise ValueError(f"mixed_precision={mixed_precision!r} is not '' (off) or one of "
                         f"{contracts.MIXED_PRECISION_POLICIES}")
    policy = mixed_precision or "float32"
    strategy = strategies.make_strategy(spec, collective_timeout_s)  # Before any TF op.
    padded_lengths = (length_buckets.read_padded_lengths(transform_graph, spec.seq_len)
                      if transform_graph else None)
    task_type, task_index = strategies.cluster_task()
    task = f"{task_type}:{task_index}" if task_type else "local"
    batch_size = batch_size or spec.default_batch_size
    checkpoint_every = checkpoint_every_steps or max(1, min(1000, train_steps // 10))
    coordinated = getattr(strategy, "_should_use_with_coordinator", False)
    epochs, steps_per_epoch = _epochs(train_steps, checkpoint_every, coordinated)
    trim = (trim_padding and padded_lengths is None
            and not isinstance(strategy, tf.distribute.TPUStrategy))
    train_data, eval_data = _datasets(
        strategy, spec, train_files, eval_files, batch_size, eval_steps, trim, padded_lengths
    )
    buckets = sorted(set(padded_lengths)) if padded_lengths is not None else None
    logging.info(
        "[%s] Training %s: %d steps of %d windows (%d replicas), %d eval steps, "
        "checkpoint every %d steps under %s; %s; Keras policy %s",
        task, spec.name, train_steps, batch_size, strategy.num_replicas_in_sync, eval_steps,
        steps_per_epoch if coordinated else checkpoint_every, model_dir,
        f"batches of one length bucket (padded to {buckets})" if buckets
        else "batches trimmed to their longest window" if trim else f"windows of {spec.seq_len}",
        policy,
    )
    model, serving_model, warm_started = _build(spec, strategy, mixed_precision, base_model,
                                                train_steps)
    backup = tf.keras.callbacks.BackupAndRestore(
        os.path.join(model_dir, "backup"),
        save_freq="epoch" if coordinated else checkpoint_every,
    )
    # Keras lists the strategies it has tested; one device is the single-worker case.
    backup._supported_strategies += (tf.distribute.OneDeviceStrategy,)
    callbacks = [
        backup,
        ProgressLogger(train_steps, batch_size, checkpoint_every, task, steps_per_epoch),
        tf.keras.callbacks.TensorBoard(log_dir or os.path.join(model_dir, "logs")),
    ]
    start = time.time()
    history = _fit(model, spec, strategy, task, model_dir, train_data, eval_data, eval_steps,
                   epochs, steps_per_epoch, callbacks)
    train_seconds = time.time() - start
    logging.info(
        "[%s] Trained %d steps in %.1fs: %s", task, train_steps, train_seconds,
        {k: [round(float(x), 4) for x in v] for k, v in history.history.items()},
    )
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    if not _export(model, serving_model, spec, strategy, checkpoint_dir, serving_dir,
                   export_wait_s, task):
        return None
    _write_training_record(serving_dir, {
        "train_steps": train_steps, "train_seconds": round(train_seconds, 1),
        "final_loss": float(history.history["loss"][-1]) if history.history.get("loss")
        else None,
        "batch_size": batch_size, "replicas": strategy.num_replicas_in_sync,
        "strategy": spec.distribution_strategy, "trim_padding": trim, "length_buckets": buckets,
        "mixed_precision": policy,
        "warm_start_from": base_model if warm_started else None,
        "training_data": training_data,
        "spec": json.loads(spec.to_json()),
    })
    logging.info("[%s] Model exported to %s; checkpoints in %s", task, serving_dir, checkpoint_dir)
    return serving_dir


def _build(spec: spec_lib.BertQaSpec, strategy: tf.distribute.Strategy, mixed_precision: str,
           base_model: str | None, train_steps: int,
           ) -> tuple[tf.keras.Model, tf.keras.Model, bool]:
    """The compiled model (warm-started from `base_model` if it fits), the model to export
    and whether it was warm-started."""
    with _global_policy(mixed_precision or "float32"), strategy.scope():
        model = model_lib.build_qa_model(spec)
    # TFLite has no bfloat16 tensors ("invalid TFLite type: bf16") and the SavedModel serves
    # float32: under a mixed policy the export is a float32 twin that gets the trained weights
    # (mixed policies keep float32 variables).
    serving_model = model
    if mixed_precision:
        with _global_policy("float32"):
            serving_model = model_lib.build_qa_model(spec)
    if not spec.is_tf2:  # The native encoder equals the module (float32, outside the scope).
        tf1_hub.check_conversion(encoders.resolve_module_dir(spec.uri),
                                 serving_model.get_layer(tf1_hub.NATIVE_MODEL_NAME),
                                 squad=spec.init_from_squad_model)
    warm_started = False
    with strategy.scope():
        if base_model:
            warm_started = warm_start(model, base_model)
        model_lib.compile_qa_model(model, spec, train_steps)
    return model, serving_model, warm_started


def _fit(model: tf.keras.Model, spec: spec_lib.BertQaSpec, strategy: tf.distribute.Strategy,
         task: str, model_dir: str, train_data, eval_data, eval_steps: int, epochs: int,
         steps_per_epoch: int, callbacks: list[tf.keras.callbacks.Callback],
         ) -> tf.keras.callbacks.History:
    """`model.fit`; a lost peer of a multi-worker job is an error that says how to resume."""
    try:
        return model.fit(
            train_data,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=eval_data,
            validation_steps=eval_steps or None,
            validation_freq=epochs,
            callbacks=callbacks,
            verbose=0,
        )
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        if strategy.extended._in_multi_worker_mode():
            raise RuntimeError(
                f"[{task}] A peer of this {spec.distribution_strategy} job failed or became "
                f"unreachable; rerun the job to resume from the last checkpoint in "
                f"{model_dir}/backup. Cause: {error.message.splitlines()[0]}"
            ) from error
        raise


def _export(model: tf.keras.Model, serving_model: tf.keras.Model, spec: spec_lib.BertQaSpec,
            strategy: tf.distribute.Strategy, checkpoint_dir: str, serving_dir: str,
            export_wait_s: float, task: str) -> bool:
    """Saves the final weights and the SavedModel (each worker writes, the chief's copy
    stays); True on the chief, False on the others once the chief's export exists."""
    model.save_weights(os.path.join(strategies.write_dir(checkpoint_dir, strategy), "final"))
    strategies.remove_temp_dir(checkpoint_dir, strategy)
    if serving_model is not model:
        serving_model.set_weights(model.get_weights())
    model_lib.export_serving_model(serving_model, strategies.write_dir(serving_dir, strategy),
                                   spec)
    strategies.remove_temp_dir(serving_dir, strategy)
    if not strategies.is_chief(strategy):
        _wait_for_export(serving_dir, export_wait_s, task)
        return False
    return True


def _write_training_record(serving_dir: str, record: dict[str, Any]) -> None:
    """`assets.extra/training.json` beside the SavedModel (read by the model card).

    `train_seconds` is this execution's (a resumed training counts what it ran)."""
    path = os.path.join(serving_dir, contracts.TRAINING_RECORD)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)


def _wait_for_export(serving_dir: str, timeout_s: float, task: str) -> None:
    """Waits until the chief's SavedModel is complete in `serving_dir`."""
    marker = os.path.join(serving_dir, tf.saved_model.SAVED_MODEL_FILENAME_PB)
    logging.info("[%s] Waiting for the chief's export at %s", task, serving_dir)
    deadline = time.time() + timeout_s
    while not tf.io.gfile.exists(marker):
        if time.time() > deadline:
            raise RuntimeError(
                f"[{task}] The chief did not export {marker} within {timeout_s:.0f}s"
            )
        time.sleep(1.0)
    logging.info("[%s] Done; the chief exported the model", task)


def training_state_dir(fn_args: Any, spec: spec_lib.BertQaSpec, config: dict[str, Any]) -> str:
    """The execution's resumable directory, under `spec.model_dir` or the pipeline root: the
    same for a retry or a re-run of the same inputs and settings, another for anything else
    (see the module docstring)."""
    key = json.dumps({
        "train_files": sorted(_as_list(fn_args.train_files)),
        "eval_files": sorted(_as_list(fn_args.eval_files)),
        "train_steps": fn_args.train_steps,
        "eval_steps": fn_args.eval_steps,
        "base_model": fn_args.base_model,
        "transform_graph": fn_args.transform_graph_path,
        "spec": spec.to_dict(),
        "custom_config": {k: v for k, v in config.items() if k != "spec"},
    }, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    if spec.model_dir:
        return os.path.join(spec.model_dir, digest)
    trainer_dir = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
    return os.path.join(trainer_dir, TRAINING_STATE_DIR, digest)


def _as_list(files: str | Sequence[str]) -> list[str]:
    return [files] if isinstance(files, str) else list(files)


def run_fn(fn_args) -> None:
    """The TFX Trainer entry point (`tfx.components.FnArgs`)."""
    config = fn_args.custom_config or {}
    if "spec" not in config:
        raise ValueError("The Trainer needs custom_config={'spec': spec.to_json()}")
    spec = spec_lib.spec_from_json(config["spec"])
    base_model = fn_args.base_model if config.get(WARM_START_KEY, True) else None
    if fn_args.base_model and not base_model:
        logging.info("Warm start is off (%s=False): not loading %s", WARM_START_KEY,
                     fn_args.base_model)
    model_dir = training_state_dir(fn_args, spec, config)
    logging.info("Training state (resumable checkpoints) of this execution: %s", model_dir)
    train_and_export(
        spec,
        train_files=fn_args.train_files,
        eval_files=fn_args.eval_files,
        serving_dir=fn_args.serving_model_dir,
        model_dir=model_dir,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps or 0,
        batch_size=config.get(BATCH_SIZE_KEY),
        base_model=base_model,
        checkpoint_every_steps=config.get(CHECKPOINT_EVERY_KEY),
        collective_timeout_s=float(
            config.get(COLLECTIVE_TIMEOUT_KEY, strategies.DEFAULT_COLLECTIVE_TIMEOUT_S)
        ),
        log_dir=os.path.join(fn_args.model_run_dir, "logs"),
        trim_padding=bool(config.get(TRIM_PADDING_KEY, True)),
        mixed_precision=config.get(MIXED_PRECISION_KEY, ""),
        transform_graph=fn_args.transform_graph_path,
        training_data=config.get(TRAINING_DATA_KEY),
    )
