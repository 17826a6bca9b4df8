"""The drop-in's public API against Model Maker's, and what it returns."""

import inspect
import logging
import os

import pytest
import tensorflow as tf

from components.qa import encoders, synth
from components.qa.spec import BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec
from mbqa_model_maker import config, model_spec, question_answer
from mbqa_model_maker.question_answer import DataLoader, QuestionAnswer

# Model Maker 0.4.3's signatures (tflite_model_maker.question_answer and .config), written
# out from its source; the specs' own are compared in tests/qa/test_spec.py.
EMPTY = inspect.Parameter.empty
SIGNATURES = {
    "create": [("train_data", EMPTY), ("model_spec", EMPTY), ("batch_size", None),
               ("epochs", 2), ("steps_per_epoch", None), ("shuffle", False),
               ("do_train", True)],
    "DataLoader.from_squad": [("filename", EMPTY), ("model_spec", EMPTY),
                              ("is_training", True), ("version_2_with_negative", False),
                              ("cache_dir", None)],
    "QuestionAnswer.evaluate": [("self", EMPTY), ("data", EMPTY), ("max_answer_length", 30),
                                ("null_score_diff_threshold", 0.0),
                                ("verbose_logging", False), ("output_dir", None)],
    "QuestionAnswer.evaluate_tflite": [
        ("self", EMPTY), ("tflite_filepath", EMPTY), ("data", EMPTY),
        ("max_answer_length", 30), ("null_score_diff_threshold", 0.0),
        ("verbose_logging", False), ("output_dir", None)],
    "QuestionAnswer.export": [
        ("self", EMPTY), ("export_dir", EMPTY), ("tflite_filename", "model.tflite"),
        ("label_filename", "labels.txt"), ("vocab_filename", "vocab.txt"),
        ("saved_model_filename", "saved_model"), ("tfjs_folder_name", "tfjs"),
        ("export_format", None), ("kwargs", EMPTY)],
    "QuestionAnswer.train": [("self", EMPTY), ("train_data", EMPTY), ("epochs", None),
                             ("batch_size", None), ("steps_per_epoch", None)],
    "QuestionAnswer.summary": [("self", EMPTY)],
    "QuantizationConfig": [
        ("optimizations", None), ("representative_data", None), ("quantization_steps", None),
        ("inference_input_type", None), ("inference_output_type", None),
        ("supported_ops", None), ("supported_types", None),
        ("experimental_new_quantizer", None)],
    "QuantizationConfig.for_dynamic": [],
    "QuantizationConfig.for_float16": [],
    "QuantizationConfig.for_int8": [
        ("representative_data", EMPTY), ("quantization_steps", 2000),
        ("inference_input_type", tf.uint8), ("inference_output_type", tf.uint8),
        ("supported_ops", tf.lite.OpsSet.TFLITE_BUILTINS_INT8)],
}
OBJECTS = {
    "create": question_answer.create, "DataLoader.from_squad": DataLoader.from_squad,
    "QuestionAnswer.evaluate": QuestionAnswer.evaluate,
    "QuestionAnswer.evaluate_tflite": QuestionAnswer.evaluate_tflite,
    "QuestionAnswer.export": QuestionAnswer.export, "QuestionAnswer.train": QuestionAnswer.train,
    "QuestionAnswer.summary": QuestionAnswer.summary,
    "QuantizationConfig": config.QuantizationConfig,
    "QuantizationConfig.for_dynamic": config.QuantizationConfig.for_dynamic,
    "QuantizationConfig.for_float16": config.QuantizationConfig.for_float16,
    "QuantizationConfig.for_int8": config.QuantizationConfig.for_int8,
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature_matches_model_maker(name):
    params = inspect.signature(OBJECTS[name]).parameters.values()
    assert [(p.name, p.default) for p in params] == SIGNATURES[name]


def test_names_match_model_maker():
    assert question_answer.MobileBertQaSpec is MobileBertQaSpec
    assert question_answer.MobileBertQaSquadSpec is MobileBertQaSquadSpec
    assert question_answer.BertQaSpec is BertQaSpec
    assert set(question_answer.__all__) == {"BertQaSpec", "DataLoader", "MobileBertQaSpec",
                                            "MobileBertQaSquadSpec", "QuestionAnswer", "create"}
    assert [f.value for f in config.ExportFormat] == [
        "TFLITE", "SAVED_MODEL", "LABEL", "VOCAB", "TFJS"]
    assert QuestionAnswer.ALLOWED_EXPORT_FORMAT == (
        config.ExportFormat.TFLITE, config.ExportFormat.VOCAB, config.ExportFormat.SAVED_MODEL)
    assert model_spec.QUESTION_ANSWER_MODELS == ["bert_qa", "mobilebert_qa",
                                                 "mobilebert_qa_squad"]
    assert type(model_spec.get("mobilebert_qa_squad")) is MobileBertQaSquadSpec
    assert model_spec.get(BertQaSpec) == BertQaSpec()
    with pytest.raises(KeyError, match="mobilebert_qa_squad"):
        model_spec.get("mobilebert")


def test_quantization_configs_name_the_exporters_quantizations():
    qc = config.QuantizationConfig
    assert qc.for_dynamic().quantization == "dynamic"
    assert qc.for_float16().quantization == "float16"
    assert qc.for_int8(representative_data=object()).quantization == "int8"
    assert qc.for_int8(representative_data=object()).quantization_steps == 2000
    assert qc(optimizations=[]).quantization == "float32"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    hub = encoders.make_encoder(str(root / "hub"), tf_format=encoders.TF1)
    spec = MobileBertQaSpec(uri=hub, seq_len=128, query_len=32, doc_stride=64)
    v1 = synth.make_synthetic_squad(str(root / "v1"), n=40, seed=1, eval_fraction=0.25)
    v2 = synth.make_synthetic_squad(str(root / "v2"), n=40, seed=2, eval_fraction=0.25,
                                    unanswerable_fraction=0.3)
    return spec, v1, v2


@pytest.mark.slow
def test_untrained_model_evaluates_and_exports_as_model_maker(tiny, tmp_path):
    spec, v1, v2 = tiny
    model = question_answer.create(None, model_spec=spec, do_train=False)
    v1_eval = DataLoader.from_squad(v1["eval"], spec, is_training=False)
    v2_eval = DataLoader.from_squad(v2["eval"], spec, is_training=False,
                                    version_2_with_negative=True)
    assert len(v1_eval) >= len(v1_eval.examples) > 0  # windows, as Model Maker's features
    scores = model.evaluate(v1_eval, output_dir=str(tmp_path / "v1"))
    assert sorted(scores) == ["exact_match", "final_f1"]
    assert sorted(os.listdir(tmp_path / "v1")) == ["nbest_predictions.json",
                                                  "predictions.json"]
    scores = model.evaluate(v2_eval, output_dir=str(tmp_path / "v2"))
    for key in ("exact", "f1", "total", "final_exact", "final_exact_thresh", "final_f1",
                "final_f1_thresh", "HasAns_exact", "NoAns_exact"):
        assert key in scores, key
    assert scores["total"] == len(v2_eval.examples)
    assert "null_odds.json" in os.listdir(tmp_path / "v2")

    with pytest.raises(ValueError, match="unanswerable questions .* version_2_with_negative"):
        DataLoader.from_squad(v2["eval"], spec, is_training=False)
    context = v1_eval.examples[0].context
    answer = model.answer(context, v1_eval.examples[0].question)
    assert answer and answer in context

    train = DataLoader.from_squad(v1["train"], spec)
    int8 = config.QuantizationConfig.for_int8(train, quantization_steps=4)
    sizes = {}
    for name, quantization in (("float32", None), ("dynamic", "default"),
                               ("float16", config.QuantizationConfig.for_float16()),
                               ("int8", int8)):
        model.export(str(tmp_path / "out"), tflite_filename=f"{name}.tflite",
                     quantization_config=quantization)
        sizes[name] = os.path.getsize(tmp_path / "out" / f"{name}.tflite")
    assert sizes["float32"] > 1.8 * sizes["float16"] > 1.8 * 1.8 * sizes["dynamic"]
    assert sizes["int8"] < 0.6 * sizes["float16"]
    model.export(str(tmp_path / "out"), export_format=[config.ExportFormat.SAVED_MODEL])
    signature = tf.saved_model.load(str(tmp_path / "out" / "saved_model")).signatures[
        "serving_default"]
    assert sorted(signature.structured_outputs) == ["end_logits", "start_logits"]
    with pytest.raises(ValueError, match="Export format ExportFormat.TFJS is not allowed"):
        model.export(str(tmp_path / "out"), export_format=config.ExportFormat.TFJS)
    with pytest.raises(TypeError, match="quantisation"):
        model.export(str(tmp_path / "out"), quantisation="float16")


def test_training_windows_are_cached_by_content_and_settings(tiny, tmp_path, caplog):
    spec, v1, _ = tiny
    caplog.set_level(logging.INFO)
    first = DataLoader.from_squad(v1["train"], spec, cache_dir=str(tmp_path))
    again = DataLoader.from_squad(v1["train"], spec, cache_dir=str(tmp_path))
    assert again.files == first.files and len(again) == len(first) > 0
    assert "cached training windows" in caplog.text
    other = DataLoader.from_squad(v1["train"], spec.replace(doc_stride=32),
                                  cache_dir=str(tmp_path))
    assert other.files != first.files and len(other) > len(first)
    assert first.examples == []  # as Model Maker: training data keeps no examples
    with pytest.raises(ValueError, match="couldn't be smaller than batch_size"):
        question_answer.create(first, spec, batch_size=len(first) + 1)
