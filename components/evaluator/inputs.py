"""Reading the QaEvaluator's input artifacts: the eval split's questions and a sample of
the training windows (to calibrate integer TFLite files); errors name the file and record."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.types import artifact_utils

from components.qa import squad, tflite

# Training windows drawn (uniformly, seeded) to calibrate 'int8' and 'int16x8'.
REPRESENTATIVE_WINDOWS = 100


def split_pattern(artifact: types.Artifact, split: str) -> str:
    """The file pattern of one split of an Examples artifact."""
    splits = artifact_utils.decode_split_names(artifact.split_names)
    if split not in splits:
        raise ValueError(f"{artifact.uri!r} has no split {split!r}; it has {splits}")
    return os.path.join(artifact_utils.get_split_uri([artifact], split), "*")


def _record_files(artifact: types.Artifact, split: str) -> list[str]:
    """The TFRecord files of one split of an Examples artifact."""
    files = sorted(tf.io.gfile.glob(split_pattern(artifact, split)))
    if not files:
        raise FileNotFoundError(f"No records in split {split!r} of {artifact.uri!r}")
    return files


def _records(files: Sequence[str]):
    """(file, record number, serialized record) of TFRecord files (gzip when named .gz)."""
    for path in files:
        compression = "GZIP" if path.endswith(".gz") else ""
        for number, record in enumerate(tf.data.TFRecordDataset(path, compression)):
            yield path, number, record.numpy()


def read_questions(
    examples: types.Artifact, split: str, limit: int = 0
) -> list[squad.SquadExample]:
    """The split's questions (the first `limit` if > 0); names the file and record if bad."""
    questions = []
    for path, number, record in _records(_record_files(examples, split)):
        try:
            questions.append(squad.from_tf_example(record))
        except (IndexError, KeyError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(
                f"{path}: record {number} is not a question tf.Example of "
                f"components.qa.squad ({type(e).__name__}: {e})"
            ) from e
        if limit and len(questions) >= limit:
            break
    if not questions:
        raise ValueError(f"The {split!r} split of {examples.uri!r} has no questions")
    return questions


def sample_windows(
    transformed: types.Artifact, split: str, seq_len: int, n: int = REPRESENTATIVE_WINDOWS
) -> dict[str, np.ndarray]:
    """A seeded uniform sample of `n` windows of the split (arrays `[n, seq_len]`)."""
    rng = random.Random(0)
    sample: list[dict[str, list[int]]] = []
    seen = 0
    for path, number, record in _records(_record_files(transformed, split)):
        features = tf.train.Example.FromString(record).features.feature
        window = {}
        for name in tflite.WINDOW_INPUTS:
            values = list(features[name].int64_list.value)
            if len(values) != seq_len:
                raise ValueError(
                    f"{path}: window record {number} has {len(values)} {name} values; the "
                    f"spec's seq_len is {seq_len}"
                )
            window[name] = values
        seen += 1
        if len(sample) < n:
            sample.append(window)
        else:
            slot = rng.randrange(seen)
            if slot < n:
                sample[slot] = window
    logging.info("Drew %d of %d %s windows to calibrate integer files", len(sample), seen, split)
    return {name: np.array([w[name] for w in sample], np.int32) for name in tflite.WINDOW_INPUTS}
