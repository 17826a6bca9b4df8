"""Model Maker's `question_answer.DataLoader`: SQuAD files cut into windows.

Training windows are written as the Transform writes them (gzipped TFRecords of
`tf.train.Example`), so `create` trains on them through the Trainer's input pipeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from components.qa import encoders, squad_json, windows
from mbqa_model_maker import model_spec as model_spec_lib

_META = "_meta_data.json"


class DataLoader:
    """Windows of a SQuAD file for one spec (`from_squad`).

    `len(data)` is the number of windows (Model Maker's features); `examples` holds the
    questions of evaluation data (empty for training data, as in Model Maker), which
    `window_maker` cuts when they are answered.
    """

    def __init__(self, files: list[str], size: int | None, version_2_with_negative: bool,
                 examples: list, squad_file: str, window_maker: windows.WindowMaker,
                 work_dir: tempfile.TemporaryDirectory | None = None):
        self.files = files
        self._size = size  # evaluation data: counted when asked (answering cuts anyway)
        self.version_2_with_negative = version_2_with_negative
        self.examples = examples
        self.squad_file = squad_file
        self.window_maker = window_maker
        self._work_dir = work_dir  # removed with this object when no cache_dir was given

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = sum(len(self.window_maker.make_windows(e, training=False))
                             for e in self.examples)
        return self._size

    def __len__(self) -> int:
        return self.size

    @classmethod
    def from_squad(cls, filename: str, model_spec, is_training: bool = True,
                   version_2_with_negative: bool = False,
                   cache_dir: str | None = None) -> DataLoader:
        """Reads a SQuAD JSON file and cuts its questions into the spec's windows.

        Training windows are cached under `cache_dir` (keyed by the file's content and the
        window settings) and reused; without `cache_dir` they live in a temporary
        directory removed with the loader. Training questions whose answer is not in the
        passage's words are skipped and counted, as BERT's preprocessing does.
        """
        spec = model_spec_lib.get(model_spec)
        vocab = encoders.module_vocab_path(spec.uri)
        maker = windows.WindowMaker(vocab, windows.WindowConfig.from_spec(spec))
        examples, _ = squad_json.read_squad_examples(filename)
        if not version_2_with_negative and any(e.is_impossible for e in examples):
            raise ValueError(f"{filename} has unanswerable questions (SQuAD 2.0): load it "
                             "with version_2_with_negative=True")
        if not is_training:
            logging.info("%s: %d questions", filename, len(examples))
            return cls([], None, version_2_with_negative, examples, filename, maker)
        work_dir = None
        if cache_dir is None:
            work_dir = tempfile.TemporaryDirectory(prefix="mbqa_windows_")
            cache_dir = work_dir.name
        key = _cache_key(filename, vocab, maker.config)
        path = os.path.join(cache_dir, f"{key}.tfrecord.gz")
        meta_path = os.path.join(cache_dir, key + _META)
        if tf.io.gfile.exists(meta_path):
            with tf.io.gfile.GFile(meta_path) as f:
                meta = json.load(f)
            logging.info("%s: %d cached training windows in %s", filename, meta["size"], path)
        else:
            meta = {"size": _write_windows(examples, maker, path, filename),
                    "version_2_with_negative": version_2_with_negative}
            with tf.io.gfile.GFile(meta_path, "w") as f:
                json.dump(meta, f)
        return cls([path], meta["size"], meta["version_2_with_negative"], [], filename, maker,
                   work_dir)

    def window_arrays(self, limit: int) -> dict[str, np.ndarray]:
        """Up to `limit` training windows as int32 arrays `[N, seq_len]` by input name."""
        from components.trainer import dataset

        batch = next(iter(dataset.make_window_dataset(
            self.files, min(limit, self.size), self.window_maker.config.seq_len,
            training=False)))[0]
        return {name: batch[name].numpy() for name in batch}


def _cache_key(filename: str, vocab: str, config: windows.WindowConfig) -> str:
    digest = hashlib.sha256()
    for path in (filename, vocab):
        with tf.io.gfile.GFile(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    digest.update(repr(config).encode())
    return digest.hexdigest()[:16]


def _write_windows(examples: Sequence, maker: windows.WindowMaker, path: str,
                   filename: str) -> int:
    count = skipped = 0
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for example in examples:
            try:
                cut = maker.make_windows(example, training=True)
            except windows.AnswerNotFoundError as error:
                skipped += 1
                logging.info("Skipped: %s", error)
                continue
            for record in windows.windows_to_tf_examples(cut):
                writer.write(record)
            count += len(cut)
    logging.info("%s: %d questions, %d training windows in %s; %d skipped (answer not in "
                 "the passage's words)", filename, len(examples), count, path, skipped)
    if not count:
        raise ValueError(f"{filename}: no training windows (every question was skipped)")
    return count
