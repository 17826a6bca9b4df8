"""Tests of the QaEvaluator: its executor on real artifacts, the blessing rule, the report."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.evaluator import component, executor
from components.qa import spec as spec_lib
from components.qa import squad
from tests.evaluator.evaluator_fixtures import (
    EVAL_QUESTIONS,
    SPEC,
    examples_artifact,
    model_artifact,
    question,
    run_evaluator,
    windows_artifact,
    write_records,
    write_vocab,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    vocab = write_vocab(root)
    return (vocab, model_artifact(root, vocab, "houston", 11),
            model_artifact(root, vocab, "texas", 12))


def test_a_good_model_without_baseline_is_scored_exported_and_blessed(models, tmp_path):
    vocab, houston, _ = models
    summary, evaluation, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston,
        **{executor.MIN_EXACT_MATCH_KEY: 80.0, executor.MIN_F1_KEY: 80.0})
    assert summary["num_questions"] == 5
    assert summary["version_2_with_negative"] is False
    assert (summary["exact_match"], summary["f1"]) == (80.0, 80.0)
    assert summary["models"]["saved_model"]["official"] == {"exact_match": 80.0, "f1": 80.0}
    lite = summary["models"]["tflite_dynamic"]
    assert (lite["exact_match"], lite["f1"]) == (80.0, 80.0)
    assert lite["agreement"]["same_best_span_share"] == 1.0
    assert lite["agreement"]["n_windows"] == 5
    tflite_path = os.path.join(evaluation.uri, "tflite", "dynamic", "model.tflite")
    assert lite["size_bytes"] == os.path.getsize(tflite_path)
    predictions = json.load(open(os.path.join(evaluation.uri, "predictions.json")))
    assert predictions == {"q0": "houston", "q1": "houston", "q2": "houston",
                           "q3": "houston", "q4": "houston"}
    assert set(json.load(open(os.path.join(evaluation.uri, "nbest_predictions.json")))) == set(
        predictions)
    assert not os.path.exists(os.path.join(evaluation.uri, "null_odds.json"))
    assert "BLESSED" in open(os.path.join(evaluation.uri, "report.html")).read()
    assert summary["blessing"]["blessed"] is True
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("current_model_id") == 11
    assert blessing.get_string_custom_property("current_model") == houston.uri


def test_a_model_worse_than_the_baseline_is_not_blessed(models, tmp_path):
    _, houston, texas = models
    summary, _, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), texas, baseline=houston,
        **{executor.MAX_REGRESSION_KEY: 50.0})
    assert (summary["exact_match"], summary["baseline"]["exact_match"]) == (20.0, 80.0)
    assert summary["baseline"]["model_uri"] == houston.uri
    assert summary["blessing"]["blessed"] is False
    assert any("more than max_regression" in r for r in summary["blessing"]["reasons"])
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    assert not os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_int_custom_property("baseline_model_id") == 11


def test_a_model_better_than_the_baseline_is_blessed(models, tmp_path):
    _, houston, texas = models
    summary, _, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston, baseline=texas)
    assert summary["blessing"]["blessed"] is True
    assert blessing.get_int_custom_property("blessed") == 1


def test_a_model_below_the_thresholds_is_not_blessed(models, tmp_path):
    _, houston, _ = models
    summary, _, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston,
        **{executor.MIN_F1_KEY: 80.01})
    assert summary["blessing"]["blessed"] is False
    assert "SavedModel F1 80.00 < min 80.01" in summary["blessing"]["reasons"]
    assert blessing.get_int_custom_property("blessed") == 0


def test_every_quantization_is_scored_and_int8_is_calibrated_on_train_windows(models, tmp_path):
    vocab, houston, _ = models
    summary, evaluation, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston,
        transformed=windows_artifact(tmp_path, vocab, EVAL_QUESTIONS),
        **{executor.QUANTIZATIONS_KEY: '["dynamic", "float32", "float16", "int8"]'})
    for quantization in ("dynamic", "float32", "float16", "int8"):
        result = summary["models"][f"tflite_{quantization}"]
        assert (result["exact_match"], result["f1"]) == (80.0, 80.0), quantization
        assert os.path.exists(os.path.join(evaluation.uri, result["path"]))
    assert summary["models"]["tflite_float32"]["agreement"]["max_abs_diff_start"] < 1e-5


def test_squad_2_writes_null_odds_and_scores_unanswerable_questions(models, tmp_path):
    _, houston, _ = models
    questions = EVAL_QUESTIONS + [question("q5", None, context="she sang in choirs .")]
    summary, evaluation, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, questions), houston,
        **{executor.NULL_SCORE_DIFF_THRESHOLD_KEY: 0.0})
    assert summary["version_2_with_negative"] is True
    official = summary["models"]["saved_model"]["official"]
    assert official["total"] == 6 and official["NoAns_total"] == 1
    null_odds = json.load(open(os.path.join(evaluation.uri, "null_odds.json")))
    assert set(null_odds) == {f"q{i}" for i in range(6)}


def test_max_eval_examples_limits_the_questions(models, tmp_path):
    _, houston, _ = models
    summary, _, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston,
        **{executor.MAX_EVAL_EXAMPLES_KEY: 2})
    assert summary["num_questions"] == 2
    assert summary["exact_match"] == 100.0


def test_a_bad_record_is_named_by_file_and_number(models, tmp_path):
    _, houston, _ = models
    examples = examples_artifact(tmp_path, EVAL_QUESTIONS)
    bad = tf.train.Example()
    bad.features.feature["id"].bytes_list.value.append(b"q9")
    path = write_records(os.path.join(examples.uri, "Split-eval"),
                         [squad.to_tf_example(EVAL_QUESTIONS[0]), bad])
    with pytest.raises(ValueError, match=rf"{path}: record 1 is not a question"):
        run_evaluator(tmp_path, examples, houston)


def test_a_missing_split_is_named(models, tmp_path):
    _, houston, _ = models
    with pytest.raises(ValueError, match="has no split 'test'"):
        run_evaluator(tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston,
                      **{executor.EVAL_SPLIT_KEY: "test"})


@pytest.mark.parametrize(
    ("candidate", "baseline", "blessed"),
    [
        ({"exact_match": 50.0, "f1": 60.0}, None, True),  # exactly at the thresholds
        ({"exact_match": 49.99, "f1": 60.0}, None, False),
        ({"exact_match": 50.0, "f1": 60.0}, {"exact_match": 51.0, "f1": 61.0}, True),  # -1.0
        ({"exact_match": 50.0, "f1": 60.0}, {"exact_match": 51.0, "f1": 61.01}, False),
    ],
)
def test_decide_blessing_boundaries(candidate, baseline, blessed):
    result, reasons = executor.decide_blessing(candidate, {}, baseline, 50.0, 60.0, 1.0)
    assert result is blessed
    assert len(reasons) == 2 + (1 if baseline is None else 2)


def test_a_tflite_below_the_thresholds_blocks_the_blessing():
    ok = {"exact_match": 80.0, "f1": 80.0}
    blessed, reasons = executor.decide_blessing(
        ok, {"tflite_int8": {"exact_match": 10.0, "f1": 80.0}}, None, 50.0, 50.0, 0.0)
    assert not blessed
    assert "tflite_int8 EM 10.00 < min 50.00" in reasons


def test_the_component_refuses_bad_settings():
    from tfx.types import channel

    examples = channel.Channel(type=standard_artifacts.Examples)
    model = channel.Channel(type=standard_artifacts.Model)
    with pytest.raises(ValueError, match="int4"):
        component.QaEvaluator(examples, model, SPEC, quantizations=["int4"])
    with pytest.raises(ValueError, match="transformed_examples"):
        component.QaEvaluator(examples, model, SPEC, quantizations=["int8"])
    built = component.QaEvaluator(examples, model, SPEC, quantizations=["dynamic", "float16"])
    assert json.loads(built.exec_properties["quantizations"]) == ["dynamic", "float16"]
    assert spec_lib.spec_from_json(built.exec_properties["spec"]) == SPEC
