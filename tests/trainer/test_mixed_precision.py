"""The Trainer's `mixed_precision` setting on CPU: bfloat16 training, float32 exports."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from official.nlp.optimization import AdamWeightDecay
from tfx import v1 as tfx

from components.qa import contracts, encoders, inference, mobilebert, tf1_hub, tflite
from components.qa import model as model_lib
from components.trainer import run_fn
from pipelines import config as config_lib
from pipelines.pipeline import trainer_custom_config
from tests.trainer import fixtures


@pytest.fixture(scope="module")
def no_norm_spec(tiny_spec, tmp_path_factory):
    """The tiny spec on a tiny TF1 module with the published MobileBERT's 'no_norm'."""
    config = {**mobilebert.load_encoder_config(mobilebert.TINY_CONFIG_PATH),
              "normalization_type": "no_norm"}
    uri = encoders.make_encoder(str(tmp_path_factory.mktemp("hub") / "no_norm"), config,
                                tf_format=encoders.TF1)
    return tiny_spec.replace(uri=uri)


def _compute_dtypes(model: tf.keras.Model, layer_type: type) -> set[str]:
    return {m.compute_dtype for m in model.submodules if isinstance(m, layer_type)}


def test_mixed_bfloat16_trains_in_bfloat16_and_exports_float32(
    no_norm_spec, window_files, tmp_path, monkeypatch
):
    built = []
    build = model_lib.build_qa_model

    def recording_build(spec):
        built.append(build(spec))
        return built[-1]

    monkeypatch.setattr(model_lib, "build_qa_model", recording_build)
    setting = config_lib.PipelineConfig().with_overrides(["mixed_precision=mixed_bfloat16"])
    fn_args = tfx.components.FnArgs(
        train_files=[window_files["train"]], eval_files=[window_files["eval"]],
        serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"),
        train_steps=3, eval_steps=1,
        custom_config={"spec": no_norm_spec.to_json(), run_fn.BATCH_SIZE_KEY: 4,
                       **trainer_custom_config(setting)},
    )
    run_fn.run_fn(fn_args)
    assert tf.keras.mixed_precision.global_policy().name == "float32"

    trained, exported = built  # trained under the policy, exported in float32
    for model, dtype in ((trained, "bfloat16"), (exported, "float32")):
        encoder = model.get_layer(tf1_hub.NATIVE_MODEL_NAME)
        assert _compute_dtypes(encoder, tf.keras.layers.EinsumDense) == {dtype}
        assert _compute_dtypes(encoder, tf.keras.layers.MultiHeadAttention) == {dtype}
        assert model.get_layer("span_logits").compute_dtype == dtype
    assert type(trained.optimizer) is AdamWeightDecay  # loss scaling is for float16 only
    for trained_weight, exported_weight in zip(trained.get_weights(), exported.get_weights(),
                                               strict=True):
        np.testing.assert_array_equal(trained_weight, exported_weight)
    with open(os.path.join(fn_args.serving_model_dir, contracts.TRAINING_RECORD)) as f:
        record = json.load(f)
    assert record["mixed_precision"] == "mixed_bfloat16"
    assert np.isfinite(record["final_loss"])

    signature = tf.saved_model.load(fn_args.serving_model_dir).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        name: (tf.int32, [None, fixtures.SEQ_LEN]) for name in contracts.SERVING_INPUTS}
    assert {k: v.dtype for k, v in signature.structured_outputs.items()} == {
        name: tf.float32 for name in contracts.SERVING_OUTPUTS}
    ids = np.random.default_rng(0).integers(1000, 2001, (2, fixtures.SEQ_LEN)).astype(np.int32)
    features = {"input_ids": ids, "input_mask": np.ones_like(ids),
                "segment_ids": np.ones_like(ids)}
    served = signature(**{k: tf.constant(v) for k, v in features.items()})
    in_bfloat16 = trained(features, training=False)
    for name in contracts.SERVING_OUTPUTS:  # the trained model's answers, in float32
        np.testing.assert_allclose(served[name], in_bfloat16[name], atol=0.02)

    path = tflite.export_tflite(fn_args.serving_model_dir, str(tmp_path / "model.tflite"),
                                no_norm_spec, encoders.module_vocab_path(no_norm_spec.uri),
                                quantization="dynamic")  # bfloat16 ops would not convert
    interpreter = tf.lite.Interpreter(model_path=path)
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.int32] * 3
    assert [d["dtype"] for d in interpreter.get_output_details()] == [np.float32] * 2
    with inference.load_predictor(path) as predictor:
        assert np.isfinite(predictor.predict(*features.values())).all()


def test_mixed_float16_compile_wraps_the_optimizer_in_loss_scaling_once(no_norm_spec):
    with run_fn._global_policy("mixed_float16"):
        model = model_lib.build_qa_model(no_norm_spec)
    model_lib.compile_qa_model(model, no_norm_spec, train_steps=10)
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert type(model.optimizer.inner_optimizer) is AdamWeightDecay
    assert {model.get_layer(n).compute_dtype for n in contracts.SERVING_OUTPUTS} == {"float32"}


@pytest.mark.parametrize("policy, message", [
    ("mixed_bfloat16", "normalization_type='layer_norm' cannot compute in bfloat16"),
    ("float16", "mixed_precision='float16' is not"),
])
def test_unusable_mixed_precision_fails_before_training_and_restores_the_policy(
    tiny_spec, window_files, tmp_path, policy, message
):
    with pytest.raises(ValueError, match=message):  # tiny_spec's module has layer_norm
        run_fn.train_and_export(
            tiny_spec, window_files["train"], window_files["eval"], str(tmp_path / "s"),
            str(tmp_path / "m"), train_steps=1, eval_steps=0, mixed_precision=policy,
        )
    assert tf.keras.mixed_precision.global_policy().name == "float32"
