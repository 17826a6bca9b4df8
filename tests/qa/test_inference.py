"""Tests of components.qa.inference: SavedModel and TFLite predictors behind one API."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from components.qa import inference
from components.qa import spec as spec_lib
from tests.evaluator.evaluator_fixtures import (  # noqa: F401 (re-exported to test_tflite)
    SEQ_LEN,
    VOCAB,
    WORDS,
    save_keyword_model,
    write_vocab,
)


def expected_logits(ids, mask, segments, keyword_id):
    score = np.where(ids == keyword_id, 5.0, 0.0) * mask
    return score + 0.1 * segments * mask, score


def random_windows(n: int, seq_len: int = SEQ_LEN, seed: int = 0) -> dict[str, np.ndarray]:
    """`n` windows of random ids, a real-token prefix and two segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(VOCAB), (n, seq_len)).astype(np.int32)
    lengths = rng.integers(seq_len // 2, seq_len + 1, n)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int32)
    segments = ((np.arange(seq_len)[None, :] >= 6) & (mask > 0)).astype(np.int32)
    return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}




@pytest.fixture(scope="module")
def keyword_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("keyword_model")
    vocab = write_vocab(root)
    return save_keyword_model(root / "saved_model", vocab), vocab


@pytest.fixture(scope="module")
def keyword_tflite(keyword_model, tmp_path_factory):
    from components.qa import tflite

    saved_model, vocab = keyword_model
    spec = spec_lib.MobileBertQaSpec(uri="unused", seq_len=SEQ_LEN, query_len=8, doc_stride=8)
    out = tmp_path_factory.mktemp("keyword_tflite") / "model.tflite"
    return tflite.export_tflite(saved_model, str(out), spec, vocab, quantization="float32")


def test_saved_model_predictor_returns_the_models_logits(keyword_model):
    saved_model, vocab = keyword_model
    predictor = inference.load_predictor(saved_model)
    assert isinstance(predictor, inference.SavedModelPredictor)
    assert predictor.seq_len == SEQ_LEN
    assert open(predictor.vocab_path).read() == open(vocab).read()
    w = random_windows(5)
    start, end = predictor.predict(w["input_ids"], w["input_mask"], w["segment_ids"])
    assert start.dtype == np.float32 and end.dtype == np.float32
    assert start.shape == end.shape == (5, SEQ_LEN)
    want_start, want_end = expected_logits(
        w["input_ids"], w["input_mask"], w["segment_ids"], VOCAB.index("houston")
    )
    np.testing.assert_allclose(start, want_start, atol=1e-5)
    np.testing.assert_allclose(end, want_end, atol=1e-5)


def test_tflite_predictor_loops_over_the_batch_and_extracts_the_vocab(
    keyword_tflite, keyword_model, tmp_path, monkeypatch
):
    _, vocab = keyword_model
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with inference.load_predictor(keyword_tflite) as predictor:
        assert os.listdir(tmp_path) == []  # the vocab is written when first asked for
        assert open(predictor.vocab_path, encoding="utf-8").read() == open(vocab).read()
        assert predictor.vocab_path.startswith(str(tmp_path))
    assert os.listdir(tmp_path) == []  # and removed on close
    predictor.close()  # twice is fine
    assert isinstance(predictor, inference.TFLitePredictor)
    assert predictor.seq_len == SEQ_LEN
    w = random_windows(3, seed=1)
    start, end = predictor.predict(w["input_ids"], w["input_mask"], w["segment_ids"])
    want_start, want_end = expected_logits(
        w["input_ids"], w["input_mask"], w["segment_ids"], VOCAB.index("houston")
    )
    # Each row is its own window: a batch of 3 is 3 single-window runs.
    np.testing.assert_allclose(start, want_start, atol=1e-3)
    np.testing.assert_allclose(end, want_end, atol=1e-3)


def test_tflite_without_metadata_is_read_by_its_signature(keyword_model, tmp_path):
    saved_model, _ = keyword_model
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    path = tmp_path / "bare.tflite"
    path.write_bytes(converter.convert())
    predictor = inference.load_predictor(str(path))
    assert predictor.vocab_path is None
    w = random_windows(2, seed=2)
    start, end = predictor.predict(w["input_ids"], w["input_mask"], w["segment_ids"])
    want_start, want_end = expected_logits(
        w["input_ids"], w["input_mask"], w["segment_ids"], VOCAB.index("houston")
    )
    np.testing.assert_allclose(start, want_start, atol=1e-3)
    np.testing.assert_allclose(end, want_end, atol=1e-3)


@pytest.mark.parametrize("which", ["saved_model", "tflite"])
def test_bad_inputs_are_refused_with_the_shape(which, keyword_model, keyword_tflite):
    predictor = inference.load_predictor(
        keyword_model[0] if which == "saved_model" else keyword_tflite
    )
    ok = np.zeros((2, SEQ_LEN), np.int32)
    with pytest.raises(ValueError, match=f"seq_len={SEQ_LEN}"):
        predictor.predict(ok[:, :10], ok[:, :10], ok[:, :10])
    with pytest.raises(ValueError, match="input_mask has shape"):
        predictor.predict(ok, ok[:1], ok)
    with pytest.raises(ValueError, match=r"\[batch, seq_len\]"):
        predictor.predict(ok[0], ok[0], ok[0])


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        inference.load_predictor(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="not a SavedModel"):
        inference.load_predictor(str(tmp_path))
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="neither a SavedModel"):
        inference.load_predictor(str(other))


def test_saved_model_without_the_serving_contract_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(
        lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32, name="x")]
    )
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.f})
    with pytest.raises(ValueError, match="must take"):
        inference.load_predictor(str(tmp_path))
