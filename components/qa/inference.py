"""One way to run a QA model: a SavedModel or a .tflite file behind the same `Predictor`.

`load_predictor(path)` returns a `Predictor` whose `predict(input_ids, input_mask,
segment_ids)` takes int32 `[batch, seq_len]` arrays and returns float32
`(start_logits, end_logits)`, each `[batch, seq_len]`.

- A SavedModel directory is run through its serving signature (the Trainer's contract,
  `contracts.SERVING_SIGNATURE`, `SERVING_INPUTS`, `SERVING_OUTPUTS`); its vocab is
  `assets/vocab.txt` when present.
- A `.tflite` file is run with `tf.lite.Interpreter` one window at a time (batch 1, as
  exported); its tensors are found by their metadata names
  (`contracts.TFLITE_METADATA_NAMES`) or, without metadata, by its serving signature;
  the vocab packed in its metadata is written to a temporary directory when `vocab_path`
  is first read, and the settings it was evaluated with are read from its metadata into
  `serving_config` (a `contracts.ServingConfig`; None without).

A predictor removes what it wrote to disk on `close()`, or at the end of a `with` block:
`with load_predictor(path) as predictor: ...`.
"""

from __future__ import annotations

import abc
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from components.qa import contracts


class Predictor(abc.ABC):
    """Runs a QA model on windows: int32 `[B, L]` ids, mask, segment ids → two logits."""

    def __init__(self, path: str, seq_len: int | None,
                 serving_config: contracts.ServingConfig | None = None):
        self.path = path
        self.seq_len = seq_len
        self.serving_config = serving_config
        self._temp_dir: str | None = None

    @property
    @abc.abstractmethod
    def vocab_path(self) -> str | None:
        """The model's WordPiece vocab file, or None if it carries none."""

    def close(self) -> None:
        """Removes the temporary files the predictor wrote (a .tflite file's vocab)."""
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def predict(
        self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Float32 `(start_logits, end_logits)`, each `[B, L]`, for int32 `[B, L]` inputs."""
        arrays = [np.asarray(a) for a in (input_ids, input_mask, segment_ids)]
        for name, array in zip(contracts.SERVING_INPUTS, arrays, strict=True):
            if array.ndim != 2:
                raise ValueError(f"{name} must be [batch, seq_len]; got shape {array.shape}")
            if array.shape != arrays[0].shape:
                raise ValueError(
                    f"{name} has shape {array.shape} but input_ids has {arrays[0].shape}"
                )
        if self.seq_len is not None and arrays[0].shape[1] != self.seq_len:
            raise ValueError(
                f"The model {self.path!r} takes seq_len={self.seq_len} tokens; "
                f"got windows of {arrays[0].shape[1]}"
            )
        start, end = self._predict(*(a.astype(np.int32) for a in arrays))
        return np.asarray(start, np.float32), np.asarray(end, np.float32)

    @abc.abstractmethod
    def _predict(
        self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's logits for validated int32 inputs."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, seq_len={self.seq_len})"


class SavedModelPredictor(Predictor):
    """A SavedModel's `serving_default` signature."""

    def __init__(self, path: str):
        self._model = tf.saved_model.load(path)
        if contracts.SERVING_SIGNATURE not in self._model.signatures:
            raise ValueError(
                f"The SavedModel {path!r} has no serving_default signature "
                f"(it has {sorted(self._model.signatures)})"
            )
        self._fn = self._model.signatures[contracts.SERVING_SIGNATURE]
        inputs = self._fn.structured_input_signature[1]
        missing = set(contracts.SERVING_INPUTS) - set(inputs)
        outputs = set(self._fn.structured_outputs)
        missing_out = set(contracts.SERVING_OUTPUTS) - outputs
        if missing or missing_out:
            raise ValueError(
                f"The SavedModel {path!r} serving_default signature must take "
                f"{list(contracts.SERVING_INPUTS)} and return {list(contracts.SERVING_OUTPUTS)}; "
                f"it takes {sorted(inputs)} and returns {sorted(outputs)}"
            )
        seq_len = inputs["input_ids"].shape[1] if inputs["input_ids"].shape.rank == 2 else None
        self._vocab_path = saved_model_vocab_path(path)
        super().__init__(path, seq_len)

    @property
    def vocab_path(self) -> str | None:
        """`assets/vocab.txt` of the SavedModel, if present."""
        return self._vocab_path

    def _predict(self, input_ids, input_mask, segment_ids):
        out = self._fn(
            input_ids=tf.constant(input_ids),
            input_mask=tf.constant(input_mask),
            segment_ids=tf.constant(segment_ids),
        )
        return out["start_logits"].numpy(), out["end_logits"].numpy()


def saved_model_vocab_path(path: str) -> str | None:
    """A SavedModel's `assets/vocab.txt`, if present."""
    vocab = os.path.join(path, "assets", contracts.VOCAB_FILE)
    return vocab if tf.io.gfile.exists(vocab) else None


class TFLitePredictor(Predictor):
    """A .tflite file run by `tf.lite.Interpreter`, one window at a time."""

    def __init__(self, path: str, num_threads: int | None = None):
        with tf.io.gfile.GFile(path, "rb") as f:
            model_buffer = f.read()
        self._interpreter = tf.lite.Interpreter(model_content=model_buffer,
                                                num_threads=num_threads)
        self._interpreter.allocate_tensors()
        metadata = read_tflite_metadata(model_buffer)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if metadata is not None:
            graph = metadata["subgraph_metadata"][0]
            in_names = [t["name"] for t in graph["input_tensor_metadata"]]
            out_names = [t["name"] for t in graph["output_tensor_metadata"]]
            by_in = {name: d["index"] for name, d in zip(in_names, inputs, strict=True)}
            by_out = {name: d["index"] for name, d in zip(out_names, outputs, strict=True)}
            wanted_in = [contracts.TFLITE_METADATA_NAMES[n] for n in contracts.SERVING_INPUTS]
            wanted_out = [contracts.TFLITE_METADATA_NAMES[n] for n in contracts.SERVING_OUTPUTS]
        else:
            signature = self._interpreter.get_signature_list().get(contracts.SERVING_SIGNATURE)
            if signature is None:
                raise ValueError(
                    f"The TFLite model {path!r} has neither metadata nor a "
                    f"{contracts.SERVING_SIGNATURE} signature: cannot tell its inputs apart"
                )
            runner = self._interpreter.get_signature_runner(contracts.SERVING_SIGNATURE)
            by_in = {k: v["index"] for k, v in runner.get_input_details().items()}
            by_out = {k: v["index"] for k, v in runner.get_output_details().items()}
            wanted_in = list(contracts.SERVING_INPUTS)
            wanted_out = list(contracts.SERVING_OUTPUTS)
        missing = [n for n in wanted_in if n not in by_in] + [
            n for n in wanted_out if n not in by_out
        ]
        if missing:
            raise ValueError(
                f"The TFLite model {path!r} lacks tensors {missing}; it has inputs "
                f"{sorted(by_in)} and outputs {sorted(by_out)}"
            )
        self._input_indices = [by_in[n] for n in wanted_in]
        self._output_indices = [by_out[n] for n in wanted_out]
        shape = next(d["shape"] for d in inputs if d["index"] == self._input_indices[0])
        self._vocab = None if metadata is None else _packed_file(model_buffer, contracts.VOCAB_FILE)
        serving_config = None
        if metadata is not None:
            try:
                serving_config = contracts.ServingConfig.from_description(
                    metadata.get("description", ""))
            except ValueError as error:
                raise ValueError(f"The TFLite model {path!r}: {error}") from error
        super().__init__(path, int(shape[1]), serving_config)

    @property
    def vocab_path(self) -> str | None:
        """The vocab packed in the metadata, written on first use to a temporary directory
        that `close()` removes; None if none is packed."""
        if self._vocab is None:
            return None
        if self._temp_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="mbqa_tflite_")
            with open(os.path.join(self._temp_dir, contracts.VOCAB_FILE), "wb") as f:
                f.write(self._vocab)
        return os.path.join(self._temp_dir, contracts.VOCAB_FILE)

    def invoke_ns(self, input_ids, input_mask, segment_ids) -> int:
        """Runs one window (int32 arrays `[1, seq_len]`); the nanoseconds `invoke()` took."""
        for index, array in zip(self._input_indices, (input_ids, input_mask, segment_ids),
                                strict=True):
            self._interpreter.set_tensor(index, array)
        started = time.perf_counter_ns()
        self._interpreter.invoke()
        return time.perf_counter_ns() - started

    def _predict(self, input_ids, input_mask, segment_ids):
        batch = input_ids.shape[0]
        start = np.zeros(input_ids.shape, np.float32)
        end = np.zeros(input_ids.shape, np.float32)
        for i in range(batch):
            self.invoke_ns(input_ids[i : i + 1], input_mask[i : i + 1], segment_ids[i : i + 1])
            start[i] = self._interpreter.get_tensor(self._output_indices[0])[0]
            end[i] = self._interpreter.get_tensor(self._output_indices[1])[0]
        return start, end


def read_tflite_metadata(model_buffer: bytes) -> dict | None:
    """The TFLite metadata as a dict (the JSON form), or None if the model has none."""
    from tensorflow_lite_support.metadata.python import metadata

    try:
        displayer = metadata.MetadataDisplayer.with_model_buffer(model_buffer)
    except ValueError:  # "The model does not have metadata."
        return None
    return json.loads(displayer.get_metadata_json())


def _packed_file(model_buffer: bytes, name: str) -> bytes | None:
    """The bytes of a file packed in the TFLite metadata; None if absent."""
    from tensorflow_lite_support.metadata.python import metadata

    displayer = metadata.MetadataDisplayer.with_model_buffer(model_buffer)
    if name not in displayer.get_packed_associated_file_list():
        return None
    return displayer.get_associated_file_buffer(name)


def available_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_predictor(path: str, num_threads: int | None = None) -> Predictor:
    """A `Predictor` for a SavedModel directory or a `.tflite` file; `close()` it (or use
    it in a `with` block) once its `vocab_path` is no longer needed. `num_threads`: the
    TFLite interpreter's (None: its default); a SavedModel runs on TensorFlow's threads."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No model at {path!r} (expected a SavedModel dir or .tflite)")
    if tf.io.gfile.isdir(path):
        if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            raise ValueError(f"{path!r} is a directory but not a SavedModel (no saved_model.pb)")
        return SavedModelPredictor(path)
    if path.endswith(".tflite"):
        return TFLitePredictor(path, num_threads)
    raise ValueError(f"{path!r} is neither a SavedModel directory nor a .tflite file")
