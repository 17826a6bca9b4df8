"""`run_fn` inside the real TFX Trainer (LocalDagRunner, ML Metadata), and warm start."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.trainer import run_fn
from tests.trainer import fixtures


def _windows_examples_dir(window_files) -> str:
    """The Examples artifact dir holding Split-train/ and Split-eval/."""
    return os.path.dirname(os.path.dirname(window_files["train"]))


def _trainer_pipeline(root, spec, window_files, base_model_uri=None) -> tfx.dsl.Pipeline:
    examples = tfx.dsl.Importer(
        source_uri=_windows_examples_dir(window_files),
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": json.dumps(["train", "eval"])},
    ).with_id("windows")
    components = [examples]
    base_model = None
    if base_model_uri:
        base = tfx.dsl.Importer(
            source_uri=base_model_uri, artifact_type=tfx.types.standard_artifacts.Model
        ).with_id("base_model")
        components.append(base)
        base_model = base.outputs["result"]
    trainer = tfx.components.Trainer(
        run_fn="components.trainer.run_fn.run_fn",
        examples=examples.outputs["result"],
        base_model=base_model,
        train_args=tfx.proto.TrainArgs(num_steps=4),
        eval_args=tfx.proto.EvalArgs(num_steps=2),
        custom_config={"spec": spec.to_json(), run_fn.BATCH_SIZE_KEY: 4},
    )
    components.append(trainer)
    return tfx.dsl.Pipeline(
        pipeline_name="trainer_test",
        pipeline_root=str(root / "pipeline"),
        components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
    )


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
def test_tfx_trainer_runs_run_fn_and_warm_starts_from_a_base_model(
    tiny_spec, window_files, tmp_path
):
    tfx.orchestration.LocalDagRunner().run(_trainer_pipeline(tmp_path, tiny_spec, window_files))
    (model_uri,) = _model_uris(tmp_path)
    serving = os.path.join(model_uri, "Format-Serving")
    signature = tf.saved_model.load(serving).signatures["serving_default"]
    assert sorted(signature.structured_outputs) == ["end_logits", "start_logits"]
    model_run_dirs = [a for a in os.listdir(tmp_path / "pipeline" / "Trainer" / "model_run")]
    (run_dir,) = model_run_dirs
    run_files = os.listdir(tmp_path / "pipeline" / "Trainer" / "model_run" / run_dir)
    assert {"checkpoints", "logs"} <= set(run_files)

    # Warm start: a run with learning rate ~0 keeps the base model's outputs.
    frozen = tiny_spec.replace(learning_rate=1e-12)
    warm_root = tmp_path / "warm"
    warm_root.mkdir()
    tfx.orchestration.LocalDagRunner().run(
        _trainer_pipeline(warm_root, frozen, window_files, base_model_uri=model_uri)
    )
    (warm_uri,) = _model_uris(warm_root)
    warm = tf.saved_model.load(os.path.join(warm_uri, "Format-Serving"))
    rng = np.random.default_rng(0)
    ids = tf.constant(rng.integers(1000, 2001, (3, fixtures.SEQ_LEN)), tf.int32)
    ones = tf.ones_like(ids)
    before = signature(input_ids=ids, input_mask=ones, segment_ids=ones)
    after = warm.signatures["serving_default"](input_ids=ids, input_mask=ones, segment_ids=ones)
    np.testing.assert_allclose(after["start_logits"], before["start_logits"], atol=1e-4)


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
