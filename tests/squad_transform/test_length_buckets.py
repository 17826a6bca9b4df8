"""The tf.Transform analysis of window lengths into buckets, against numpy's quantiles."""

import math

import numpy as np
import pytest

from components.squad_transform import length_buckets

SEQ_LEN = 384


def _squad_like_lengths(count: int) -> list[int]:
    """Skewed like SQuAD's windows: many short passages, a tail up to seq_len."""
    rng = np.random.default_rng(0)
    return np.clip(rng.gamma(4.0, 40.0, count).astype(int) + 20, 20, SEQ_LEN).tolist()


def test_buckets_end_at_the_quantiles_of_the_lengths_rounded_up(tmp_path):
    lengths = _squad_like_lengths(5000)
    table = length_buckets.analyze_lengths(lengths, 8, SEQ_LEN, str(tmp_path / "graph"))
    assert len(table) == SEQ_LEN + 1 and table[SEQ_LEN] == SEQ_LEN
    ends = sorted(set(table[1:]))
    exact = [min(SEQ_LEN, 8 * math.ceil(np.quantile(lengths, i / 8) / 8)) for i in range(1, 8)]
    assert len(ends) == 8, ends
    for end, expected in zip(ends[:-1], exact, strict=True):  # tft's quantiles approximate
        assert abs(end - expected) <= length_buckets.PAD_MULTIPLE, (ends, exact)
    for n in range(1, SEQ_LEN + 1):  # each length in the first bucket that holds it
        assert table[n] == min(end for end in ends if end >= n)
    padded = np.array([table[n] for n in lengths])
    shares = np.array([(padded == end).mean() for end in ends])
    assert shares.min() > 0.5 / 8 and shares.max() < 2 / 8, shares
    assert padded.mean() - np.mean(lengths) < 24  # what the buckets are for: little padding


def test_one_bucket_is_refused_before_the_pipeline_runs(tmp_path):
    with pytest.raises(ValueError, match="num_buckets=1 must be >= 2"):
        length_buckets.analyze_lengths([30, 40, 50], 1, SEQ_LEN, str(tmp_path / "graph"))


def test_reading_checks_the_graph_and_its_seq_len(tmp_path):
    graph = str(tmp_path / "graph")
    length_buckets.analyze_lengths([30, 40, 50, 60], 2, 64, graph)
    with pytest.raises(ValueError, match="analysed for another seq_len than 128"):
        length_buckets.read_padded_lengths(graph, 128)
    with pytest.raises(ValueError, match="length_buckets=0"):
        length_buckets.read_padded_lengths(str(tmp_path), 64)
