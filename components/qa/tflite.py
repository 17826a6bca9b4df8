"""SavedModel → TFLite for on-device QA, with the metadata the TFLite Task Library reads.

`export_tflite` converts the Trainer's SavedModel at batch 1 and a fixed `seq_len`, in one
of `QUANTIZATIONS` (dynamic range is the default, as in Model Maker), names the tensors as
the spec says (`spec.tflite_input_name` / `spec.tflite_output_name`) and packs metadata
with the WordPiece vocab: inputs `ids`, `mask`, `segment_ids`, outputs `end_logits`,
`start_logits` and a `BertTokenizerOptions` process unit with `vocab.txt`.

The Task Library's `BertQuestionAnswerer` always feeds 384 tokens with a 64-token query
and no sliding window: only a file exported at `seq_len=384` works there (it refuses other
lengths when it checks the input shape). Files of any `seq_len` work with
`components.qa.inference.load_predictor`, which uses the sliding windows.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import zipfile
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from components.qa import contracts, int8_calibration, int16_float_islands
from components.qa import spec as spec_lib
from components.qa.inference import TFLitePredictor, load_predictor

WINDOW_INPUTS = contracts.SERVING_INPUTS  # input_ids, input_mask, segment_ids
MAX_ANSWER_TOKENS = 30  # as Model Maker's `max_answer_length`, for comparing best spans

_MODEL_NAME = "MobileBert Question and Answerer"
_MODEL_DESCRIPTION = (
    "Answers questions based on the content of a given passage. To integrate the model into "
    "your app, try the `BertQuestionAnswerer` API in the TensorFlow Lite Task library."
)
_TENSOR_DESCRIPTIONS = {
    "ids": "Tokenized ids of input text as concatenated query and passage.",
    "mask": "Mask with 1 for real tokens and 0 for padding tokens.",
    "segment_ids": "0 for query and 1 for passage tokens.",
    "end_logits": "logits over the sequence which indicates the end position of the answer "
    "span with closed interval.",
    "start_logits": "logits over the sequence which indicates the start position of the answer "
    "span with closed interval.",
}


def export_tflite(
    saved_model_dir: str,
    out_path: str,
    spec: spec_lib.BertQaSpec,
    vocab_path: str,
    quantization: str = "dynamic",
    representative_windows: Mapping[str, np.ndarray] | None = None,
    serving_config: contracts.ServingConfig | None = None,
) -> str:
    """Converts the SavedModel to a .tflite file with Task Library metadata; returns out_path.

    Args:
      saved_model_dir: the Trainer's SavedModel (serving_default: 3 int32 → 2 float32).
      out_path: where the .tflite file goes (local or gs://); its parent is created.
      spec: gives `seq_len` and the TFLite tensor names.
      vocab_path: the WordPiece vocab packed into the metadata as `vocab.txt`.
      quantization: one of `QUANTIZATIONS`: 'float32' (none), 'dynamic' (int8 weights),
        'float16' (float16 weights), 'int8' (full integer: int8 weights and activations,
        calibrated on the tensors' true ranges with the attention mask clipped:
        `int8_calibration`; only the int32 mask's CAST to float32 stays float) or
        'int16x8' (int8 weights, int16 activations, with float32 where int16 fails:
        `int16_float_islands`); the last two are calibrated on `representative_windows`
        (`CALIBRATED_QUANTIZATIONS`). Inputs stay int32 and outputs float32 in every format;
        `float_ops` names the ops of a file that compute in float32.
      representative_windows: for 'int8' and 'int16x8': arrays `input_ids`, `input_mask`,
        `segment_ids`, each `[N, seq_len]`, a sample of training windows.
      serving_config: the settings to answer with, written into the metadata's description,
        where `inference.load_predictor` reads them (`Predictor.serving_config`).
    """
    if quantization not in contracts.QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of {contracts.QUANTIZATIONS}")
    if quantization in contracts.CALIBRATED_QUANTIZATIONS and not representative_windows:
        raise ValueError(
            f"quantization={quantization!r} needs representative_windows (training windows)"
        )
    if not tf.io.gfile.exists(vocab_path):
        raise FileNotFoundError(f"The vocab {vocab_path!r} does not exist")
    logging.info("Converting %s to TFLite (%s, seq_len %d)", saved_model_dir, quantization,
                 spec.seq_len)
    model = tf.saved_model.load(saved_model_dir)
    serving = model.signatures[contracts.SERVING_SIGNATURE]

    @tf.function(input_signature=[
        tf.TensorSpec([1, spec.seq_len], tf.int32, name=name) for name in WINDOW_INPUTS
    ])
    def fixed_shape(input_ids, input_mask, segment_ids):
        return serving(input_ids=input_ids, input_mask=input_mask, segment_ids=segment_ids)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fixed_shape.get_concrete_function()], model
    )
    _configure_quantization(converter, quantization, representative_windows, spec.seq_len)
    if quantization == "int8":
        model_buffer = int8_calibration.quantize(converter)
    else:
        model_buffer = converter.convert()
    if quantization == "int16x8":
        model_buffer = int16_float_islands.float_islands(model_buffer)
    model_buffer = _rename_tensors(model_buffer, spec)
    model_buffer = _add_metadata(model_buffer, spec, vocab_path, serving_config)
    parent = os.path.dirname(out_path)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(out_path, "wb") as f:
        f.write(model_buffer)
    logging.info("Wrote %s (%d bytes)", out_path, len(model_buffer))
    return out_path


# The kernels a calibrated model may use. 'int16x8' needs the float builtins as a fallback:
# the 16x8 kernels lack CAST (TF 2.15: "Quantization to 16x8-bit not yet supported for op:
# 'CAST'"), which every model has (the int32 mask is cast to float), so the ops without
# a 16x8 kernel stay in float32, with (de)quantize ops around them.
_OPS_SETS = {
    "int8": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8],
    "int16x8": [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS],
}


def _configure_quantization(
    converter: tf.lite.TFLiteConverter,
    quantization: str,
    representative_windows: Mapping[str, np.ndarray] | None,
    seq_len: int,
) -> None:
    if quantization == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization in contracts.CALIBRATED_QUANTIZATIONS:
        arrays = [np.asarray(representative_windows[name], np.int32) for name in WINDOW_INPUTS]
        if arrays[0].ndim != 2 or arrays[0].shape[1] != seq_len:
            raise ValueError(
                f"representative_windows must be [N, seq_len={seq_len}]; got {arrays[0].shape}"
            )

        def dataset() -> Iterator[dict[str, np.ndarray]]:
            for i in range(arrays[0].shape[0]):
                yield {name: a[i : i + 1] for name, a in zip(WINDOW_INPUTS, arrays, strict=True)}

        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = _OPS_SETS[quantization]


def float_ops(model_buffer: bytes) -> dict[str, int]:
    """{builtin op name: count} of the ops that compute in float32 in a .tflite model.

    An op counts when one of its inputs or outputs is a float32 tensor, except QUANTIZE and
    DEQUANTIZE (they only convert at the edges of integer ops). For 'int8' and 'int16x8'
    files these are the ops left in float (int8: the CAST of the int32 mask to float32;
    int16x8: `int16_float_islands`' ops); in float32, float16 and dynamic-range files
    nearly every op. Custom ops are named by their custom code. Reads the flatbuffer only
    (no interpreter), with the metadata's appended files or without.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    skip = {schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE}
    model = schema.Model.GetRootAs(model_buffer, 0)
    counts: dict[str, int] = {}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for n in range(graph.OperatorsLength()):
            op = graph.Operators(n)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin in skip:
                continue
            tensors = [op.Inputs(k) for k in range(op.InputsLength())]
            tensors += [op.Outputs(k) for k in range(op.OutputsLength())]
            if not any(i >= 0 and graph.Tensors(i).Type() == schema.TensorType.FLOAT32
                       for i in tensors):
                continue
            if builtin == schema.BuiltinOperator.CUSTOM:
                name = (code.CustomCode() or b"").decode()
            else:
                name = names.get(builtin, str(builtin))
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _rename_tensors(model_buffer: bytes, spec: spec_lib.BertQaSpec) -> bytes:
    """Names the input/output tensors as `spec.tflite_input_name`/`tflite_output_name`."""
    from tensorflow.lite.tools import flatbuffer_utils

    interpreter = tf.lite.Interpreter(model_content=model_buffer)
    runner = interpreter.get_signature_runner(contracts.SERVING_SIGNATURE)
    index = {k: v["index"] for k, v in runner.get_input_details().items()}
    index.update({k: v["index"] for k, v in runner.get_output_details().items()})
    names = {**spec.tflite_input_name, **spec.tflite_output_name}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_buffer))
    tensors = model.subgraphs[0].tensors
    for serving_name, tensor_index in index.items():
        metadata_name = contracts.TFLITE_METADATA_NAMES[serving_name]
        tensors[tensor_index].name = names[metadata_name].encode("utf-8")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _add_metadata(model_buffer: bytes, spec: spec_lib.BertQaSpec, vocab_path: str,
                  serving_config: contracts.ServingConfig | None) -> bytes:
    """Packs the Task Library's BertQuestionAnswerer metadata and the vocab into the model."""
    from tensorflow_lite_support.metadata.python.metadata_writers import (
        metadata_info,
        metadata_writer,
    )

    local_vocab = _local_copy(vocab_path)
    try:
        def tensor_md(name: str, tensor_names: Mapping[str, str]) -> metadata_info.TensorMd:
            return metadata_info.TensorMd(
                name=name, description=_TENSOR_DESCRIPTIONS[name], tensor_name=tensor_names[name]
            )

        inputs = metadata_info.BertInputTensorsMd(
            bytearray(model_buffer),
            spec.tflite_input_name["ids"],
            spec.tflite_input_name["mask"],
            spec.tflite_input_name["segment_ids"],
            ids_md=tensor_md("ids", spec.tflite_input_name),
            mask_md=tensor_md("mask", spec.tflite_input_name),
            segment_ids_md=tensor_md("segment_ids", spec.tflite_input_name),
            tokenizer_md=metadata_info.BertTokenizerMd(local_vocab),
        )
        outputs = [tensor_md(name, spec.tflite_output_name)
                   for name in ("end_logits", "start_logits")]
        output_order = _output_tensor_names(model_buffer)
        outputs.sort(key=lambda md: output_order.index(md.tensor_name))
        general = metadata_info.GeneralMd(
            name=_MODEL_NAME, version="v1",
            description=_MODEL_DESCRIPTION + (
                f"\n{serving_config.description_line()}" if serving_config else ""),
            author="mobilebert-qa-tfx",
            licenses="Apache License. Version 2.0 http://www.apache.org/licenses/LICENSE-2.0.",
        )
        writer = metadata_writer.MetadataWriter.create_from_metadata(
            bytearray(model_buffer),
            model_metadata=general.create_metadata(),
            input_metadata=inputs.create_input_tesnor_metadata(),
            output_metadata=[md.create_metadata() for md in outputs],
            associated_files=inputs.get_tokenizer_associated_files(),
            input_process_units=inputs.create_input_process_unit_metadata(),
        )
        return _fixed_zip_times(bytes(writer.populate()))
    finally:
        if local_vocab != vocab_path:
            shutil.rmtree(os.path.dirname(local_vocab))




def _fixed_zip_times(model_buffer: bytes) -> bytes:
    """The model with its packed files' zip timestamps set to 1980-01-01 (the zip epoch).

    The metadata populator stamps the packed files (a zip appended to the model) with the
    current time; fixing it makes one SavedModel always give the same bytes, so that a
    re-run pushes nothing new (the pusher compares content hashes).
    """
    with zipfile.ZipFile(io.BytesIO(model_buffer)) as packed:
        infos = packed.infolist()
        files = [(info, packed.read(info)) for info in infos]
    out = io.BytesIO()
    out.write(model_buffer[: min(info.header_offset for info in infos)])
    with zipfile.ZipFile(out, "a") as packed:
        for info, data in files:
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type
            packed.writestr(fixed, data)
    return out.getvalue()


def _output_tensor_names(model_buffer: bytes) -> list[str]:
    interpreter = tf.lite.Interpreter(model_content=model_buffer)
    return [d["name"] for d in interpreter.get_output_details()]


def _local_copy(path: str) -> str:
    """`path` if it is a local `vocab.txt`, else a local copy named `vocab.txt` in a
    temporary directory of its own (which the caller removes).

    The metadata records the packed file under its base name; the Task Library looks for
    `vocab.txt`.
    """
    if os.path.basename(path) == "vocab.txt" and os.path.exists(path):
        return path
    local = os.path.join(tempfile.mkdtemp(prefix="mbqa_vocab_"), "vocab.txt")
    tf.io.gfile.copy(path, local)
    return local


def latency_ms(
    path: str, windows: Mapping[str, np.ndarray], threads: int = 1, repeats: int = 20
) -> float:
    """The median milliseconds of one `Interpreter.invoke()` on one window (batch 1).

    Runs the .tflite file at `path` with `num_threads=threads`: one warm-up invoke, then
    `repeats` timed invokes cycling through `windows` (arrays `input_ids`, `input_mask`,
    `segment_ids`, each `[N, seq_len]`, as the file was exported). Only `invoke()` is timed,
    not setting the inputs or reading the outputs (`inference.TFLitePredictor.invoke_ns`).
    The figure is wall-clock time on this
    machine: other processes on its cores make it larger.
    """
    if threads < 1:
        raise ValueError(f"threads={threads} must be >= 1")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    missing = [name for name in WINDOW_INPUTS if name not in windows]
    if missing:
        raise ValueError(f"windows lacks {missing}; it needs {list(WINDOW_INPUTS)}")
    arrays = [np.asarray(windows[name], np.int32) for name in WINDOW_INPUTS]
    for name, array in zip(WINDOW_INPUTS, arrays, strict=True):
        if array.ndim != 2 or array.shape != arrays[0].shape:
            raise ValueError(f"windows[{name!r}] must be [N, seq_len] like input_ids "
                             f"{arrays[0].shape}; got {array.shape}")
    if arrays[0].shape[0] == 0:
        raise ValueError("latency_ms needs at least one window")
    predictor = TFLitePredictor(path, num_threads=threads)
    if arrays[0].shape[1] != predictor.seq_len:
        raise ValueError(f"The model {path!r} takes seq_len={predictor.seq_len} tokens; got "
                         f"windows of {arrays[0].shape[1]}")

    def invoke(i: int) -> int:
        row = i % arrays[0].shape[0]
        return predictor.invoke_ns(*(array[row : row + 1] for array in arrays))

    invoke(0)  # warm-up: the first invoke prepares kernels and caches
    return statistics.median(invoke(i) for i in range(repeats)) / 1e6


def best_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, input_mask: np.ndarray,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
) -> np.ndarray:
    """`[N, 2]` (start, end) of the highest-scoring span per window (start ≤ end, in the mask).

    A simple span rule for comparing two runs of one model, not the answer decoder
    (`components.qa.postprocess` is).
    """
    n, length = start_logits.shape
    offsets = np.arange(length)
    allowed = (offsets[None, :] >= offsets[:, None]) & (
        offsets[None, :] - offsets[:, None] < max_answer_tokens
    )
    spans = np.zeros((n, 2), np.int64)
    for i in range(n):
        valid = allowed & (input_mask[i][:, None] > 0) & (input_mask[i][None, :] > 0)
        scores = np.where(valid, start_logits[i][:, None] + end_logits[i][None, :], -np.inf)
        spans[i] = np.unravel_index(np.argmax(scores), scores.shape)
    return spans


def compare_with_saved_model(
    saved_model_dir: str, tflite_path: str, windows: Mapping[str, np.ndarray]
) -> dict:
    """How closely the TFLite file follows the SavedModel on `windows` (arrays [N, seq_len]).

    Returns `max_abs_diff_start`, `max_abs_diff_end` (over the masked tokens),
    `same_best_span_share` (windows whose best span is the same) and `n_windows`.
    """
    arrays = [np.asarray(windows[name], np.int32) for name in WINDOW_INPUTS]
    saved_start, saved_end = load_predictor(saved_model_dir).predict(*arrays)
    lite_start, lite_end = load_predictor(tflite_path).predict(*arrays)
    mask = arrays[1] > 0
    n = int(arrays[0].shape[0])
    if n == 0:
        raise ValueError("compare_with_saved_model needs at least one window")
    same = best_spans(saved_start, saved_end, arrays[1]) == best_spans(
        lite_start, lite_end, arrays[1]
    )
    return {
        "max_abs_diff_start": float(np.max(np.abs(saved_start - lite_start)[mask], initial=0.0)),
        "max_abs_diff_end": float(np.max(np.abs(saved_end - lite_end)[mask], initial=0.0)),
        "same_best_span_share": float(np.mean(np.all(same, axis=1))),
        "n_windows": n,
    }
