"""The window TFRecords → tf.data pipeline."""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import dataset
from tests.trainer import fixtures


def test_batches_have_model_inputs_and_span_labels(window_files):
    ds = dataset.make_window_dataset(window_files["eval"], 4, fixtures.SEQ_LEN, training=False)
    features, labels = next(iter(ds))
    assert sorted(features) == ["input_ids", "input_mask", "segment_ids"]
    for tensor in features.values():
        assert tensor.dtype == tf.int32 and tensor.shape == (4, fixtures.SEQ_LEN)
    assert sorted(labels) == ["end_logits", "start_logits"]
    starts, ends = labels["start_logits"].numpy(), labels["end_logits"].numpy()
    assert labels["start_logits"].dtype == tf.int32 and starts.shape == (4,)
    assert (ends == starts + 1).all()
    # The answer follows the marker token 2000 in every window.
    ids = features["input_ids"].numpy()
    assert all(ids[i, starts[i] - 1] == 2000 for i in range(4))


def test_eval_order_is_the_file_order_and_repeats(window_files):
    ds = dataset.make_window_dataset(window_files["eval"], 8, fixtures.SEQ_LEN, training=False)
    batches = [labels["start_logits"].numpy().tolist() for _, labels in ds.take(5)]
    assert batches[4] == batches[0]  # 32 windows = 4 batches, then it starts again.


def test_per_replica_batches_with_an_input_context(window_files):
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    ds = dataset.make_window_dataset(
        window_files["train"], 8, fixtures.SEQ_LEN, training=True, input_context=context
    )
    features, _ = next(iter(ds))
    assert features["input_ids"].shape == (4, fixtures.SEQ_LEN)


def test_no_matching_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No window TFRecord files match"):
        dataset.make_window_dataset(str(tmp_path / "nothing*"), 4, 32, training=True)


def test_wrong_seq_len_names_file_question_and_field(window_files):
    with pytest.raises(ValueError, match=r"q1-0.*'input_ids'.*seq_len=64"):
        dataset.make_window_dataset(window_files["eval"], 4, 64, training=False)


def test_questions_instead_of_windows_names_the_missing_feature(tmp_path):
    path = str(tmp_path / "questions.gz")
    example = tf.train.Example(features=tf.train.Features(feature={
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"q"])),
    }))
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        writer.write(example.SerializeToString())
    with pytest.raises(ValueError, match=r"questions.gz.*no feature 'input_ids'"):
        dataset.make_window_dataset(path, 4, 32, training=True)


def test_uncompressed_file_is_a_clear_error(tmp_path):
    path = os.path.join(tmp_path, "plain.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(b"not gzip")
    with pytest.raises(ValueError, match="not a GZIP TFRecord file of windows"):
        dataset.make_window_dataset(path, 4, 32, training=True)


def test_training_order_is_seeded_so_worker_shards_are_disjoint(window_files):
    """Every worker shuffles with the same seed, then DATA auto-sharding keeps its own
    windows: two workers' shards of one pass are disjoint and cover every window."""

    def ids(shard: int) -> list[bytes]:
        ds = dataset.make_window_dataset(
            window_files["train"], 1, fixtures.SEQ_LEN, training=True, seed=7
        ).unbatch()
        ds = ds.shard(2, shard).take(48)  # 96 windows per pass, 48 per worker
        return [tuple(f["input_ids"].numpy()) for f, _ in ds]

    first, second = ids(0), ids(1)
    assert ids(0) == first  # the same seed, the same order
    assert not set(first) & set(second)
    assert len(set(first) | set(second)) == 96


def _batch(lengths: list[int], seq_len: int = 384):
    """A batch of windows with `lengths` real tokens each (then padding)."""
    mask = tf.sequence_mask(lengths, seq_len, dtype=tf.int32)
    features = {"input_ids": mask * 7, "input_mask": mask, "segment_ids": mask}
    labels = {"start_logits": tf.constant([n - 2 for n in lengths]),
              "end_logits": tf.constant([n - 1 for n in lengths])}
    return features, labels


@pytest.mark.parametrize(("lengths", "expected"), [
    ([10, 64], 64), ([65, 3], 128), ([100, 201], 256), ([383, 10], 384), ([384, 384], 384),
])
def test_trimming_cuts_a_batch_to_its_longest_window_rounded_up(lengths, expected):
    features, labels = _batch(lengths)
    trimmed, same_labels = dataset.trim_padding(features, labels)
    assert {name: t.shape[1] for name, t in trimmed.items()} == dict.fromkeys(trimmed, expected)
    assert same_labels is labels
    for name, tensor in trimmed.items():  # only padding was cut
        assert int(tf.reduce_sum(tensor)) == int(tf.reduce_sum(features[name]))


def test_trimmed_batches_have_their_own_length(window_files):
    ds = dataset.make_window_dataset(window_files["eval"], 4, fixtures.SEQ_LEN,
                                     training=False, trim=True)
    assert ds.element_spec[0]["input_ids"].shape.as_list() == [4, None]
    features, _ = next(iter(ds))
    longest = int(tf.reduce_max(tf.reduce_sum(features["input_mask"], axis=1)))
    assert features["input_ids"].shape[1] == min(fixtures.SEQ_LEN, -(-longest // 64) * 64)


# Length buckets of seq_len 32 windows: padded lengths 16, 24 and 32.
BUCKET_ENDS = (16, 24, 32)
PADDED_LENGTHS = [min(end for end in BUCKET_ENDS if end >= n) for n in range(fixtures.SEQ_LEN + 1)]


def _window_lengths(count: int, per_bucket: tuple[int, int, int]) -> list[int]:
    """`per_bucket[b]` windows of 14-16, 22-24 and 30-32 tokens (b = 0, 1, 2), interleaved."""
    buckets = [b for b in range(3) for _ in range(per_bucket[b])]
    assert len(buckets) == count
    rng = np.random.default_rng(5)
    rng.shuffle(buckets)
    return [(14, 22, 30)[b] + int(rng.integers(0, 3)) for b in buckets]


@pytest.fixture(scope="module")
def bucketed_windows(tmp_path_factory) -> str:
    """96 windows, 32 per bucket: a multiple of the batch size 4 in each."""
    path = str(tmp_path_factory.mktemp("bucketed") / "data.gz")
    return fixtures.write_windows(path, 96, seed=3, lengths=_window_lengths(96, (32, 32, 32)))


def _bucketed(path: str, **kwargs) -> tf.data.Dataset:
    return dataset.make_window_dataset(path, 4, fixtures.SEQ_LEN, training=True, seed=7,
                                       padded_lengths=PADDED_LENGTHS, **kwargs)


def _windows(batch) -> list[tuple]:
    features, _ = batch
    return [tuple(row) for row in features["input_ids"].numpy().tolist()]


def test_a_bucketed_batch_holds_windows_of_one_bucket_cut_to_its_length(bucketed_windows):
    ds = _bucketed(bucketed_windows)
    assert ds.element_spec[0]["input_ids"].shape.as_list() == [4, None]
    widths = set()
    for features, labels in ds.take(24):
        width = features["input_ids"].shape[1]
        lengths = features["input_mask"].numpy().sum(axis=1)
        assert {PADDED_LENGTHS[n] for n in lengths} == {width}, (lengths, width)
        assert (labels["end_logits"].numpy() < lengths).all()  # the answers stay in
        widths.add(width)
    assert widths == set(BUCKET_ENDS)


def test_every_window_is_read_once_per_epoch_with_buckets(bucketed_windows):
    batches = [_windows(b) for b in _bucketed(bucketed_windows).take(48)]
    first, second = sum(batches[:24], []), sum(batches[24:], [])
    assert len(set(first)) == len(first) == 96  # one epoch: every window once
    assert set(second) == set(first) and len(second) == 96
    assert first != second  # reshuffled


def test_uneven_buckets_hold_back_less_than_a_batch_each(tmp_path):
    """33, 31 and 32 windows: a bucket's remainder waits for the next epoch, not dropped."""
    path = fixtures.write_windows(str(tmp_path / "data.gz"), 96, seed=4,
                                  lengths=_window_lengths(96, (33, 31, 32)))
    counts = collections.Counter(w for b in _bucketed(path).take(240) for w in _windows(b))
    assert len(counts) == 96 and sum(counts.values()) == 960  # ten epochs' worth
    assert set(counts.values()) <= {9, 10, 11}


def test_two_workers_read_different_windows_with_buckets(bucketed_windows):
    """DATA auto-sharding, as tf.distribute applies it to each worker's copy of the dataset."""
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    def worker(index: int) -> list[tuple]:
        shard = _AutoShardDataset(_bucketed(bucketed_windows), num_workers=2, index=index)
        return [w for b in shard.take(12) for w in _windows(b)]

    first, second = worker(0), worker(1)
    assert len(set(first)) == len(first) == 48
    assert not set(first) & set(second)
    assert len(set(first) | set(second)) == 96


def test_bucketing_refuses_trimming_and_a_table_of_another_seq_len(window_files):
    with pytest.raises(ValueError, match="exclude each other"):
        _bucketed(window_files["train"], trim=True)
    with pytest.raises(ValueError, match="has 17 entries; a table for seq_len=32 has 33"):
        dataset.make_window_dataset(window_files["train"], 4, fixtures.SEQ_LEN, training=True,
                                    padded_lengths=PADDED_LENGTHS[:17])
