"""The TFX Trainer `run_fn`: Model Maker's QA training on window TFRecords, then export.

Use with the standard Trainer (GenericExecutor)::

    tfx.components.Trainer(
        run_fn="components.trainer.run_fn.run_fn",
        examples=transform.outputs["examples"],       # SquadTransform windows
        train_args=tfx.proto.TrainArgs(num_steps=N),
        eval_args=tfx.proto.EvalArgs(num_steps=M),
        custom_config={"spec": spec.to_json()},      # optional: "batch_size", ...
        base_model=latest_blessed_model,              # optional warm start
    )

Checkpoints (`backup/`, `checkpoints/`) and TensorBoard logs (`logs/`) go under
`spec.model_dir` (default: the run's `model_run_dir`). A rerun with the same `model_dir`
after a crash resumes from the last checkpoint and stops at the same total step count;
set `spec.model_dir` to a stable path for that, since each TFX execution gets a new
`model_run_dir`. Only the chief of a multi-worker job writes the model and checkpoints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

from components.qa import encoders, tf1_hub
from components.qa import model as model_lib
from components.qa import spec as spec_lib
from components.trainer import dataset as dataset_lib
from components.trainer import strategies

# custom_config keys besides 'spec'.
BATCH_SIZE_KEY = "batch_size"
CHECKPOINT_EVERY_KEY = "checkpoint_every_steps"
COLLECTIVE_TIMEOUT_KEY = "collective_timeout_s"


class ProgressLogger(tf.keras.callbacks.Callback):
    """Logs step, loss and examples/s every `every_steps` steps, and resumption."""

    def __init__(self, train_steps: int, global_batch_size: int, every_steps: int, task: str):
        super().__init__()
        self._supports_tf_logs = True
        self.train_steps = train_steps
        self.global_batch_size = global_batch_size
        self.every_steps = every_steps
        self.task = task
        self._last_time = 0.0
        self._last_step = 0

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _coordinated(self) -> bool:
        return bool(getattr(self.model.distribute_strategy, "_should_use_with_coordinator", False))

    def on_train_begin(self, logs=None):
        self._last_time = time.time()
        self._last_step = 0 if self._coordinated() else self._step()
        if self._last_step:
            logging.info(
                "[%s] Resumed from checkpoint at step %d of %d",
                self.task, self._last_step, self.train_steps,
            )
        else:
            logging.info("[%s] Training from step 0 to %d", self.task, self.train_steps)

    def on_train_batch_end(self, batch, logs=None):
        if self._coordinated():
            return
        step = self._step()
        if step % self.every_steps and step != self.train_steps:
            return
        now = time.time()
        rate = (step - self._last_step) * self.global_batch_size / max(now - self._last_time, 1e-9)
        # The metric, not `logs`: Keras sums batch logs over replicas.
        loss = float(next(m for m in self.model.metrics if m.name == "loss").result())
        logging.info(
            "[%s] step %d/%d loss %.4f %.1f examples/s",
            self.task, step, self.train_steps, loss, rate,
        )
        self._last_time, self._last_step = now, step

    def on_epoch_end(self, epoch, logs=None):
        metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()))
        logging.info("[%s] end of training: %s", self.task, metrics)


def _warm_start(model: tf.keras.Model, base_model: str) -> None:
    variables = os.path.join(base_model, "variables", "variables")
    if not tf.io.gfile.exists(variables + ".index"):
        raise ValueError(f"base_model {base_model!r} is not a SavedModel (no {variables}.index)")
    model.load_weights(variables).assert_existing_objects_matched()
    logging.info("Warm start: loaded the weights of %s", base_model)


def _datasets(
    strategy: tf.distribute.Strategy,
    spec: spec_lib.BertQaSpec,
    train_files: Sequence[str],
    eval_files: Sequence[str],
    batch_size: int,
    eval_steps: int,
):
    def make(files, training):
        if getattr(strategy, "_should_use_with_coordinator", False):
            dataset_lib.check_window_file(dataset_lib.list_window_files(files)[0], spec.seq_len)
            return tf.keras.utils.experimental.DatasetCreator(
                lambda context: dataset_lib.make_window_dataset(
                    files, batch_size, spec.seq_len, training, input_context=context
                )
            )
        return dataset_lib.make_window_dataset(files, batch_size, spec.seq_len, training)

    return make(train_files, True), (make(eval_files, False) if eval_steps else None)


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
) -> str | None:
    """Trains the QA model of `spec` for `train_steps` steps and exports it to `serving_dir`.

    Returns `serving_dir` on the process that exported (the chief), None on the others
    (other workers, and the `worker`/`ps` servers of a parameter-server job).
    """
    if strategies.serve_cluster_task(spec):
        return None
    if train_steps <= 0:
        raise ValueError(f"train_steps={train_steps} must be > 0")
    strategy = strategies.make_strategy(spec, collective_timeout_s)
    if not spec.is_tf2:  # Before building in scope: the native encoder equals the module.
        tf1_hub.check_conversion(encoders.check_module(spec))
    task_type, task_index = strategies.cluster_task()
    task = f"{task_type}:{task_index}" if task_type else "local"
    batch_size = batch_size or spec.default_batch_size
    checkpoint_every = checkpoint_every_steps or max(1, min(1000, train_steps // 10))
    train_data, eval_data = _datasets(
        strategy, spec, train_files, eval_files, batch_size, eval_steps
    )
    logging.info(
        "[%s] Training %s: %d steps of %d windows (%d replicas), %d eval steps, "
        "checkpoint every %d steps under %s",
        task, spec.name, train_steps, batch_size, strategy.num_replicas_in_sync, eval_steps,
        checkpoint_every, model_dir,
    )
    with strategy.scope():
        model = model_lib.build_qa_model(spec)
        if base_model:
            _warm_start(model, base_model)
        model_lib.compile_qa_model(model, spec, train_steps)

    coordinated = getattr(strategy, "_should_use_with_coordinator", False)
    backup = tf.keras.callbacks.BackupAndRestore(
        os.path.join(model_dir, "backup"),
        save_freq="epoch" if coordinated else checkpoint_every,  # PSS: per epoch only
    )
    # Keras lists the strategies it has tested; one device is the single-worker case.
    backup._supported_strategies += (tf.distribute.OneDeviceStrategy,)
    callbacks = [
        backup,
        ProgressLogger(train_steps, batch_size, checkpoint_every, task),
        tf.keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
    ]
    start = time.time()
    try:
        history = model.fit(
            train_data,
            epochs=1,
            steps_per_epoch=train_steps,
            validation_data=eval_data,
            validation_steps=eval_steps or None,
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
    logging.info(
        "[%s] Trained %d steps in %.1fs: %s", task, train_steps, time.time() - start,
        {k: [round(float(x), 4) for x in v] for k, v in history.history.items()},
    )

    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    model.save_weights(os.path.join(strategies.write_dir(checkpoint_dir, strategy), "final"))
    strategies.remove_temp_dir(checkpoint_dir, strategy)
    model_lib.export_serving_model(model, strategies.write_dir(serving_dir, strategy), spec)
    strategies.remove_temp_dir(serving_dir, strategy)
    if not strategies.is_chief(strategy):
        logging.info("[%s] Done; the chief exports the model", task)
        return None
    logging.info("[%s] Model exported to %s; checkpoints in %s", task, serving_dir, checkpoint_dir)
    return serving_dir


def run_fn(fn_args) -> None:
    """The TFX Trainer entry point (`tfx.components.FnArgs`)."""
    config = fn_args.custom_config or {}
    if "spec" not in config:
        raise ValueError("The Trainer needs custom_config={'spec': spec.to_json()}")
    spec = spec_lib.spec_from_json(config["spec"])
    train_and_export(
        spec,
        train_files=fn_args.train_files,
        eval_files=fn_args.eval_files,
        serving_dir=fn_args.serving_model_dir,
        model_dir=spec.model_dir or fn_args.model_run_dir,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps or 0,
        batch_size=config.get(BATCH_SIZE_KEY),
        base_model=fn_args.base_model,
        checkpoint_every_steps=config.get(CHECKPOINT_EVERY_KEY),
        collective_timeout_s=float(
            config.get(COLLECTIVE_TIMEOUT_KEY, strategies.DEFAULT_COLLECTIVE_TIMEOUT_S)
        ),
    )
