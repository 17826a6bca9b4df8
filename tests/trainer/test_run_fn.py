"""`run_fn` inside the real TFX Trainer (LocalDagRunner, ML Metadata), and warm start."""

import io
import logging
import os
import re
import signal

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.qa import encoders, mobilebert, progress
from components.qa import model as model_lib
from components.trainer import run_fn
from tests.trainer import fixtures
from tests.trainer.test_strategies import checkpoint_step


def _weights(saved_model_or_checkpoint: str) -> dict[str, np.ndarray]:
    """A SavedModel's (or Keras checkpoint's) model variables by checkpoint name."""
    path = saved_model_or_checkpoint
    if tf.io.gfile.exists(os.path.join(path, "variables", "variables.index")):
        path = os.path.join(path, "variables", "variables")
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in run_fn._model_variables(path)}


def _model_uris(root) -> list[str]:
    from ml_metadata.metadata_store import metadata_store

    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(root / "metadata.sqlite")
    )
    store = metadata_store.MetadataStore(config)
    trainer_dir = str(root / "pipeline" / "Trainer") + os.sep  # not the imported base model
    return sorted(a.uri for a in store.get_artifacts_by_type("Model")
                  if a.uri.startswith(trainer_dir))


@pytest.mark.slow
def test_qa_trainer_runs_run_fn_and_warm_starts_from_a_base_model(
    tiny_spec, window_files, tmp_path
):
    pipeline = fixtures.trainer_pipeline(tmp_path, tiny_spec, window_files)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    (model_uri,) = _model_uris(tmp_path)
    serving = os.path.join(model_uri, "Format-Serving")
    signature = tf.saved_model.load(serving).signatures["serving_default"]
    assert sorted(signature.structured_outputs) == ["end_logits", "start_logits"]
    model_run_dirs = [a for a in os.listdir(tmp_path / "pipeline" / "Trainer" / "model_run")]
    (run_dir,) = model_run_dirs
    run_files = os.listdir(tmp_path / "pipeline" / "Trainer" / "model_run" / run_dir)
    assert run_files == ["logs"]  # TensorBoard; checkpoints are the execution's state:
    (state,) = os.listdir(tmp_path / "pipeline" / "Trainer" / run_fn.TRAINING_STATE_DIR)
    state_dir = tmp_path / "pipeline" / "Trainer" / run_fn.TRAINING_STATE_DIR / state
    assert sorted(os.listdir(state_dir)) == ["backup", "checkpoints"]
    assert not os.listdir(state_dir / "backup")  # emptied once training ended

    # Warm start: a run with learning rate ~0 keeps the base model's outputs.
    frozen = tiny_spec.replace(learning_rate=1e-12)
    warm_root = tmp_path / "warm"
    warm_root.mkdir()
    tfx.orchestration.LocalDagRunner().run(
        fixtures.trainer_pipeline(warm_root, frozen, window_files, base_model_uri=model_uri)
    )
    (warm_uri,) = _model_uris(warm_root)
    warm = tf.saved_model.load(os.path.join(warm_uri, "Format-Serving"))
    rng = np.random.default_rng(0)
    ids = tf.constant(rng.integers(1000, 2001, (3, fixtures.SEQ_LEN)), tf.int32)
    ones = tf.ones_like(ids)
    before = signature(input_ids=ids, input_mask=ones, segment_ids=ones)
    after = warm.signatures["serving_default"](input_ids=ids, input_mask=ones, segment_ids=ones)
    np.testing.assert_allclose(after["start_logits"], before["start_logits"], atol=1e-4)
    # Every variable is the base model's (the learning rate moves them by ~1e-12), and the
    # QA head, which a fresh build initializes at random, shows it was loaded.
    base, warmed = _weights(serving), _weights(os.path.join(warm_uri, "Format-Serving"))
    assert sorted(warmed) == sorted(base)
    for name, value in base.items():
        np.testing.assert_allclose(warmed[name], value, atol=1e-6, err_msg=name)
    fresh_dir = tmp_path / "fresh"
    model_lib.build_qa_model(frozen).save_weights(str(fresh_dir / "weights"))
    fresh = _weights(str(fresh_dir / "weights"))
    assert sorted(fresh) == sorted(base)
    assert any(not np.allclose(fresh[name], base[name]) for name in base)


def test_run_fn_needs_the_spec():
    fn_args = tfx.components.FnArgs(custom_config={})
    with pytest.raises(ValueError, match="custom_config=\\{'spec'"):
        run_fn.run_fn(fn_args)


def test_warm_start_from_a_non_saved_model_is_a_clear_error(tiny_spec, window_files, tmp_path):
    with pytest.raises(ValueError, match="base_model .* is not a SavedModel"):
        run_fn.train_and_export(
            tiny_spec, window_files["train"], window_files["eval"], str(tmp_path / "s"),
            str(tmp_path / "m"), train_steps=1, eval_steps=0, base_model=str(tmp_path),
        )


@pytest.mark.slow
def test_killed_pipeline_resumes_training_in_a_new_execution(tiny_spec, window_files, tmp_path):
    """kill -9 during training, then run the same pipeline again: TFX gives the Trainer a
    new execution (and model_run_dir); it resumes from the killed execution's checkpoint."""
    args = dict(root=str(tmp_path), spec=tiny_spec.to_json(), window_files=window_files,
                train_steps=200, custom_config={run_fn.CHECKPOINT_EVERY_KEY: 10})
    first_log, second_log = str(tmp_path / "first.log"), str(tmp_path / "second.log")
    first = fixtures.start_training(args, first_log, script="pipeline_process.py")
    try:
        fixtures.wait_for_log(first_log, "[local] step 20/200", first, 420)
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=60) == -signal.SIGKILL
    finally:
        first.kill()
    assert "Trained 200 steps" not in fixtures.read(first_log)
    second = fixtures.start_training(args, second_log, script="pipeline_process.py")
    code, log = fixtures.finish(second, second_log, 420)
    assert code == 0, log[-3000:]
    resumed = int(log.split("Resumed from checkpoint at step ")[1].split()[0])
    assert 20 <= resumed < 200
    assert "Training from step 0" not in log
    assert "pipeline_process: the pipeline ran" in log
    (model_uri,) = _model_uris(tmp_path)  # one model; both executions have a model_run dir
    assert os.path.exists(os.path.join(model_uri, "Format-Serving", "saved_model.pb"))
    assert len(os.listdir(tmp_path / "pipeline" / "Trainer" / "model_run")) == 2
    (state,) = os.listdir(tmp_path / "pipeline" / "Trainer" / run_fn.TRAINING_STATE_DIR)
    state_dir = tmp_path / "pipeline" / "Trainer" / run_fn.TRAINING_STATE_DIR / state
    assert checkpoint_step(str(state_dir)) == 200  # ended at the same step
    assert not os.listdir(state_dir / "backup")  # deleted once training ended


def test_warm_start_needs_the_same_variables(tiny_spec, window_files, tmp_path):
    base = run_fn.train_and_export(
        tiny_spec, window_files["train"], window_files["eval"], str(tmp_path / "base"),
        str(tmp_path / "m"), train_steps=1, eval_steps=0,
    )
    same = model_lib.build_qa_model(tiny_spec.replace(seq_len=48))
    assert run_fn.warm_start(same, base)  # seq_len does not change the variables
    one_layer = encoders.make_encoder(
        str(tmp_path / "one_layer"), {**mobilebert.load_encoder_config(mobilebert.TINY_CONFIG_PATH),
                                      "num_hidden_layers": 1}, tf_format=encoders.TF1,
    )
    wider = encoders.make_encoder(  # the same variable names, other shapes
        str(tmp_path / "wider"), {**mobilebert.load_encoder_config(mobilebert.TINY_CONFIG_PATH),
                                  "intermediate_size": 192}, tf_format=encoders.TF1,
    )
    for uri in (one_layer, wider):
        other = model_lib.build_qa_model(tiny_spec.replace(uri=uri))
        before = [v.numpy() for v in other.variables]
        assert not run_fn.warm_start(other, base)  # a logged cold start
        assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, other.variables,
                                                                strict=True))
    names = {n: v.shape for n, v in _weights(base).items()}
    wider_model = model_lib.build_qa_model(tiny_spec.replace(uri=wider))
    wider_model.save_weights(str(tmp_path / "wider_weights" / "w"))
    wider_names = {n: v.shape for n, v in _weights(str(tmp_path / "wider_weights" / "w")).items()}
    assert sorted(wider_names) == sorted(names) and wider_names != names


def test_warm_start_setting_off_ignores_the_base_model(tiny_spec, window_files, tmp_path):
    fn_args = tfx.components.FnArgs(
        train_files=[window_files["train"]], eval_files=[window_files["eval"]],
        serving_model_dir=str(tmp_path / "Trainer" / "model" / "1" / "Format-Serving"),
        model_run_dir=str(tmp_path / "Trainer" / "model_run" / "1"),
        train_steps=1, eval_steps=0, base_model=str(tmp_path),  # not a SavedModel
        custom_config={"spec": tiny_spec.to_json(), run_fn.WARM_START_KEY: False},
    )
    run_fn.run_fn(fn_args)
    assert os.path.exists(os.path.join(fn_args.serving_model_dir, "saved_model.pb"))
    fn_args.custom_config[run_fn.WARM_START_KEY] = True
    with pytest.raises(ValueError, match="base_model .* is not a SavedModel"):
        run_fn.run_fn(fn_args)


def test_executions_with_other_inputs_never_share_spec_model_dir_state(tiny_spec, window_files,
                                                                      tmp_path):
    """With `spec.model_dir` set, each execution keeps its state in its own subdirectory, so
    a crashed execution's backup is resumed by its retry only, never by another execution."""
    spec = tiny_spec.replace(model_dir=str(tmp_path / "state"))

    def execution(run: int, eval_files: str) -> None:
        run_fn.run_fn(tfx.components.FnArgs(
            train_files=[window_files["train"]], eval_files=[eval_files],
            serving_model_dir=str(tmp_path / "Trainer" / "model" / str(run) / "Format-Serving"),
            model_run_dir=str(tmp_path / "Trainer" / "model_run" / str(run)),
            train_steps=1, eval_steps=0, custom_config={"spec": spec.to_json()}))

    execution(1, window_files["eval"])
    execution(2, window_files["train"])  # other inputs
    execution(3, window_files["eval"])  # a re-run of the first
    states = sorted(os.listdir(spec.model_dir))
    assert len(states) == 2, states
    for state in states:
        assert os.path.exists(os.path.join(spec.model_dir, state, "checkpoints", "final.index"))
    assert not (tmp_path / "Trainer" / run_fn.TRAINING_STATE_DIR).exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fit_with_progress(steps: int, every_steps: int) -> None:
    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones([4, 2]), tf.ones([4, 1]))).repeat()
    logger = run_fn.ProgressLogger(steps, 4, every_steps, "local")
    model.fit(data, steps_per_epoch=steps, callbacks=[logger], verbose=0)


def test_progress_logs_steps_off_a_terminal_and_draws_a_bar_on_one(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="absl")  # earlier tests leave it at WARNING
    monkeypatch.setattr(progress, "LOG_EVERY_S", 3600.0)
    progress.set_console(io.StringIO())
    try:
        _fit_with_progress(12, every_steps=5)  # lines at every_steps and at the end
        steps = [m.split(" loss ")[0] for m in caplog.messages if m.endswith(" examples/s")]
        assert steps == ["[local] step 5/12", "[local] step 10/12", "[local] step 12/12"]

        monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # and every LOG_EVERY_S
        caplog.clear()
        _fit_with_progress(3, every_steps=1000)
        assert sum(m.endswith(" examples/s") for m in caplog.messages) == 3

        terminal = _Terminal()
        progress.set_console(terminal)
        caplog.clear()
        _fit_with_progress(12, every_steps=5)
        assert "Training from step 0 to 12" in caplog.text and "examples/s" not in caplog.text
        assert re.search(r"\[local\] training.*12/12.*loss=[\d.]+, examples/s=[\d.]+",
                         terminal.getvalue())
    finally:
        progress.set_console(None)
