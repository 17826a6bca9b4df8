"""Tests of components.qa.tflite: conversion, tensor names, Task Library metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from components.qa import contracts, inference, tflite
from components.qa import spec as spec_lib
from tests.qa.test_inference import (
    SEQ_LEN,
    VOCAB,
    expected_logits,
    random_windows,
    save_keyword_model,
    write_vocab,
)

PASSAGE = "Beyonce was born in Houston in Texas. She sang in choirs."
QUESTION = "Where was Beyonce born?"


def small_spec(**overrides) -> spec_lib.BertQaSpec:
    params = {"uri": "unused", "seq_len": SEQ_LEN, "query_len": 8, "doc_stride": 8}
    params.update(overrides)
    return spec_lib.MobileBertQaSpec(**params)


@pytest.fixture(scope="module")
def keyword_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("keyword")
    vocab = write_vocab(root)
    return save_keyword_model(root / "saved_model", vocab), vocab


@pytest.fixture(scope="module")
def task_library_model(tmp_path_factory):
    """The keyword model exported at the Task Library's 384 tokens."""
    root = tmp_path_factory.mktemp("keyword384")
    vocab = write_vocab(root)
    return save_keyword_model(root / "saved_model", vocab, seq_len=384), vocab


# Largest |TFLite - SavedModel| logit difference allowed per format (logits are 0..5.1).
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "dynamic": 0.1, "int8": 0.5, "int16x8": 0.01}


@pytest.mark.parametrize("quantization", contracts.QUANTIZATIONS)
def test_every_quantization_converts_runs_and_agrees(quantization, keyword_model, tmp_path):
    saved_model, vocab = keyword_model
    windows = random_windows(16)
    out = tflite.export_tflite(
        saved_model, str(tmp_path / quantization / "model.tflite"), small_spec(), vocab,
        quantization=quantization, representative_windows=random_windows(32, seed=5),
    )
    predictor = inference.load_predictor(out)
    assert predictor.seq_len == SEQ_LEN
    start, end = predictor.predict(windows["input_ids"], windows["input_mask"],
                                   windows["segment_ids"])
    want_start, want_end = expected_logits(
        windows["input_ids"], windows["input_mask"], windows["segment_ids"],
        VOCAB.index("houston"),
    )
    mask = windows["input_mask"] > 0
    assert np.max(np.abs(start - want_start)[mask]) <= TOLERANCE[quantization]
    assert np.max(np.abs(end - want_end)[mask]) <= TOLERANCE[quantization]
    agreement = tflite.compare_with_saved_model(saved_model, out, windows)
    assert agreement["n_windows"] == 16
    assert agreement["max_abs_diff_start"] <= TOLERANCE[quantization]
    assert agreement["max_abs_diff_end"] <= TOLERANCE[quantization]
    assert agreement["same_best_span_share"] == 1.0


def _tensor_names(path: str) -> tuple[set[str], set[str]]:
    interpreter = tf.lite.Interpreter(model_path=path)
    return ({d["name"] for d in interpreter.get_input_details()},
            {d["name"] for d in interpreter.get_output_details()})


def test_tensor_names_are_model_makers_by_default(keyword_model, tmp_path):
    saved_model, vocab = keyword_model
    path = tflite.export_tflite(saved_model, str(tmp_path / "m.tflite"), small_spec(), vocab)
    inputs, outputs = _tensor_names(path)
    assert inputs == set(spec_lib.DEFAULT_TFLITE_INPUT_NAME.values())
    assert outputs == set(spec_lib.DEFAULT_TFLITE_OUTPUT_NAME.values())


def test_tensor_names_follow_the_spec_and_match_their_metadata(keyword_model, tmp_path):
    saved_model, vocab = keyword_model
    spec = small_spec(
        tflite_input_name={"ids": "my_ids", "mask": "my_mask", "segment_ids": "my_segments"},
        tflite_output_name={"start_logits": "my_start", "end_logits": "my_end"},
    )
    path = tflite.export_tflite(saved_model, str(tmp_path / "m.tflite"), spec, vocab,
                                quantization="float32")
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    metadata = inference.read_tflite_metadata(open(path, "rb").read())
    graph = metadata["subgraph_metadata"][0]
    names = {**spec.tflite_input_name, **spec.tflite_output_name}
    # The i-th metadata entry describes the i-th input/output tensor.
    for details, entries in ((interpreter.get_input_details(), graph["input_tensor_metadata"]),
                             (interpreter.get_output_details(), graph["output_tensor_metadata"])):
        assert [d["name"] for d in details] == [names[e["name"]] for e in entries]
    # And the outputs are what their names say: the start logits carry the segment term.
    w = random_windows(1)
    for index, name in ((0, "ids"), (1, "mask"), (2, "segment_ids")):
        detail = next(d for d in interpreter.get_input_details()
                      if d["name"] == spec.tflite_input_name[name])
        interpreter.set_tensor(detail["index"], w[contracts.SERVING_INPUTS[index]])
    interpreter.invoke()
    outputs = {d["name"]: interpreter.get_tensor(d["index"])
               for d in interpreter.get_output_details()}
    np.testing.assert_allclose(outputs["my_start"] - outputs["my_end"],
                               0.1 * w["segment_ids"], atol=1e-5)


def test_metadata_is_what_the_task_library_expects(keyword_model, tmp_path, data_dir):
    saved_model, vocab = keyword_model
    path = tflite.export_tflite(saved_model, str(tmp_path / "m.tflite"), small_spec(), vocab)
    ours = inference.read_tflite_metadata(open(path, "rb").read())["subgraph_metadata"][0]
    reference = json.loads(
        (data_dir / "reference" / "task_library_mobilebert_qa_metadata.json").read_text()
    )["subgraph_metadata"][0]

    def names(graph, key):
        return sorted(t["name"] for t in graph[key])

    for key in ("input_tensor_metadata", "output_tensor_metadata"):
        assert names(ours, key) == names(reference, key)
    units = ours["input_process_units"]
    assert [u["options_type"] for u in units] == ["BertTokenizerOptions"]
    assert [(f["name"], f["type"]) for f in units[0]["options"]["vocab_file"]] == [
        ("vocab.txt", "VOCABULARY")
    ]
    from tensorflow_lite_support.metadata.python import metadata

    displayer = metadata.MetadataDisplayer.with_model_file(path)
    assert displayer.get_packed_associated_file_list() == ["vocab.txt"]
    assert displayer.get_associated_file_buffer("vocab.txt") == open(vocab, "rb").read()


def test_the_task_librarys_bert_question_answerer_answers(task_library_model, tmp_path):
    from tensorflow_lite_support.python.task.text.bert_question_answerer import (
        BertQuestionAnswerer,
    )

    saved_model, vocab = task_library_model
    path = tflite.export_tflite(saved_model, str(tmp_path / "m.tflite"),
                                small_spec(seq_len=384, query_len=64, doc_stride=128), vocab)
    answerer = BertQuestionAnswerer.create_from_file(path)
    result = answerer.answer(PASSAGE, QUESTION)
    assert result.answers, "the Task Library returned no answer"
    assert result.answers[0].text == "Houston"


def test_the_task_library_refuses_other_sequence_lengths(keyword_model, tmp_path):
    """Documented: the Task Library feeds 384 tokens, so a seq_len-32 file cannot answer."""
    from tensorflow_lite_support.python.task.text.bert_question_answerer import (
        BertQuestionAnswerer,
    )

    saved_model, vocab = keyword_model
    path = tflite.export_tflite(saved_model, str(tmp_path / "m.tflite"), small_spec(), vocab)
    answerer = BertQuestionAnswerer.create_from_file(path)
    with pytest.raises(RuntimeError):
        answerer.answer(PASSAGE, QUESTION)


def test_bad_arguments_are_refused_before_converting(keyword_model, tmp_path):
    saved_model, vocab = keyword_model
    out = str(tmp_path / "m.tflite")
    with pytest.raises(ValueError, match="not one of"):
        tflite.export_tflite(saved_model, out, small_spec(), vocab, quantization="int4")
    for calibrated in contracts.CALIBRATED_QUANTIZATIONS:
        with pytest.raises(ValueError, match=f"'{calibrated}' needs representative_windows"):
            tflite.export_tflite(saved_model, out, small_spec(), vocab, quantization=calibrated)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        tflite.export_tflite(saved_model, out, small_spec(), str(tmp_path / "missing.txt"))
    for calibrated in contracts.CALIBRATED_QUANTIZATIONS:
        with pytest.raises(ValueError, match="seq_len=32"):
            tflite.export_tflite(saved_model, out, small_spec(), vocab, quantization=calibrated,
                                 representative_windows=random_windows(2, seq_len=16))
    assert not tf.io.gfile.exists(out)


def test_best_spans_respects_order_mask_and_length():
    start = np.array([[0.0, 9.0, 0.0, 0.0, 8.0, 0.0]])
    end = np.array([[7.0, 0.0, 0.0, 0.0, 0.0, 9.0]])
    mask = np.array([[1, 1, 1, 1, 1, 1]])
    # end 0 precedes start 1: not allowed; best is (1, 5).
    assert tflite.best_spans(start, end, mask).tolist() == [[1, 5]]
    # Span length 5 > max 4: the best allowed is (4, 5).
    assert tflite.best_spans(start, end, mask, max_answer_tokens=4).tolist() == [[4, 5]]
    # Token 5 is padding: the best span in the mask starts at 1 (ties: the shortest).
    masked = np.array([[1, 1, 1, 1, 1, 0]])
    assert tflite.best_spans(start, end, masked).tolist() == [[1, 1]]


def test_a_hub_encoder_model_answers_in_the_task_library(tmp_path):
    """The whole path on a real (tiny) Hub encoder: span head, export, TFLite, Task Library."""
    from tensorflow_lite_support.python.task.text.bert_question_answerer import (
        BertQuestionAnswerer,
    )

    from components.qa import model as model_lib
    from tests.qa import hub_fixtures

    module = hub_fixtures.make_tf2_module(str(tmp_path / "module"))
    spec = spec_lib.MobileBertQaSpec(uri=module, is_tf2=True)  # seq_len 384, query 64
    saved_model = model_lib.export_serving_model(
        model_lib.build_qa_model(spec), str(tmp_path / "saved_model"), spec
    )
    vocab = inference.load_predictor(saved_model).vocab_path
    path = tflite.export_tflite(saved_model, str(tmp_path / "model.tflite"), spec, vocab)
    passage = "Paris is the capital of France. The river is blue."
    result = BertQuestionAnswerer.create_from_file(path).answer(passage, "What is the capital?")
    assert result.answers
    for answer in result.answers:
        assert answer.text and answer.text in passage


def test_one_saved_model_always_gives_the_same_bytes(keyword_model, tmp_path):
    saved_model, vocab = keyword_model
    first, second = (
        open(tflite.export_tflite(saved_model, str(tmp_path / f"{i}.tflite"), small_spec(),
                                  vocab), "rb").read()
        for i in range(2)
    )
    assert first == second


def save_encoder_like_keyword_model(path, vocab_path: str) -> str:
    """The keyword model's answers through what int16 trips on in BERT encoders.

    A layer norm as BERT's (mean, SQUARED_DIFFERENCE, RSQRT): the keyword's 4-d embedding
    normalizes to (1, -1, 1, -1), which scores 5.0; other tokens embed to 0 and score 0.
    And a masked softmax as in attention (scores + (1 - mask) * -1e9): the start logits
    add the softmax of the scores over the real tokens (~0.1 to 0.9 at the keyword).
    """
    from components.qa import model as model_lib

    vocab = open(vocab_path, encoding="utf-8").read().split("\n")
    weights = np.zeros((len(vocab), 4), np.float32)
    weights[vocab.index("houston")] = [3.0, -3.0, 3.0, -3.0]
    inputs = {name: tf.keras.Input((SEQ_LEN,), dtype=tf.int32, name=name)
              for name in contracts.SERVING_INPUTS}
    x = tf.keras.layers.Embedding(
        len(vocab), 4, embeddings_initializer=tf.keras.initializers.Constant(weights)
    )(inputs["input_ids"])
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
    normalized = (x - mean) * tf.math.rsqrt(variance + 1e-3)
    # A dense span head (as the real model's), not reduce_sum: TF 2.15's 16x8 SUM keeps its
    # input's scale and wraps around when the sum leaves that range.
    score = tf.keras.layers.Dense(
        1, use_bias=False, kernel_initializer=tf.keras.initializers.Constant(
            [[1.25], [-1.25], [1.25], [-1.25]])
    )(normalized)[..., 0]
    mask = tf.cast(inputs["input_mask"], tf.float32)
    segment = tf.cast(inputs["segment_ids"], tf.float32)
    attention = tf.nn.softmax(score + (1.0 - mask) * -1e9, axis=-1)
    model = tf.keras.Model(inputs, {"start_logits": (score + 0.1 * segment + attention) * mask,
                                    "end_logits": score * mask})
    model.vocab_file = tf.saved_model.Asset(vocab_path)
    return model_lib.export_serving_model(model, str(path), small_spec())


def test_int16x8_is_int16_but_where_int16_fails(tmp_path):
    """int16 activations, int32/float32 ends, and float32 where int16 fails: TF 2.15's
    16x8 quantizer makes LayerNorm's SQUARED_DIFFERENCE int16, which has no int16 kernel
    (invoke fails), and one int16 scale for scores + a -1e9 mask rounds the scores to 0
    (every softmax uniform); the export runs those ops in float32."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    vocab = write_vocab(tmp_path)
    saved_model = save_encoder_like_keyword_model(tmp_path / "saved_model", vocab)
    path = tflite.export_tflite(
        saved_model, str(tmp_path / "m.tflite"), small_spec(), vocab, quantization="int16x8",
        representative_windows=random_windows(32, seed=5),
    )
    model = flatbuffer_utils.read_model(path)
    graph = model.subgraphs[0]
    for name in ("SQUARED_DIFFERENCE", "SOFTMAX"):
        ops = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode
               == getattr(schema.BuiltinOperator, name)]
        assert ops, f"the model has no {name} op any more"
        for op in ops:
            assert {graph.tensors[i].type for i in [*op.inputs, *op.outputs]} == {
                schema.TensorType.FLOAT32}, name
    assert schema.TensorType.INT16 in {t.type for t in graph.tensors}
    # What stays float: LayerNorm's SQUARED_DIFFERENCE, the mask (SUB, MUL), its ADD to
    # the scores and the softmax; and the CASTs of the int32 inputs.
    assert tflite.float_ops(open(path, "rb").read()) == {
        "ADD": 1, "CAST": 2, "MUL": 1, "SOFTMAX": 1, "SQUARED_DIFFERENCE": 1, "SUB": 1}
    # The ends stay as in every format: int32 inputs, float32 outputs.
    interpreter = tf.lite.Interpreter(model_path=path)
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.int32}
    assert {d["dtype"] for d in interpreter.get_output_details()} == {np.float32}
    windows = random_windows(8, seed=9)
    agreement = tflite.compare_with_saved_model(saved_model, path, windows)
    assert agreement["same_best_span_share"] == 1.0
    assert agreement["max_abs_diff_start"] <= 0.05
    assert agreement["max_abs_diff_end"] <= 0.05


def _op_tensor_types(path: str, name: str) -> list[set[str]]:
    """The tensor types each `name` op of the file reads and writes."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    graph = model.subgraphs[0]
    types = {code: type_name for type_name, code in vars(schema.TensorType).items()
             if not type_name.startswith("_")}
    return [{types[graph.tensors[i].type] for i in [*op.inputs, *op.outputs] if i >= 0}
            for op in graph.operators
            if model.operatorCodes[op.opcodeIndex].builtinCode
            == getattr(schema.BuiltinOperator, name)]


def test_int8_is_int8_but_the_mask_cast(tmp_path):
    """Full integer on what int8 loses in BERT encoders: TF 2.15's calibrator records the
    mask `1 - mask` as [-1e9, 1] (the in-place MUL by -1e9 overwrites it before it is
    logged) and one int8 scale for scores + a -1e9 mask rounds the scores to 0; the export
    calibrates on true ranges and clips the mask, and every op stays int8 but the CASTs
    of the int32 inputs to float32 (before their QUANTIZE ops)."""
    vocab = write_vocab(tmp_path)
    saved_model = save_encoder_like_keyword_model(tmp_path / "saved_model", vocab)
    path = tflite.export_tflite(
        saved_model, str(tmp_path / "m.tflite"), small_spec(), vocab, quantization="int8",
        representative_windows=random_windows(32, seed=5),
    )
    assert tflite.float_ops(open(path, "rb").read()) == {"CAST": 2}
    for name in ("SQUARED_DIFFERENCE", "RSQRT", "SOFTMAX", "ADD", "FULLY_CONNECTED"):
        types = _op_tensor_types(path, name)
        assert types, f"the model has no {name} op any more"
        assert all(t <= {"INT8", "INT32"} for t in types), (name, types)
    interpreter = tf.lite.Interpreter(model_path=path)
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.int32}
    assert {d["dtype"] for d in interpreter.get_output_details()} == {np.float32}
    agreement = tflite.compare_with_saved_model(saved_model, path, random_windows(8, seed=9))
    assert agreement["same_best_span_share"] == 1.0
    # The softmax term is 0.1 to 0.9 of the start logits; uniform (unmasked), it is 1/32.
    assert agreement["max_abs_diff_start"] <= 0.05, agreement
    assert agreement["max_abs_diff_end"] <= 0.05, agreement


def test_clip_attention_masks_bounds_the_mask_below_the_scores():
    """The clipped mask takes every masked score MASK_MARGIN below the smallest real one;
    large values that are no mask of softmax scores keep their ranges."""
    from components.qa import int8_calibration

    model = _model_of([("SUB", [0, 1], [2]), ("MUL", [2, 3], [4]), ("ADD", [5, 4], [6]),
                       ("RESHAPE", [6, 7], [8]), ("SOFTMAX", [8], [9]),
                       # A large activation added to a small one, read by no softmax.
                       ("ADD", [10, 11], [12]), ("FULLY_CONNECTED", [12, 13], [14]),
                       # A large positive tensor added to scores before a softmax.
                       ("ADD", [5, 15], [16]), ("SOFTMAX", [16], [17])])
    ranges = {1: (0.0, 1.0), 2: (0.0, 1.0), 4: (-1e9, 0.0), 5: (-8.0, 12.0),
              6: (-1e9, 12.0), 8: (-1e9, 12.0), 9: (0.0, 1.0), 10: (-3000.0, 2000.0),
              11: (-2.0, 2.0), 12: (-3002.0, 2002.0), 14: (-5.0, 5.0), 15: (0.0, 5000.0),
              16: (-8.0, 5012.0), 17: (0.0, 1.0)}
    unchanged = {i: ranges[i] for i in (1, 2, 9, 10, 11, 12, 14, 15, 16, 17)}
    margin = int8_calibration.MASK_MARGIN
    assert int8_calibration.clip_attention_masks(model, ranges) == ["t6"]
    assert ranges[6] == ranges[8] == (-8.0 - margin, 12.0)
    assert ranges[4] == (-(20.0 + margin), 0.0)
    # Every masked score (at most 12 - 20 - margin) is clipped to the sum's low end.
    assert 12.0 + ranges[4][0] <= ranges[6][0]
    assert {i: ranges[i] for i in unchanged} == unchanged


def _model_of(ops: list[tuple[str, list[int], list[int]]], types: dict[int, int] | None = None,
              custom: str = "MyCustomOp"):
    """A TFLite model object with these (op name, inputs, outputs), float32 tensors unless
    `types` says otherwise; 'CUSTOM' ops get the custom code `custom`."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.operatorCodes = []
    graph = schema.SubGraphT()
    count = 1 + max(i for _, inputs, outputs in ops for i in [*inputs, *outputs])
    graph.tensors = []
    for i in range(count):
        tensor = schema.TensorT()
        tensor.shape, tensor.buffer, tensor.name = [1], 0, f"t{i}".encode()
        tensor.type = (types or {}).get(i, schema.TensorType.FLOAT32)
        graph.tensors.append(tensor)
    graph.operators = []
    codes: dict[str, int] = {}
    for name, inputs, outputs in ops:
        if name not in codes:
            code = schema.OperatorCodeT()
            code.builtinCode = getattr(schema.BuiltinOperator, name)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            if name == "CUSTOM":
                code.customCode = custom
            codes[name] = len(model.operatorCodes)
            model.operatorCodes.append(code)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes[name], inputs, outputs
        graph.operators.append(op)
    graph.inputs, graph.outputs = [0], [count - 1]
    model.subgraphs = [graph]
    return model


def test_float_ops_names_the_ops_that_compute_in_float():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    int8, int32 = schema.TensorType.INT8, schema.TensorType.INT32
    model = _model_of(
        [("CAST", [0], [1]), ("QUANTIZE", [1], [2]), ("ADD", [2, 2], [3]),
         ("RESHAPE", [0, 4], [5]), ("DEQUANTIZE", [3], [6]), ("SOFTMAX", [6], [7]),
         ("ADD", [7, 7], [8]), ("CUSTOM", [8], [9]), ("MUL", [3, 3], [10]),
         ("QUANTIZE", [9], [11]), ("ADD", [10, 11], [12])],
        types={0: int32, 2: int8, 3: int8, 4: int32, 5: int32, 10: int8, 11: int8,
               12: int8},
    )
    buffer = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    # CAST int32 -> float32 computes a float; QUANTIZE/DEQUANTIZE and the all-integer
    # ADD, MUL and RESHAPE are left out.
    want = {"ADD": 1, "CAST": 1, "MyCustomOp": 1, "SOFTMAX": 1}
    assert tflite.float_ops(buffer) == want
    # A file with appended metadata files reads the same.
    assert tflite.float_ops(buffer + b"PK\x03\x04 appended zip") == want
    assert tflite.float_ops(bytes(flatbuffer_utils.convert_object_to_bytearray(
        _model_of([("RESHAPE", [0, 1], [2])], types={0: int8, 1: int32, 2: int8})))) == {}


def test_float_ops_agrees_with_the_interpreter(keyword_tflite, tmp_path):
    """On an exported file with metadata: the ops with a float32 tensor, as the interpreter
    lists them."""
    interpreter = tf.lite.Interpreter(model_path=keyword_tflite)
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    want: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        tensors = [*op["inputs"], *op["outputs"]]
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and any(
                i >= 0 and dtypes[i] == np.float32 for i in tensors):
            want[op["op_name"]] = want.get(op["op_name"], 0) + 1
    got = tflite.float_ops(open(keyword_tflite, "rb").read())
    assert got == want
    assert sum(got.values()) > 0


@pytest.fixture(scope="module")
def keyword_tflite(keyword_model, tmp_path_factory):
    saved_model, vocab = keyword_model
    return tflite.export_tflite(saved_model, str(tmp_path_factory.mktemp("lite") / "m.tflite"),
                                small_spec(), vocab, quantization="float32")


@pytest.mark.parametrize("threads", [1, 2])
def test_latency_ms_is_a_positive_median(keyword_tflite, threads):
    ms = tflite.latency_ms(keyword_tflite, random_windows(3), threads=threads, repeats=5)
    assert isinstance(ms, float)
    assert 0.0 < ms < 10_000.0


def test_latency_ms_refuses_bad_windows_and_settings(keyword_tflite):
    with pytest.raises(ValueError, match="seq_len=32 tokens; got windows of 16"):
        tflite.latency_ms(keyword_tflite, random_windows(2, seq_len=16))
    short = dict(random_windows(2))
    short["segment_ids"] = short["segment_ids"][:, :16]
    with pytest.raises(ValueError, match="segment_ids"):
        tflite.latency_ms(keyword_tflite, short)
    with pytest.raises(ValueError, match="lacks \\['input_mask'\\]"):
        tflite.latency_ms(keyword_tflite, {k: v for k, v in random_windows(2).items()
                                           if k != "input_mask"})
    with pytest.raises(ValueError, match="at least one window"):
        tflite.latency_ms(keyword_tflite, random_windows(0))
    with pytest.raises(ValueError, match="threads=0"):
        tflite.latency_ms(keyword_tflite, random_windows(1), threads=0)
