"""Window TFRecords (the SquadTransform output) as a tf.data pipeline for Keras training.

Each record is one window (docs/architecture.md, "Windows"); the pipeline yields
`(features, labels)`: features `input_ids`, `input_mask`, `segment_ids` as int32
`[batch, seq_len]`, labels `start_logits`, `end_logits` (the model's output names) holding
the int32 `[batch]` answer positions.

With `trim_padding`, each batch is cut to its longest window rounded up to
`TRIM_MULTIPLE` tokens (a window's tokens come first, its padding last, and its answer
positions lie within its tokens): short passages then cost what they hold, not `seq_len`.
The softmax of the loss then spans the batch's length instead of `seq_len`; the padding it
leaves out carries no answer.

With `padded_lengths` (the SquadTransform's length buckets, `components.squad_transform.
length_buckets`: entry n is the padded length of a window of n tokens), each batch holds
windows of one bucket, cut to the bucket's padded length (`batch_by_length_bucket`): the
mean batch then costs about its windows' mean length, not its longest window's.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from components.qa import contracts

INPUT_FEATURES = contracts.SERVING_INPUTS
START_POSITIONS = "start_positions"
END_POSITIONS = "end_positions"
EXAMPLE_ID = "example_id"
COMPRESSION = "GZIP"
SHUFFLE_BUFFER = 10_000
TRIM_MULTIPLE = 64  # Trimmed lengths are multiples of this: few distinct shapes to trace.


def window_feature_spec(seq_len: int) -> dict[str, tf.io.FixedLenFeature]:
    """The parsing spec of the window features the Trainer reads."""
    spec = {name: tf.io.FixedLenFeature([seq_len], tf.int64) for name in INPUT_FEATURES}
    spec[START_POSITIONS] = tf.io.FixedLenFeature([], tf.int64)
    spec[END_POSITIONS] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def list_window_files(file_patterns: str | Sequence[str]) -> list[str]:
    """The files matching `file_patterns` (globs or dirs); ValueError naming them if none."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = []
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            pattern = pattern.rstrip("/") + "/*"
        files.extend(sorted(tf.io.gfile.glob(pattern)))
    if not files:
        raise ValueError(f"No window TFRecord files match {patterns}")
    return files


def check_window_file(path: str, seq_len: int) -> None:
    """Checks the first record of `path` against the window contract.

    Raises ValueError naming the file, the window's example id and the field, so a
    mismatch (wrong seq_len, a questions file instead of windows) fails here and not
    deep inside TensorFlow.
    """
    records = tf.data.TFRecordDataset(path, compression_type=COMPRESSION).take(1)
    try:
        serialized = [r.numpy() for r in records]
    except tf.errors.DataLossError as error:
        raise ValueError(f"{path} is not a GZIP TFRecord file of windows: {error}") from error
    if not serialized:
        return
    feature = tf.train.Example.FromString(serialized[0]).features.feature
    example_id = (
        feature[EXAMPLE_ID].bytes_list.value[0].decode("utf-8", "replace")
        if EXAMPLE_ID in feature and feature[EXAMPLE_ID].bytes_list.value
        else "<no example_id>"
    )
    for name, expected in [*((n, seq_len) for n in INPUT_FEATURES),
                           (START_POSITIONS, 1), (END_POSITIONS, 1)]:
        if name not in feature:
            raise ValueError(
                f"{path}: window of question {example_id!r} has no feature {name!r}; "
                "the Trainer reads SquadTransform windows"
            )
        length = len(feature[name].int64_list.value)
        if length != expected:
            raise ValueError(
                f"{path}: window of question {example_id!r} has {length} values in "
                f"{name!r}; expected {expected} (seq_len={seq_len})"
            )


def _to_features_and_labels(
    parsed: dict[str, tf.Tensor],
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    features = {name: tf.cast(parsed[name], tf.int32) for name in INPUT_FEATURES}
    start_name, end_name = contracts.SERVING_OUTPUTS
    labels = {
        start_name: tf.cast(parsed[START_POSITIONS], tf.int32),
        end_name: tf.cast(parsed[END_POSITIONS], tf.int32),
    }
    return features, labels


def trim_padding(
    features: dict[str, tf.Tensor], labels: dict[str, tf.Tensor]
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """The batch cut to its longest window, rounded up to `TRIM_MULTIPLE` (≤ seq_len)."""
    mask = features["input_mask"]
    seq_len = tf.shape(mask)[1]
    longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
    length = tf.minimum(seq_len, (longest + TRIM_MULTIPLE - 1) // TRIM_MULTIPLE * TRIM_MULTIPLE)
    return {name: value[:, :length] for name, value in features.items()}, labels


def batch_by_length_bucket(dataset: tf.data.Dataset, padded_lengths: Sequence[int],
                           batch_size: int) -> tf.data.Dataset:
    """Windows `(features, labels)` -> batches of `batch_size` windows of one padded length,
    cut to it. A bucket's windows wait until it has a batch's worth (so a stream that
    repeats loses none)."""
    table = tf.constant(padded_lengths, tf.int64)

    def padded_length(features: dict[str, tf.Tensor], _) -> tf.Tensor:
        return tf.gather(table, tf.reduce_sum(tf.cast(features["input_mask"], tf.int64)))

    def batch_and_cut(length: tf.Tensor, windows: tf.data.Dataset) -> tf.data.Dataset:
        return windows.batch(batch_size, drop_remainder=True).map(
            lambda features, labels: (
                {name: value[:, :length] for name, value in features.items()}, labels))

    return dataset.group_by_window(key_func=padded_length, reduce_func=batch_and_cut,
                                   window_size=batch_size)


def make_window_dataset(
    file_patterns: str | Sequence[str],
    batch_size: int,
    seq_len: int,
    training: bool,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    trim: bool = False,
    padded_lengths: Sequence[int] | None = None,
) -> tf.data.Dataset:
    """Batches of `(features, labels)` from window TFRecords, repeated forever.

    Training data is shuffled, with `seed` the same way in every process (then DATA
    auto-sharding gives each worker different windows). `batch_size` is the global batch;
    with `input_context` (a `DatasetCreator` under ParameterServerStrategy) this pipeline
    is sharded by input pipeline and batched per replica. Batches have a static size
    (remainders dropped); with `trim`, a length of their own (`trim_padding`); with
    `padded_lengths`, windows of one length bucket each (`batch_by_length_bucket`). Shuffling
    and sharding come before the bucketing, so workers still read different windows.
    """
    if trim and padded_lengths is not None:
        raise ValueError("make_window_dataset: trim and padded_lengths exclude each other")
    if padded_lengths is not None and len(padded_lengths) != seq_len + 1:
        raise ValueError(f"make_window_dataset: padded_lengths has {len(padded_lengths)} "
                         f"entries; a table for seq_len={seq_len} has {seq_len + 1}")
    files = list_window_files(file_patterns)
    if tf.executing_eagerly():  # Not when traced (a `DatasetCreator`): check beforehand.
        check_window_file(files[0], seq_len)
    pipelines, pipeline_id = 1, 0
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    shard_files = pipelines > 1 and len(files) >= pipelines
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shard_files:
        dataset = dataset.shard(pipelines, pipeline_id)
    dataset = dataset.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=COMPRESSION),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training or seed is not None,
    )
    if pipelines > 1 and not shard_files:
        dataset = dataset.shard(pipelines, pipeline_id)
    if training:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    feature_spec = window_feature_spec(seq_len)
    dataset = dataset.repeat()
    if padded_lengths is not None:
        dataset = dataset.map(
            lambda record: _to_features_and_labels(
                tf.io.parse_single_example(record, feature_spec)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        dataset = batch_by_length_bucket(dataset, padded_lengths, batch_size)
    else:
        dataset = dataset.batch(batch_size, drop_remainder=True)
        dataset = dataset.map(
            lambda records: _to_features_and_labels(tf.io.parse_example(records, feature_spec)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if trim:
        dataset = dataset.map(trim_padding, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
