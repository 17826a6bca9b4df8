"""The span head, Model Maker's training recipe and the serving export."""

import numpy as np
import pytest
import tensorflow as tf

from components.qa import contracts, encoders
from components.qa import model as model_lib
from components.qa import spec as spec_lib
from tests.qa import hub_fixtures

SEQ_LEN = 16


def _spec(uri: str, **overrides) -> spec_lib.MobileBertQaSpec:
    params = dict(uri=uri, is_tf2=True, seq_len=SEQ_LEN, query_len=4, doc_stride=8)
    params.update(overrides)
    return spec_lib.MobileBertQaSpec(**params)


def _inputs(batch: int = 3, seed: int = 0) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": tf.constant(rng.integers(0, 30, (batch, SEQ_LEN)), tf.int32),
        "input_mask": tf.ones((batch, SEQ_LEN), tf.int32),
        "segment_ids": tf.constant([[0] * 6 + [1] * (SEQ_LEN - 6)] * batch, tf.int32),
    }


@pytest.fixture(scope="module")
def tf2_module(tmp_path_factory) -> str:
    return hub_fixtures.make_tf2_module(str(tmp_path_factory.mktemp("m") / "tf2"))


@pytest.fixture(scope="module")
def squad_module(tmp_path_factory) -> str:
    return hub_fixtures.make_tf2_module(str(tmp_path_factory.mktemp("m") / "sq"), squad=True)


def test_span_head_gives_start_and_end_logits_per_token(tf2_module):
    spec = _spec(tf2_module, dropout_rate=0.3, initializer_range=0.05)
    model = model_lib.build_qa_model(spec)
    outputs = model(_inputs(), training=False)
    assert sorted(outputs) == ["end_logits", "start_logits"]
    for logits in outputs.values():
        assert logits.shape == (3, SEQ_LEN) and logits.dtype == tf.float32
    assert not np.allclose(outputs["start_logits"], outputs["end_logits"])
    head = model.get_layer("span_logits")
    assert head.units == 2
    assert isinstance(head.kernel_initializer, tf.keras.initializers.TruncatedNormal)
    assert head.kernel_initializer.stddev == 0.05
    assert model.get_layer("span_dropout").rate == 0.3
    # Dropout is active in training only.
    assert np.allclose(model(_inputs(), training=False)["start_logits"],
                       outputs["start_logits"])


def test_encoder_weights_are_trained(tf2_module):
    model = model_lib.build_qa_model(_spec(tf2_module))
    names = [v.name for v in model.trainable_variables]
    assert any("span_logits" in n for n in names) and len(names) > 2
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(_inputs(), training=True)["start_logits"] ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)


@pytest.fixture(scope="module")
def tf1_squad_module(tmp_path_factory) -> str:
    """make_encoder's tiny MobileBERT in the TF1 Hub format, with a `squad` signature."""
    out = str(tmp_path_factory.mktemp("m") / "tf1")
    return encoders.make_encoder(out, tf_format=encoders.TF1, squad=True)


def test_tf1_module_builds_the_same_contract(tf1_squad_module):
    model = model_lib.build_qa_model(_spec(tf1_squad_module, is_tf2=False))
    outputs = model(_inputs(), training=False)
    assert outputs["start_logits"].shape == (3, SEQ_LEN)
    assert len(model.trainable_variables) > 2
    assert "span_logits" in [layer.name for layer in model.layers]


def test_tf1_init_from_squad_model_starts_from_the_module_squad_head(tf1_squad_module):
    spec = _spec(tf1_squad_module, is_tf2=False, init_from_squad_model=True)
    model = model_lib.build_qa_model(spec)
    inputs = _inputs()
    expected = tf.saved_model.load(tf1_squad_module).signatures["squad"](**inputs)
    outputs = model(inputs, training=False)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(outputs[name], expected[name], atol=1e-5)


def test_init_from_squad_model_uses_the_module_squad_logits(squad_module):
    model = model_lib.build_qa_model(_spec(squad_module, init_from_squad_model=True))
    names = [layer.name for layer in model.layers]
    assert "span_logits" not in names
    inputs = _inputs()
    squad = tf.saved_model.load(squad_module).signatures["squad"]
    expected = squad(input_word_ids=inputs["input_ids"], input_mask=inputs["input_mask"],
                     input_type_ids=inputs["segment_ids"])
    outputs = model(inputs, training=False)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-5, atol=1e-6)


def test_weight_decay_skips_layer_norm_and_bias(tf2_module):
    optimizer = model_lib.create_optimizer(1e-4, 100)
    assert optimizer.weight_decay_rate == 0.01
    decayed = {
        "mobile_bert_encoder/transformer_layer_0/attention/key/kernel:0": True,
        "encoder/transformer/layer_norm/gamma:0": False,
        "bert/encoder/layer_0/output/LayerNorm/beta:0": False,
        "span_logits/bias:0": False,
        "span_logits/kernel:0": True,
    }
    for name, expected in decayed.items():
        assert optimizer._do_use_weight_decay(name) is expected, name
    model = model_lib.build_qa_model(_spec(tf2_module))
    by_name = {v.name: optimizer._do_use_weight_decay(v.name) for v in model.variables}
    head = {n: d for n, d in by_name.items() if "span_logits" in n}
    assert head == {"span_logits/kernel:0": True, "span_logits/bias:0": False}


def test_learning_rate_warms_up_over_10_percent_then_decays_to_zero():
    schedule = model_lib.create_optimizer(1e-3, 200).learning_rate
    lr = {step: float(schedule(step)) for step in (0, 10, 20, 110, 200)}
    assert lr[0] == 0.0
    assert lr[10] == pytest.approx(0.5e-3)
    assert lr[20] == pytest.approx(1e-3 * (1 - 20 / 200))  # warm-up ends at step 20
    assert lr[110] == pytest.approx(1e-3 * (1 - 110 / 200))
    assert lr[200] == pytest.approx(0.0, abs=1e-12)


def test_gradients_are_clipped_to_global_norm_one():
    optimizer = model_lib.create_optimizer(1e-2, 1)  # 1 step: no warm-up, lr 1e-2 at step 0
    assert optimizer.gradient_clip_norm == 1.0
    big, tiny = tf.Variable(0.0), tf.Variable(0.0)
    # Adam's step is about lr * g / (|g| + 1e-6): about lr/2 for g = 1e-6 unclipped, but
    # about lr/1000 once the global norm (1000) is clipped to 1.
    optimizer.apply_gradients([(tf.constant(1000.0), big), (tf.constant(1e-6), tiny)])
    assert abs(float(big.numpy())) == pytest.approx(1e-2, rel=1e-3)
    assert abs(float(tiny.numpy())) < 1e-2 / 100


def test_loss_is_the_mean_of_start_and_end_cross_entropies(tf2_module):
    spec = _spec(tf2_module)
    model = model_lib.build_qa_model(spec)
    model_lib.compile_qa_model(model, spec, train_steps=10)
    rng = np.random.default_rng(1)
    start_logits = tf.constant(rng.normal(size=(4, SEQ_LEN)), tf.float32)
    end_logits = tf.constant(rng.normal(size=(4, SEQ_LEN)), tf.float32)
    starts, ends = tf.constant([0, 3, 5, 15]), tf.constant([0, 4, 9, 15])
    loss = model.compute_loss(
        y={"start_logits": starts, "end_logits": ends},
        y_pred={"start_logits": start_logits, "end_logits": end_logits},
    )

    def cross_entropy(labels, logits):
        log_probs = tf.nn.log_softmax(logits).numpy()
        return -np.mean(log_probs[np.arange(4), labels.numpy()])

    expected = (cross_entropy(starts, start_logits) + cross_entropy(ends, end_logits)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_export_has_the_serving_contract(tf2_module, tmp_path):
    spec = _spec(tf2_module)
    model = model_lib.build_qa_model(spec)
    path = model_lib.export_serving_model(model, str(tmp_path / "serving"), spec)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert sorted(inputs) == sorted(contracts.SERVING_INPUTS)
    for tensor_spec in inputs.values():
        assert tensor_spec.dtype == tf.int32 and tensor_spec.shape.as_list() == [None, SEQ_LEN]
    outputs = signature.structured_outputs
    assert sorted(outputs) == sorted(contracts.SERVING_OUTPUTS)
    for tensor_spec in outputs.values():
        assert tensor_spec.dtype == tf.float32 and tensor_spec.shape.as_list() == [None, SEQ_LEN]
    batch = _inputs(batch=5, seed=3)
    served = signature(**batch)
    expected = model(batch, training=False)
    for name in contracts.SERVING_OUTPUTS:
        np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-6)
