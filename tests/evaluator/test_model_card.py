"""Tests of the model card: built from real artifacts and an evaluator summary, written;
and the card a real QaEvaluator run writes."""

from __future__ import annotations

import dataclasses
import json
import os
import platform

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.evaluator import executor, gate, model_card
from components.qa import contracts, data_validation
from tests.evaluator.evaluator_fixtures import (
    EVAL_QUESTIONS,
    SPEC,
    examples_artifact,
    model_artifact,
    question,
    run_evaluator,
    windows_artifact,
    write_vocab,
)

TRAINING = {"train_steps": 100, "train_seconds": 12.5, "final_loss": 0.75, "batch_size": 32,
            "replicas": 1, "strategy": "off"}
WINDOW_STATS = {"splits": {s: {"questions": 5, "windows": 9, "skipped": 1, "no_windows": 0}
                           for s in ("train", "eval")}, "num_questions": 10}
INVALID = {"num_questions": 10, "num_examples": 8, "num_skipped": 2, "inputs": [],
           "skipped": [{"file": "a.json", "question_id": "x", "location": "data[0]",
                        "field": "answers", "reason": "is empty"}] * 2}
INT8_PROBLEM = "input shapes [[1, 32]] (needs [1, 384])"


def _write(path: str, text: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """(examples, windows, model): 5 eval and 3 train questions, their reports, training.json."""
    root = tmp_path_factory.mktemp("card")
    vocab = write_vocab(root)
    examples = examples_artifact(root, EVAL_QUESTIONS, EVAL_QUESTIONS[:3])
    examples.set_int_custom_property("span", 7)  # as SquadExampleGen records it
    examples.version = 2
    _write(os.path.join(examples.uri, "invalid_records.json"), json.dumps(INVALID))
    windows = windows_artifact(root, vocab, EVAL_QUESTIONS)
    _write(os.path.join(windows.uri, "window_stats.json"), json.dumps(WINDOW_STATS))
    _write(os.path.join(windows.uri, "skipped-train.jsonl"), '{"id": "q9", "reason": "r"}\n')
    model = standard_artifacts.Model()  # A Trainer's layout; the card needs no SavedModel.
    model.uri = str(root / "model")
    _write(os.path.join(model.uri, "Format-Serving", "assets.extra", "training.json"),
           json.dumps(TRAINING))
    return examples, windows, model


def summary(baseline: bool, config: gate.GateConfig | None = None) -> dict:
    """A SQuAD 2.0 metrics.json summary of a SavedModel and two TFLite files, as Do() writes."""
    config = config or gate.GateConfig()
    models = {
        "saved_model": {"exact_match": 80.0, "f1": 85.5},
        "tflite_dynamic": {"exact_match": 80.0, "f1": 84.75, "size_bytes": 1000,
                           "task_library": {"compatible": True, "problems": [],
                                            "answer": "houston"},
                           "agreement": {"same_best_span_share": 1.0, "n_windows": 5}},
        "tflite_int8": {"exact_match": 60.0, "f1": 70.0, "size_bytes": 500, "latency_ms": 12.5,
                        "task_library": {"compatible": False, "problems": [INT8_PROBLEM],
                                         "answer": None},
                        "agreement": {"same_best_span_share": 0.6, "n_windows": 5}}}
    checks = gate.threshold_checks(models, baseline, config)
    checks.append(gate.quantization_check("tflite_dynamic", 84.75, 85.5, config))
    checks.append(gate.task_library_check("tflite_dynamic", models["tflite_dynamic"]
                                          ["task_library"], config))
    baseline_result = None
    if baseline:
        scores = gate.QuestionScores(np.array([100.0, 0.0, 100.0]), np.array([100.0, 50., 90.]))
        regression, differences = gate.regression_checks(scores, scores, config)
        checks += regression
        baseline_result = {"exact_match": 66.67, "f1": 80.0, "model_uri": "/models/base",
                           "name": "tflite_dynamic", "path": "baseline/x",
                           "difference": {k: dataclasses.asdict(d)
                                          for k, d in differences.items()}}
    blessed, reasons = gate.bless(checks)
    return {"eval_split": "eval", "num_questions": 5, "version_2_with_negative": True,
            "quantizations": ["dynamic", "int8"], "shipped": "tflite_dynamic",
            "serving_config": {"seq_len": 32, "query_len": 8, "doc_stride": 8,
                               "do_lower_case": True, "version_2_with_negative": True,
                               "null_score_diff_threshold": 1.5},
            "exact_match": 80.0, "f1": 85.5, "models": models, "baseline": baseline_result,
            "blessing": {"blessed": blessed, "reasons": reasons,
                         "checks": [dataclasses.asdict(c) for c in checks],
                         **dataclasses.asdict(config)}}


# The markdown section of each key of the card (up to the next one of these headings).
SECTIONS = {"model": "# Model card", "written_at": "# Model card",
            "evaluation": "## Evaluation", "data": "## Data", "spec": "## Spec",
            "training": "## Training", "versions": "## Software versions"}


def leaves(value):
    """Every number and string of a JSON value (booleans are in words: BLESSED, compatible)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [] if isinstance(value, bool) else [value]


def test_the_card_holds_the_data_spec_training_evaluation_and_versions(artifacts):
    examples, windows, model = artifacts
    card = model_card.build_model_card(summary(baseline=True), examples, windows, model, SPEC)
    data = card["data"]
    assert data["examples"]["questions"] == {"train": 3, "eval": 5}
    assert (data["examples"]["span"], data["examples"]["version"]) == (7, 2)
    assert data["examples"]["invalid_records"] == {"num_questions": 10, "num_examples": 8,
                                                   "num_skipped": 2}
    assert data["windows"]["splits"] == WINDOW_STATS["splits"]
    assert data["windows"]["skipped_lists"] == ["skipped-train.jsonl"]
    assert card["spec"] == SPEC.to_dict()
    assert card["training"] == TRAINING
    evaluation = card["evaluation"]
    assert evaluation["models"]["tflite_dynamic"]["f1_vs_saved_model"] == -0.75
    assert evaluation["models"]["tflite_int8"]["f1_vs_saved_model"] == -15.5
    assert "f1_vs_saved_model" not in evaluation["models"]["saved_model"]
    assert evaluation["null_score_diff_threshold"] == 1.5
    assert evaluation["baseline"]["difference"]["f1"]["mean"] == 0.0
    assert evaluation["blessing"]["reasons"] == summary(baseline=True)["blessing"]["reasons"]
    assert card["versions"]["tensorflow"] == tf.__version__
    assert card["versions"]["python"] == platform.python_version()
    assert card["warning"] is None

    markdown = model_card.render_markdown(card)
    assert "SQuAD 2.0, null_score_diff_threshold 1.50" in markdown
    assert "- tflite_dynamic: compatible (answered 'houston')" in markdown
    assert f"- tflite_int8: not compatible: {INT8_PROBLEM}" in markdown
    assert "| tflite_int8 | 60.00 | 70.00 | -15.50 | 500 | 12.50 |" in markdown
    assert "| eval | 5 |" in markdown and "| train | 3 |" in markdown
    assert "| learning_rate | 4e-05 |" in markdown and "| final_loss | 0.75 |" in markdown
    assert all(reason in markdown for reason in evaluation["blessing"]["reasons"])
    assert "\nBLESSED\n" in markdown and "| quantization | True |" in markdown
    assert "accuracy gate" not in markdown


def test_an_uninstalled_package_is_named_so(artifacts, monkeypatch):
    monkeypatch.setattr(model_card, "PACKAGES", ("tfx", "no-such-package-for-the-card"))
    card = model_card.build_model_card(summary(baseline=True), *artifacts, SPEC)
    assert card["versions"]["no-such-package-for-the-card"] == "not installed"
    assert "| no-such-package-for-the-card | not installed |" in model_card.render_markdown(card)


def test_a_first_model_without_thresholds_says_no_accuracy_gate_was_applied(artifacts):
    card = model_card.build_model_card(summary(baseline=False), *artifacts, SPEC)
    assert card["warning"].startswith("No accuracy gate was applied to this model: ")
    assert "no baseline model and min_exact_match = min_f1 = 0" in card["warning"]
    top = model_card.render_markdown(card).splitlines()[:4]
    assert f"**{card['warning']}**" in top

    gated = gate.GateConfig(min_exact_match=50.0, min_f1=50.0)
    card = model_card.build_model_card(summary(False, gated), *artifacts, SPEC)
    assert card["warning"] is None
    assert "accuracy gate" not in model_card.render_markdown(card)


def test_the_markdown_and_the_json_hold_the_same_figures(artifacts, tmp_path):
    card = model_card.build_model_card(summary(baseline=True), *artifacts, SPEC)
    paths = model_card.write_model_card(card, str(tmp_path / "evaluation"))
    assert sorted(paths) == ["model_card.json", "model_card.md"]
    written = json.loads(open(paths["model_card.json"]).read())
    assert written == json.loads(json.dumps(card))
    assert_markdown_holds_every_figure(open(paths["model_card.md"]).read(), written)


def test_the_card_of_a_real_evaluator_run_holds_that_runs_figures(tmp_path):
    """The QaEvaluator's own card (Do() on real artifacts, with a baseline, the Task
    Library's answers and a gate) against the metrics.json of the same run."""
    vocab = write_vocab(tmp_path)
    spec = SPEC.replace(seq_len=384, query_len=64, doc_stride=128)
    model = model_artifact(tmp_path, vocab, "houston", 51, seq_len=384)
    baseline = model_artifact(tmp_path, vocab, "texas", 52, seq_len=384)
    # A 6th question whose answer the Task Library cannot see (past its 376 passage tokens).
    examples = examples_artifact(tmp_path, [*EVAL_QUESTIONS, question(
        "q5", "houston", "the " * 400 + "houston .")])
    metrics, evaluation, _ = run_evaluator(
        tmp_path, examples, model, baseline=baseline,
        **{executor.SPEC_KEY: spec.to_json(), executor.REQUIRE_TASK_LIBRARY_KEY: True,
           executor.MIN_F1_KEY: 50.0, executor.MIN_TASK_LIBRARY_F1_KEY: 50.0})
    with open(os.path.join(evaluation.uri, contracts.MODEL_CARD_JSON_FILE), encoding="utf-8") as f:
        card = json.load(f)
    markdown_path = os.path.join(evaluation.uri, contracts.MODEL_CARD_MARKDOWN_FILE)
    with open(markdown_path, encoding="utf-8") as f:
        markdown = f.read()
    assert card["model"]["uri"] == model.uri and card["spec"] == spec.to_dict()
    assert card["data"]["examples"]["questions"] == {"train": 6, "eval": 6}
    evaluation_card = card["evaluation"]
    assert set(evaluation_card["models"]) == {"saved_model", "tflite_dynamic"}
    for name, scores in metrics["models"].items():
        assert evaluation_card["models"][name]["f1"] == round(scores["f1"], 2) == 83.33
        assert evaluation_card["models"][name]["exact_match"] == round(scores["exact_match"], 2)
    device = {k: v for k, v in metrics["task_library"].items() if k != "official"}
    assert evaluation_card["task_library"] == device
    assert round(device["f1"], 2) == 66.67 and device["beyond_kept_context"]["questions"] == 1
    assert evaluation_card["baseline"]["model_uri"] == baseline.uri
    assert evaluation_card["baseline"]["f1"] == metrics["baseline"]["f1"]
    assert evaluation_card["blessing"]["checks"] == metrics["blessing"]["checks"]
    assert {c["name"] for c in metrics["blessing"]["checks"]} == {
        "thresholds", "quantization", "task_library", "task_library_f1", "regression"}
    assert evaluation_card["blessing"]["blessed"] is True
    assert markdown == model_card.render_markdown(card)
    assert_markdown_holds_every_figure(markdown, card)


def assert_markdown_holds_every_figure(markdown: str, written: dict) -> None:
    """Each section of the markdown shows every number and string of its key of the card."""
    for key, heading in SECTIONS.items():
        section = markdown[markdown.index(heading):]
        section = section[:min((section.index(h) for h in SECTIONS.values() if h in section
                                and h != heading), default=len(section))]
        missing = [leaf for leaf in leaves(written[key]) if model_card._cell(leaf) not in
                   section and json.dumps(leaf) not in section]
        assert not missing, key


def test_missing_optional_inputs_are_stated(artifacts, tmp_path):
    examples = examples_artifact(tmp_path, EVAL_QUESTIONS)
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    card = model_card.build_model_card(summary(baseline=False), examples, None, model, SPEC)
    assert card["data"]["windows"] == card["training"] == model_card.NOT_RECORDED
    assert card["data"]["examples"]["span"] == model_card.NOT_RECORDED
    assert card["data"]["examples"]["invalid_records"] == model_card.NOT_RECORDED
    markdown = model_card.render_markdown(card)
    assert "## Training\n\nnot recorded" in markdown
    assert "Windows (SquadTransform):\n\nnot recorded" in markdown
    assert "span not recorded, version not recorded" in markdown

    windows = standard_artifacts.Examples()
    windows.uri = str(tmp_path / "windows_without_stats")
    card = model_card.build_model_card(summary(baseline=False), examples, windows, model, SPEC)
    assert card["data"]["windows"]["splits"] == model_card.NOT_RECORDED
    assert "skipped questions listed in: no file.\n\nnot recorded" in (
        model_card.render_markdown(card))


def test_the_card_lists_the_data_anomalies_or_says_none_or_not_validated(artifacts):
    found = [data_validation.Anomaly("train", "answer_texts", "FEATURE_TYPE_LOW_NUMBER_VALUES",
                                     "Missing values")]
    card = model_card.build_model_card(summary(baseline=True), *artifacts, SPEC,
                                       anomalies=found)
    assert card["data"]["anomalies"] == {"summary": "1 anomaly",
                                         "anomalies": [found[0].to_dict()]}
    markdown = model_card.render_markdown(card)
    assert "Data anomalies (ExampleValidator): 1 anomaly." in markdown
    assert "| train | answer_texts | FEATURE_TYPE_LOW_NUMBER_VALUES | Missing values |" in (
        markdown)
    assert_markdown_holds_every_figure(markdown, json.loads(json.dumps(card)))
    card = model_card.build_model_card(summary(baseline=True), *artifacts, SPEC, anomalies=[])
    assert "Data anomalies (ExampleValidator): no anomalies." in model_card.render_markdown(card)
    card = model_card.build_model_card(summary(baseline=True), *artifacts, SPEC)
    assert card["data"]["anomalies"] == data_validation.NOT_VALIDATED
    assert "Data anomalies (ExampleValidator): not validated." in (
        model_card.render_markdown(card))
