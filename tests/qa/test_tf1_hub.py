"""TF1 Hub modules: the published layout, and their weights in a native MobileBERT.

The original layout is checked against tests/data/reference/ (the original MobileBERT
checkpoint's names and shapes, derived from google-research's mobilebert/modeling.py), not
against this package's own name tables.
"""

import hashlib
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from components.qa import encoders, mobilebert, squad_json, tf1_hub
from components.qa.spec import MobileBertQaSpec
from components.qa.windows import AnswerNotFoundError, WindowConfig, WindowMaker
from components.trainer import run_fn
from tests.qa import hub_fixtures
from tests.trainer import fixtures as trainer_fixtures

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
with open(mobilebert.PUBLISHED_CONFIG_PATH) as _f:
    PUBLISHED = json.load(_f)
# The original checkpoint of the published config: encoder variables; heads outside it.
ORIGINAL = hub_fixtures.read_reference_variables(hub_fixtures.ORIGINAL_VARIABLES)
ORIGINAL_HEADS = hub_fixtures.read_reference_variables(hub_fixtures.ORIGINAL_HEADS)


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
    # The original code's names and shapes for CONFIG (its other keys: the published ones).
    encoder, heads = hub_fixtures.original_layout({**PUBLISHED, **CONFIG, "vocab_size": 30522})
    squad = {name: heads[name] for name in (tf1_hub.SQUAD_WEIGHTS, tf1_hub.SQUAD_BIAS)}
    assert variables == {**encoder, **squad}
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


def test_reference_files_are_the_original_layout_of_the_published_config():
    encoder, heads = hub_fixtures.original_layout(PUBLISHED)
    assert ORIGINAL == encoder
    assert ORIGINAL_HEADS == heads
    assert len(ORIGINAL) == 7 + 24 * 46
    assert sum(int(np.prod(shape)) for shape in ORIGINAL.values()) == 24_581_888  # 24.6 M


@pytest.fixture(scope="module")
def original_checkpoint(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
    """(module dir, weights): a TF1 module's `variables/` with the original checkpoint's
    encoder variables (the reference file), every head of the original code (cls/squad,
    cls/predictions, cls/seq_relationship) and global_step, of random values; like the
    published module, no config file."""
    weights = hub_fixtures.random_original_weights({**ORIGINAL, **ORIGINAL_HEADS})
    path = hub_fixtures.write_tf1_checkpoint(
        str(tmp_path_factory.mktemp("original")), {**weights, "global_step": np.int64(1000)}
    )
    return path, weights


def _fingerprint(value: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(value, np.float32).tobytes()).hexdigest()


def _original_shape(native_name: str, shape: tf.TensorShape) -> list[int]:
    """A native variable's shape with its per-head dimensions merged, as the original keeps
    them (Model Garden's converter splits [in, heads*size] into [in, heads, size], the
    attention output's [heads*size, out] into [heads, size, out], biases [heads*size] into
    [heads, size])."""
    shape = shape.as_list()
    if "/attention/" in native_name and len(shape) == 3:
        if "attention_output" in native_name:
            return [shape[0] * shape[1], shape[2]]
        return [shape[0], shape[1] * shape[2]]
    if "/attention/" in native_name and len(shape) == 2 and "bias" in native_name:
        return [shape[0] * shape[1]]
    return shape


def _mobilebert(native: tf.keras.Model) -> tf.keras.Model:
    from official.nlp.modeling.networks import MobileBERTEncoder

    return next(layer for layer in native.layers if isinstance(layer, MobileBERTEncoder))


def test_config_of_the_original_checkpoint_falls_back_to_the_published_one(
    original_checkpoint, caplog
):
    path, _ = original_checkpoint
    caplog.set_level(logging.INFO, logger="absl")  # another test may have raised its level
    config = tf1_hub.infer_config(path, tf1_hub.read_module_variables(path))
    assert config == {key: PUBLISHED[key] for key in config}
    assert set(config) >= {"num_attention_heads", "hidden_act", "num_hidden_layers",
                           "num_feedforward_networks", "intra_bottleneck_size"}
    assert f"from {mobilebert.PUBLISHED_CONFIG_PATH}" in caplog.text


def test_the_reader_maps_every_variable_of_the_original_checkpoint(original_checkpoint):
    """Every encoder variable of the original checkpoint goes into its own native variable of
    the same (per-head merged) shape, the cls/squad head into the squad head; the other heads
    and global_step are ignored."""
    path, weights = original_checkpoint
    native = tf1_hub.build_native_encoder(path, squad=True)
    originals = {_fingerprint(weights[name]): name for name in ORIGINAL}
    read = {}
    for variable in _mobilebert(native).variables:
        name = originals.get(_fingerprint(variable.numpy()))
        assert name is not None, f"{variable.name} holds no variable of the original checkpoint"
        assert name not in read, f"{name} read into both {read[name]} and {variable.name}"
        assert _original_shape(variable.name, variable.shape) == ORIGINAL[name], variable.name
        read[name] = variable.name
    assert sorted(set(ORIGINAL) - set(read)) == []
    head = native.get_layer("squad_logits")
    np.testing.assert_array_equal(head.kernel.numpy(), weights[tf1_hub.SQUAD_WEIGHTS].T)
    np.testing.assert_array_equal(head.bias.numpy(), weights[tf1_hub.SQUAD_BIAS])


def test_a_kernel_of_the_right_size_but_another_shape_is_refused(module, tmp_path):
    """A transposed kernel has as many values as the encoder's: it must not be reshaped in."""
    variables = tf1_hub.read_module_variables(module)
    name = "bert/encoder/layer_1/output/bottleneck/dense/kernel"  # [32, 64]
    variables[name] = variables[name].T
    path = hub_fixtures.write_tf1_checkpoint(str(tmp_path / "transposed"), variables)
    with pytest.raises(ValueError, match=rf"{name} has shape \[64, 32\], the encoder needs "
                                         r"\[32, 64\]"):
        tf1_hub.build_native_encoder(path)


def test_native_encoder_computes_the_original_mobilebert(original_checkpoint):
    """Layer by layer, the native encoder computes what the original modeling.py computes
    with the original checkpoint's names (numpy, tests/qa/hub_fixtures.py): a swapped or
    misplaced variable changes some layer's output."""
    path, weights = original_checkpoint
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 30522, size=(2, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    segments = np.zeros_like(ids)
    segments[:, 5:] = 1
    encoder = _mobilebert(tf1_hub.build_native_encoder(path))
    outputs = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments},
                      training=False)["encoder_outputs"]
    expected = hub_fixtures.original_encoder_outputs(weights, ids, mask, segments)
    assert len(outputs) == len(expected) == 25  # embeddings, 24 layers
    for i, (actual, reference) in enumerate(zip(outputs, expected, strict=True)):
        scale = np.abs(reference).max()
        assert 0.5 < scale < 10
        assert np.abs(actual.numpy() - reference).max() <= 1e-4 * scale, f"output {i}"
    # The comparison can see a swap: query and key kernels of one layer change its output.
    layer = "bert/encoder/layer_3/attention/self/"
    swapped = dict(weights)
    swapped[layer + "query/kernel"], swapped[layer + "key/kernel"] = (
        weights[layer + "key/kernel"], weights[layer + "query/kernel"])
    changed = hub_fixtures.original_encoder_outputs(swapped, ids, mask, segments)[4]
    assert np.abs(changed - expected[4]).max() > 1e-2 * np.abs(expected[4]).max()


@pytest.mark.slow
@pytest.mark.xdist_group("published_size")
def test_a_published_size_module_without_a_config_file_trains_and_exports(tmp_path, caplog):
    """Like the published module: 24 layers, the original checkpoint's names, and no
    assets/mobilebert_config.json. The default spec's TF1 path reads the unset settings from
    the published config, checks the conversion, trains and exports."""
    module = encoders.make_encoder(
        str(tmp_path / "mobilebert"), mobilebert.PUBLISHED_CONFIG_PATH, tf_format=encoders.TF1
    )
    os.remove(os.path.join(module, tf1_hub.MODULE_CONFIG_ASSET))
    written = dict(tf.train.list_variables(os.path.join(module, "variables", "variables")))
    assert written == ORIGINAL
    spec = MobileBertQaSpec(uri=module, seq_len=trainer_fixtures.SEQ_LEN,
                            query_len=trainer_fixtures.QUERY_LEN, doc_stride=16)
    assert not spec.is_tf2
    windows = trainer_fixtures.write_windows(str(tmp_path / "windows" / "train.gz"), 4)
    caplog.set_level(logging.INFO, logger="absl")  # another test may have raised its level
    serving = run_fn.train_and_export(
        spec, windows, windows, str(tmp_path / "serving"), str(tmp_path / "state"),
        train_steps=2, eval_steps=0, batch_size=2,
    )
    assert f"from {mobilebert.PUBLISHED_CONFIG_PATH}" in caplog.text
    assert os.path.exists(os.path.join(serving, "saved_model.pb"))


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
        tf1_hub.add_tokenization_info_signature(vocab_path, True)

    path = str(tmp_path / "bert_tf1")
    tf1_hub.export_tf1_module(module_fn, path)
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
