"""Length buckets of the training windows: a tf.Transform analysis, and its table for the Trainer.

The SquadTransform feeds the training windows' lengths (real tokens: the sum of
`input_mask`) to `AnalyzeWindowLengths`, a `tft_beam.AnalyzeDataset` whose
`tft.quantiles` splits them into `num_buckets` buckets of about equal counts. The analysed
graph (a TransformGraph artifact, written by `tft_beam.WriteTransformFn`) maps a window's
length (`WINDOW_LENGTH`) to its bucket's padded length (`PADDED_LENGTH`): the bucket's
longest length rounded up to `PAD_MULTIPLE`, at most `seq_len`. The Trainer reads it once as
a table indexed by length (`read_padded_lengths`) and batches windows of one padded length
together (`components.trainer.dataset`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.tfxio import tensor_adapter

from components.squad_transform.windowing import WINDOW_LENGTH, window_lengths_batch

PADDED_LENGTH = "padded_length"
# Padded lengths are multiples of this (tensor cores tile by 8 tokens).
PAD_MULTIPLE = 8
# tft.quantiles' rank error: 1/8 of a bucket's share of the windows.
EPSILON_PER_BUCKET = 0.125


def make_preprocessing_fn(num_buckets: int, seq_len: int) -> Callable:
    """The tf.Transform preprocessing_fn: `WINDOW_LENGTH` -> `PADDED_LENGTH`."""

    def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        lengths = inputs[WINDOW_LENGTH]
        quantiles = tft.quantiles(lengths, num_buckets,
                                  epsilon=EPSILON_PER_BUCKET / num_buckets)  # [1, buckets - 1]
        # Bucket i holds the lengths up to its end (a multiple of PAD_MULTIPLE); apply_buckets
        # puts x in bucket i when boundary[i-1] <= x < boundary[i], hence end + 1.
        longest = tf.constant(seq_len, tf.int64)
        ends = tf.minimum(longest, tf.cast(
            tf.math.ceil(quantiles[0] / PAD_MULTIPLE) * PAD_MULTIPLE, tf.int64))
        bucket = tft.apply_buckets(lengths, tf.cast(ends + 1, tf.float32)[None])
        return {PADDED_LENGTH: tf.gather(tf.concat([ends, [longest]], 0), bucket)}

    return preprocessing_fn


def _adapter_config() -> tensor_adapter.TensorAdapterConfig:
    """The lengths' Arrow layout (`window_lengths_batch`) as a dense int64 scalar per window."""
    return tensor_adapter.TensorAdapterConfig(
        arrow_schema=window_lengths_batch([]).schema,
        tensor_representations={WINDOW_LENGTH: schema_pb2.TensorRepresentation(
            dense_tensor=schema_pb2.TensorRepresentation.DenseTensor(
                column_name=WINDOW_LENGTH, shape=schema_pb2.FixedShape()))},
    )


@beam.ptransform_fn
def AnalyzeWindowLengths(  # noqa: N802 (a PTransform)
    batches: beam.PCollection, num_buckets: int, seq_len: int, output_dir: str
) -> beam.pvalue.PDone:
    """Record batches of window lengths -> the analysed graph in `output_dir`.

    Must be applied inside a `tft_beam.Context`."""
    if num_buckets < 2:
        raise ValueError(f"length buckets: num_buckets={num_buckets} must be >= 2")
    transform_fn = (batches, _adapter_config()) | "Analyze" >> tft_beam.AnalyzeDataset(
        make_preprocessing_fn(num_buckets, seq_len))
    return transform_fn | "Write" >> tft_beam.WriteTransformFn(output_dir)


def read_padded_lengths(transform_graph_dir: str, seq_len: int) -> list[int]:
    """The analysed graph as a table: entry n is the padded length of a window of n tokens."""
    if not tf.io.gfile.exists(os.path.join(transform_graph_dir, tft.TFTransformOutput.
                                           TRANSFORM_FN_DIR)):
        raise ValueError(f"{transform_graph_dir} holds no length buckets (no tf.Transform "
                         "graph): the SquadTransform ran with length_buckets=0")
    output = tft.TFTransformOutput(transform_graph_dir)
    lengths = tf.range(seq_len + 1, dtype=tf.int64)
    table = output.transform_raw_features({WINDOW_LENGTH: lengths})[PADDED_LENGTH].numpy()
    if table[-1] != seq_len or (table < np.arange(seq_len + 1)).any():
        raise ValueError(f"{transform_graph_dir}: the length buckets were analysed for another "
                         f"seq_len than {seq_len} (padded lengths {sorted(set(table))})")
    return table.tolist()


def analyze_lengths(lengths: Sequence[int], num_buckets: int, seq_len: int,
                    output_dir: str) -> list[int]:
    """Runs the analysis on `lengths` in a local Beam pipeline; returns the padded-length table
    (for training outside a pipeline: the learning proof, the benchmark)."""
    with tempfile.TemporaryDirectory() as temp_dir, tft_beam.Context(temp_dir=temp_dir):
        with beam.Pipeline() as pipeline:
            _ = (pipeline
                 | beam.Create([window_lengths_batch(lengths)])
                 | AnalyzeWindowLengths(num_buckets, seq_len, output_dir))
    return read_padded_lengths(output_dir, seq_len)
