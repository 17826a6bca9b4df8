"""TF1 Hub modules: the published layout, and their weights in a native MobileBERT."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from components.qa import encoders, squad_json, tf1_hub
from components.qa.spec import MobileBertQaSpec
from components.qa.windows import AnswerNotFoundError, WindowConfig, WindowMaker
from tests.qa import hub_fixtures

SQUAD = "tests/data/squad/dev-v2.0-first5articles.official.json"
# A two-layer MobileBERT with the published config's layout (no_norm, 4 FFNs, shared
# key/query bottleneck) at a small size, on the BERT uncased vocab; weights drawn wide
# (initializer_range 0.3) so that attention is far from uniform and every head matters.
CONFIG = {
    "num_hidden_layers": 2, "hidden_size": 64, "intra_bottleneck_size": 32,
    "num_attention_heads": 4, "num_feedforward_networks": 4, "intermediate_size": 32,
    "embedding_size": 32, "max_position_embeddings": 64, "normalization_type": "no_norm",
    "initializer_range": 0.3,
}


@pytest.fixture(scope="module")
def module(tmp_path_factory) -> str:
    return encoders.make_encoder(
        str(tmp_path_factory.mktemp("tf1") / "mobilebert"), CONFIG, tf_format=encoders.TF1,
        seed=5, squad=True,
    )


@pytest.fixture(scope="module")
def real_windows(module) -> dict[str, np.ndarray]:
    """The first 16 windows (seq_len 64) of real SQuAD 2.0 dev questions."""
    maker = WindowMaker(encoders.module_vocab_path(module), WindowConfig(64, 16, 32))
    examples, _ = squad_json.read_squad_examples(SQUAD)
    windows = []
    for example in examples:
        try:
            windows += maker.make_windows(example, training=False)
        except AnswerNotFoundError:
            continue
        if len(windows) >= 16:
            break
    return {name: np.array([getattr(w, name) for w in windows[:16]], np.int32)
            for name in tf1_hub.INPUT_NAMES}


def test_module_has_the_published_layout(module):
    variables = dict(tf.train.list_variables(os.path.join(module, "variables", "variables")))
    args = encoders.mobilebert_encoder_args(CONFIG, vocab_size=30522)
    expected = set(tf1_hub.original_names(args)) | {tf1_hub.SQUAD_WEIGHTS, tf1_hub.SQUAD_BIAS}
    assert set(variables) == expected
    layer = "bert/encoder/layer_1/"
    assert variables["bert/embeddings/word_embeddings"] == [30522, 32]
    assert variables[layer + "attention/self/query/kernel"] == [32, 32]  # heads merged
    assert variables[layer + "attention/self/value/bias"] == [32]
    assert variables[layer + "attention/output/dense/kernel"] == [32, 32]
    assert variables[layer + "ffn_layer_2/output/FakeLayerNorm/gamma"] == [32]
    assert variables[layer + "output/bottleneck/dense/kernel"] == [32, 64]
    assert variables[tf1_hub.SQUAD_WEIGHTS] == [2, 64]
    loaded = hub.load(module)
    assert set(loaded.signatures) >= {"tokens", "squad", "tokenization_info"}
    tokens = loaded.signatures["tokens"]
    assert set(tokens.structured_input_signature[1]) == set(tf1_hub.INPUT_NAMES)
    assert set(tokens.structured_outputs) == {"sequence_output", "pooled_output"}
    assert set(loaded.signatures["squad"].structured_outputs) == {"start_logits", "end_logits"}
    assert os.path.exists(os.path.join(module, "assets", "vocab.txt"))
    assert os.path.exists(os.path.join(module, encoders.TF1_MODULE_FILE))


def test_config_is_read_from_the_checkpoint(module):
    variables = tf1_hub.read_module_variables(module)
    config = tf1_hub.infer_config(module, variables)
    assert {k: config[k] for k in CONFIG} == CONFIG
    assert config["vocab_size"] == 30522
    assert config["key_query_shared_bottleneck"] is True


def test_native_encoder_equals_the_module_on_real_windows(module, real_windows):
    native = tf1_hub.build_native_encoder(module)
    signature = hub.load(module).signatures["tokens"]
    expected = signature(**{k: tf.constant(v) for k, v in real_windows.items()})
    actual = native(real_windows, training=False).numpy()
    reference = expected["sequence_output"].numpy()
    assert actual.shape == (16, 64, 64)
    assert np.abs(reference).max() > 0.1
    assert np.abs(actual - reference).max() <= 1e-5


def test_squad_head_equals_the_module_squad_signature(module, real_windows):
    native = tf1_hub.build_native_encoder(module, squad=True)
    expected = hub.load(module).signatures["squad"](
        **{k: tf.constant(v) for k, v in real_windows.items()}
    )
    start, end = native(real_windows, training=False)
    np.testing.assert_allclose(start, expected["start_logits"], atol=1e-5)
    np.testing.assert_allclose(end, expected["end_logits"], atol=1e-5)


def test_check_conversion_passes_and_catches_a_wrong_head_count(module, tmp_path):
    assert tf1_hub.check_conversion(module, tf1_hub.build_native_encoder(module)) <= 1e-5
    squad = tf1_hub.build_native_encoder(module, squad=True)
    assert tf1_hub.check_conversion(module, squad, squad=True) <= 1e-5
    copy = str(tmp_path / "copy")
    tf.io.gfile.makedirs(copy)
    for root, _, files in tf.io.gfile.walk(module):
        for name in files:
            target = os.path.join(copy, os.path.relpath(os.path.join(root, name), module))
            tf.io.gfile.makedirs(os.path.dirname(target))
            tf.io.gfile.copy(os.path.join(root, name), target)
    config_path = os.path.join(copy, tf1_hub.MODULE_CONFIG_ASSET)
    with open(config_path) as f:
        config = json.load(f)
    config["num_attention_heads"] = 1
    with open(config_path, "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=r"differs from the module's own output .*"
                       r"num_attention_heads, hidden_act"):
        tf1_hub.check_conversion(copy, tf1_hub.build_native_encoder(copy))
    config["hidden_size"] = 32  # contradicts the checkpoint
    with open(config_path, "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=r"contradicts the module's variables: hidden_size=32"):
        tf1_hub.build_native_encoder(copy)


def test_a_tf1_module_of_another_layout_is_named(tmp_path):
    path = hub_fixtures.make_tf1_module(str(tmp_path / "toy"))
    with pytest.raises(ValueError, match=r"Cannot use the encoder module .*original MobileBERT"):
        encoders.load_encoder(MobileBertQaSpec(uri=path))


def test_a_bert_tf1_module_is_refused_with_the_tf2_advice(tmp_path):
    """BERT's TF1 Hub modules keep their variables under `bert/embeddings/word_embeddings`
    (no MobileBERT `embedding_transformation`): README says they are refused with advice."""
    vocab_path = hub_fixtures.write_vocab(str(tmp_path / "src" / "vocab.txt"))
    vocab_size = encoders.vocab_size_of(vocab_path)

    def module_fn() -> None:
        inputs = {name: tf.compat.v1.placeholder(tf.int32, [None, None], name=name)
                  for name in encoders.TF2_INPUT_NAMES}
        with tf.compat.v1.variable_scope("bert/embeddings"):
            table = tf.compat.v1.get_variable("word_embeddings", [vocab_size, 8])
        sequence = tf.nn.embedding_lookup(table, inputs["input_ids"])
        hub.add_signature("tokens", inputs=inputs, outputs={
            "sequence_output": sequence, "pooled_output": sequence[:, 0]})
        encoders.add_tokenization_info_signature(vocab_path, True)

    path = str(tmp_path / "bert_tf1")
    encoders.export_tf1_module(module_fn, path)
    with pytest.raises(ValueError, match=r"is a BERT TF1 Hub module: .*use a TF2 SavedModel "
                                         r"module for BERT \(is_tf2=True\)"):
        encoders.load_encoder(MobileBertQaSpec(uri=path))


@pytest.mark.parametrize("strategy_name", ["one_device", "mirrored"])
def test_native_encoder_trains_under_a_strategy(module, real_windows, strategy_name):
    """What the TF1 module could not do through hub.KerasLayer: variables in the scope."""
    strategy = (tf.distribute.OneDeviceStrategy("/cpu:0") if strategy_name == "one_device"
                else tf.distribute.MirroredStrategy(["/cpu:0"]))
    with strategy.scope():
        encoder = encoders.load_encoder(MobileBertQaSpec(uri=module))
        optimizer = tf.keras.optimizers.SGD(1e-3)
    assert all(strategy.extended.variable_created_in_scope(v) for v in encoder.variables)
    before = encoder(real_windows).numpy()

    @tf.function
    def step(features):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(encoder(features, training=True))
        grads = tape.gradient(loss, encoder.trainable_variables)
        optimizer.apply_gradients(zip(grads, encoder.trainable_variables, strict=True))
        return loss

    strategy.run(step, args=(real_windows,))
    after = encoder(real_windows).numpy()
    assert np.isfinite(after).all()
    assert np.abs(after - before).max() > 1e-4
