"""Hub encoders of both formats: loading, training through them, errors, make_encoder."""

import argparse
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from components.qa import encoders, mobilebert
from components.qa.spec import BertQaSpec, MobileBertQaSpec
from pipelines.cli import model as model_cli
from tests.qa import hub_fixtures

REFERENCE_CONFIG = mobilebert.PUBLISHED_CONFIG_PATH
# A MobileBERT small enough to build and save in a few seconds.
MICRO_CONFIG = {
    "num_hidden_layers": 1, "hidden_size": 32, "intra_bottleneck_size": 16,
    "num_attention_heads": 2, "num_feedforward_networks": 2, "intermediate_size": 32,
    "embedding_size": 16, "max_position_embeddings": 64, "normalization_type": "no_norm",
}
FORMATS = (encoders.TF1, encoders.TF2)


def _spec(uri, tf_format, **overrides):
    return MobileBertQaSpec(uri=uri, is_tf2=tf_format == encoders.TF2, **overrides)


def _features(batch=2, length=12):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, len(hub_fixtures.TINY_VOCAB), size=(batch, length)).astype(np.int32)
    mask = np.ones((batch, length), np.int32)
    mask[1, length // 2:] = 0
    segments = np.zeros((batch, length), np.int32)
    segments[:, length // 3:] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


HIDDEN = {encoders.TF1: MICRO_CONFIG["hidden_size"], encoders.TF2: 8}


@pytest.fixture(scope="module")
def micro_vocab(tmp_path_factory):
    return hub_fixtures.write_vocab(str(tmp_path_factory.mktemp("vocab") / "vocab.txt"))


@pytest.fixture(scope="module")
def micro_mobilebert(tmp_path_factory, micro_vocab):
    """make_encoder's MobileBERT in both formats, from a micro config (TF1 with `squad`)."""
    root = tmp_path_factory.mktemp("mobilebert")
    return {
        fmt: encoders.make_encoder(
            str(root / fmt), MICRO_CONFIG, vocab_path=micro_vocab, do_lower_case=False,
            tf_format=fmt, seed=3, squad=fmt == encoders.TF1,
        )
        for fmt in FORMATS
    }


@pytest.fixture(scope="module")
def toy_modules(tmp_path_factory, micro_mobilebert):
    """Modules with `tokens` and `squad` signatures: a toy third-party TF2 module, and
    make_encoder's TF1 MobileBERT (TF1 modules train with MobileBERT's layout only)."""
    root = tmp_path_factory.mktemp("hub")
    return {
        encoders.TF1: micro_mobilebert[encoders.TF1],
        encoders.TF2: hub_fixtures.make_module(str(root / "tf2"), "tf2", squad=True, hidden=8),
    }


@pytest.mark.parametrize("tf_format", FORMATS)
def test_load_encoder_sequence_output(toy_modules, tf_format):
    layer = encoders.load_encoder(_spec(toy_modules[tf_format], tf_format))
    outputs = layer(_features())
    assert outputs.shape == (2, 12, HIDDEN[tf_format])
    assert outputs.dtype == tf.float32
    assert np.abs(outputs.numpy()[0]).sum() > 0
    if tf_format == encoders.TF2:  # The toy encoder zeroes masked positions.
        np.testing.assert_allclose(outputs.numpy()[1, 6:], 0.0)


@pytest.mark.parametrize("tf_format", FORMATS)
def test_file_uri_and_plain_dir_load_the_same(toy_modules, tf_format):
    path = toy_modules[tf_format]
    plain = encoders.load_encoder(_spec(path, tf_format))(_features())
    file_uri = encoders.load_encoder(_spec("file://" + path, tf_format))(_features())
    np.testing.assert_allclose(plain.numpy(), file_uri.numpy())


def test_url_resolves_through_tf_hub(toy_modules, monkeypatch):
    """A tfhub.dev/Kaggle URL goes through hub.resolve (the download is stubbed out)."""
    asked = []

    def fake_resolve(handle):
        asked.append(handle)
        return toy_modules[encoders.TF1]

    monkeypatch.setattr(hub, "resolve", fake_resolve)
    url = "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/1"
    layer = encoders.load_encoder(MobileBertQaSpec(uri=url))
    assert layer(_features()).shape == (2, 12, HIDDEN[encoders.TF1])
    assert set(asked) == {url}


def test_gs_paths_are_kept_and_joined(monkeypatch):
    checked = []
    monkeypatch.setattr(tf.io.gfile, "exists", lambda path: checked.append(path) or True)
    assert encoders.resolve_module_dir("gs://bucket/encoders/mobilebert") == (
        "gs://bucket/encoders/mobilebert"
    )
    assert encoders.module_vocab_path("gs://bucket/encoders/mobilebert") == (
        "gs://bucket/encoders/mobilebert/assets/vocab.txt"
    )
    assert checked == ["gs://bucket/encoders/mobilebert/assets/vocab.txt"]


@pytest.mark.parametrize("tf_format", FORMATS)
def test_training_updates_the_module_variables(toy_modules, tf_format):
    """Gradients reach the module's variables in both formats, and a step changes them."""
    layer = encoders.load_encoder(_spec(toy_modules[tf_format], tf_format, trainable=True))
    features = _features()
    before = layer(features).numpy()
    assert layer.trainable_weights
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(features)))
    grads = tape.gradient(loss, layer.trainable_weights)
    used = [(g, v) for g, v in zip(grads, layer.trainable_weights, strict=True) if g is not None]
    # The toy encoder: word + segment embeddings, dense kernel and bias; MobileBERT: all but
    # the unused pooler-free [CLS] path.
    assert len(used) == (4 if tf_format == encoders.TF2 else len(layer.trainable_weights))
    assert all(float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0 for g, _ in used)
    tf.keras.optimizers.SGD(0.5).apply_gradients(used)
    assert np.abs(layer(features).numpy() - before).max() > 1e-4


@pytest.mark.parametrize("tf_format", FORMATS)
def test_frozen_encoder_has_no_trainable_weights(toy_modules, tf_format):
    layer = encoders.load_encoder(_spec(toy_modules[tf_format], tf_format, trainable=False))
    assert layer.trainable_weights == []
    assert layer.non_trainable_weights


@pytest.mark.parametrize("tf_format", FORMATS)
def test_squad_signature_gives_logits(toy_modules, tf_format):
    spec = _spec(toy_modules[tf_format], tf_format, init_from_squad_model=True)
    layer = encoders.load_encoder(spec)
    start_logits, end_logits = layer(_features())
    assert start_logits.shape == end_logits.shape == (2, 12)
    assert not np.allclose(start_logits.numpy(), end_logits.numpy())
    with tf.GradientTape() as tape:
        start_logits, _ = layer(_features())
        loss = tf.reduce_sum(start_logits)
    assert any(g is not None for g in tape.gradient(loss, layer.trainable_weights))


@pytest.mark.parametrize("tf_format", FORMATS)
def test_missing_squad_signature_is_named(tmp_path, micro_vocab, tf_format):
    path = encoders.make_encoder(str(tmp_path / "m"), MICRO_CONFIG, vocab_path=micro_vocab,
                                 tf_format=tf_format)
    with pytest.raises(ValueError, match=r"Cannot use the encoder module .*squad"):
        encoders.load_encoder(_spec(path, tf_format, init_from_squad_model=True))


def test_format_mismatch_names_the_found_format(toy_modules):
    """(The format is told by the files, before any variable is read.)"""
    with pytest.raises(ValueError, match=r"is in the TF1 Hub format; set is_tf2=False"):
        encoders.load_encoder(BertQaSpec(uri=toy_modules[encoders.TF1], is_tf2=True))
    with pytest.raises(ValueError, match=r"is in the TF2 SavedModel format; set is_tf2=True"):
        encoders.load_encoder(MobileBertQaSpec(uri=toy_modules[encoders.TF2]))


def test_not_a_module_names_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match=r"is not a TF-Hub module: looked for .*saved_model\.pb"):
        encoders.load_encoder(MobileBertQaSpec(uri=str(tmp_path)))
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere' does not exist"):
        encoders.load_encoder(MobileBertQaSpec(uri=missing))


@pytest.mark.parametrize("tf_format", FORMATS)
def test_missing_vocab_is_reported_before_loading(tmp_path, tf_format):
    path = hub_fixtures.make_module(str(tmp_path / "m"), tf_format, with_vocab=False)
    with pytest.raises(FileNotFoundError, match=r"has no vocab at .*assets/vocab\.txt"):
        encoders.load_encoder(_spec(path, tf_format))


def test_reference_config_has_mobilebert_size():
    """Model Garden's MobileBERTEncoder for the published config: 24,581,888 parameters."""
    encoder = mobilebert.build_mobilebert_encoder(REFERENCE_CONFIG, vocab_size=30522)
    assert abs(encoder.count_params() - 24_581_888) <= 0.02 * 24_581_888
    layer_names = [layer.name for layer in encoder.layers]
    assert sum(name.startswith("transformer_layer_") for name in layer_names) == 24


def test_tiny_config_is_small():
    encoder = mobilebert.build_mobilebert_encoder(mobilebert.TINY_CONFIG_PATH, vocab_size=30522)
    with open(mobilebert.TINY_CONFIG_PATH) as f:
        config = json.load(f)
    assert config["num_hidden_layers"] == 2
    # Learnable from random weights (see mobilebert.TINY_CONFIG_PATH); the reference keeps no_norm.
    assert (config["normalization_type"], config["initializer_range"]) == ("layer_norm", 0.1)
    with open(REFERENCE_CONFIG) as f:
        assert json.load(f)["normalization_type"] == "no_norm"
    assert encoder.count_params() < 4_000_000


@pytest.mark.parametrize("tf_format", FORMATS)
def test_make_encoder_loads_with_matching_is_tf2(micro_mobilebert, micro_vocab, tf_format):
    path = micro_mobilebert[tf_format]
    assert encoders.module_format(path) == tf_format
    with open(encoders.module_vocab_path(path)) as written, open(micro_vocab) as given:
        assert written.read() == given.read()
    layer = encoders.load_encoder(_spec(path, tf_format, do_lower_case=False))
    outputs = layer(_features())
    assert outputs.shape == (2, 12, MICRO_CONFIG["hidden_size"])
    assert np.isfinite(outputs.numpy()).all()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(_features())))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert sum(g is not None for g in grads) > 10


def test_make_encoder_records_do_lower_case(micro_mobilebert):
    tf2 = hub.load(micro_mobilebert[encoders.TF2])
    assert bool(tf2.do_lower_case.numpy()) is False
    assert os.path.basename(tf2.vocab_file.asset_path.numpy().decode()) == "vocab.txt"
    tf1 = hub.load(micro_mobilebert[encoders.TF1])
    info = tf1.signatures["tokenization_info"]()
    assert bool(info["do_lower_case"].numpy()) is False


def test_make_encoder_is_deterministic(tmp_path, micro_mobilebert, micro_vocab):
    again = encoders.make_encoder(
        str(tmp_path / "again"), MICRO_CONFIG, vocab_path=micro_vocab, tf_format=encoders.TF2,
        seed=3,
    )
    other = encoders.make_encoder(
        str(tmp_path / "other"), MICRO_CONFIG, vocab_path=micro_vocab, tf_format=encoders.TF2,
        seed=4,
    )
    first = hub.load(micro_mobilebert[encoders.TF2])
    weights = [v.numpy() for v in first.trainable_variables]
    assert all(np.array_equal(a, v.numpy())
               for a, v in zip(weights, hub.load(again).trainable_variables, strict=True))
    assert not all(np.array_equal(a, v.numpy())
                   for a, v in zip(weights, hub.load(other).trainable_variables, strict=True))


def test_make_encoder_keeps_existing_files(tmp_path, micro_vocab):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not empty"):
        encoders.make_encoder(str(out), MICRO_CONFIG, vocab_path=micro_vocab)
    assert (out / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "config, message",
    [
        ({**MICRO_CONFIG, "num_layers": 2}, r"unknown MobileBERT config key\(s\) \['num_layers'\]"),
        ({**MICRO_CONFIG, "trigram_input": False}, "trigram_input=false is not supported"),
        ({**MICRO_CONFIG, "vocab_size": 30522}, "vocab_size=30522 does not match the vocab's 37"),
    ],
)
def test_make_encoder_config_errors(tmp_path, micro_vocab, config, message):
    with pytest.raises(ValueError, match=message):
        encoders.make_encoder(str(tmp_path / "m"), config, vocab_path=micro_vocab)
    assert not (tmp_path / "m").exists()


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({"hidden_size": 64, "hidden_layers": 2}))
    with pytest.raises(ValueError, match=r"bert_config\.json: unknown .*'hidden_layers'"):
        mobilebert.load_encoder_config(str(path))


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    model_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_make_encoder(tmp_path, micro_vocab, capsys):
    out = str(tmp_path / "enc")
    code = _run_cli([
        "make-encoder", "--out", out, "--layers", "1", "--hidden", "32", "--bottleneck", "16",
        "--heads", "2", "--ffn-layers", "1", "--intermediate", "32", "--embedding", "16",
        "--max-seq-len", "64", "--vocab", micro_vocab, "--format", "tf1", "--seed", "1",
    ])
    assert code == 0
    assert f"Wrote the encoder to {out}" in capsys.readouterr().out
    layer = encoders.load_encoder(MobileBertQaSpec(uri=out))
    assert layer(_features()).shape == (2, 12, 32)


def test_cli_make_encoder_error_exit_code(tmp_path, capsys):
    code = _run_cli(["make-encoder", "--out", str(tmp_path / "e"), "--config", "missing.json"])
    assert code == 2
    assert "mbqa make-encoder: error:" in capsys.readouterr().err
