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
    save_keyword_model,
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


# 30 questions answered "houston", 2 "texas": the texas model is clearly worse.
CLEARLY_HOUSTON = [question(f"h{i}", "houston") for i in range(30)] + [
    question(f"t{i}", "texas") for i in range(2)]
# 16 against 15: the texas model is 3.2 points worse, well inside the noise of 31 questions.
NEARLY_EVEN = [question(f"h{i}", "houston") for i in range(16)] + [
    question(f"t{i}", "texas") for i in range(15)]


def test_a_shipped_file_significantly_worse_than_the_baselines_is_not_blessed(
        models, tmp_path):
    _, houston, texas = models
    summary, evaluation, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, CLEARLY_HOUSTON), texas, baseline=houston,
        **{executor.MAX_REGRESSION_KEY: 50.0})
    baseline = summary["baseline"]
    assert baseline["model_uri"] == houston.uri and baseline["name"] == "tflite_dynamic"
    assert os.path.exists(os.path.join(evaluation.uri, baseline["path"]))
    assert (summary["models"]["tflite_dynamic"]["exact_match"], baseline["exact_match"]) == (
        pytest.approx(200 / 32), pytest.approx(3000 / 32))
    f1 = baseline["difference"]["f1"]
    assert f1["mean"] == pytest.approx(-2800 / 32) and f1["high"] < -50.0
    assert summary["blessing"]["blessed"] is False
    assert any(r.startswith("shipped F1 vs the baseline's shipped file: -87.50 points (95% CI")
               and r.endswith("significant regression of more than max_regression 50.00")
               for r in summary["blessing"]["reasons"])
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    assert not os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_int_custom_property("baseline_model_id") == 11


def test_a_shipped_file_worse_than_the_baselines_by_noise_is_blessed(models, tmp_path):
    _, houston, texas = models
    summary, _, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, NEARLY_EVEN), texas, baseline=houston)
    difference = summary["baseline"]["difference"]["exact_match"]
    assert difference["mean"] == pytest.approx(-100 / 31)
    assert difference["low"] < -20.0 and difference["high"] > 10.0
    assert summary["blessing"]["blessed"] is True, summary["blessing"]["reasons"]
    assert sum("no significant regression" in r for r in summary["blessing"]["reasons"]) == 2
    assert blessing.get_int_custom_property("blessed") == 1


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
    assert "saved_model F1 80.00 < min 80.01" in summary["blessing"]["reasons"]
    assert blessing.get_int_custom_property("blessed") == 0


def test_every_quantization_is_scored_and_int8_is_calibrated_on_train_windows(models, tmp_path):
    vocab, houston, _ = models
    summary, evaluation, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston,
        transformed=windows_artifact(tmp_path, vocab, EVAL_QUESTIONS),
        **{executor.QUANTIZATIONS_KEY:
           '["dynamic", "float32", "float16", "int8", "int16x8"]'})
    for quantization in ("dynamic", "float32", "float16", "int8", "int16x8"):
        result = summary["models"][f"tflite_{quantization}"]
        assert (result["exact_match"], result["f1"]) == (80.0, 80.0), quantization
        assert os.path.exists(os.path.join(evaluation.uri, result["path"]))
        assert result["f1_drop"] == 0.0 and result["latency_ms"] > 0.0
    assert summary["models"]["tflite_float32"]["agreement"]["max_abs_diff_start"] < 1e-5
    # The ops left in float are recorded per file: in int8 only the keyword model's CASTs of
    # its int32 mask and segment ids to float (they feed QUANTIZE ops).
    assert summary["models"]["tflite_int8"]["float_ops"] == {"CAST": 2}
    assert summary["models"]["tflite_float32"]["float_ops"]["GATHER"] == 1


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


def test_squad_2_at_the_tuned_threshold_is_the_official_best_f1(models, tmp_path):
    from official.nlp.tools import squad_evaluate_v2_0

    from components.qa import inference, metrics
    from tests.qa import official_squad_eval as official

    vocab, houston, _ = models
    questions = EVAL_QUESTIONS + [question("q5", None, context="she sang in choirs .")]
    summary, evaluation, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, questions), houston,
        **{executor.TUNE_NULL_THRESHOLD_KEY: True})
    read = lambda name: json.load(open(os.path.join(evaluation.uri, name)))  # noqa: E731
    null_odds, nbest = read("null_odds.json"), read("nbest_predictions.json")
    non_null = {qid: next(e["text"] for e in entries if e["text"])
                for qid, entries in nbest.items()}
    dataset = metrics.examples_to_dataset(questions)
    best = official.evaluate_v2(dataset, non_null, null_odds)
    installed = squad_evaluate_v2_0.evaluate(dataset, non_null, null_odds)  # tf-models' script
    saved_model = summary["models"]["saved_model"]
    assert saved_model["null_score_diff_threshold"] == best["best_f1_thresh"] == (
        installed["final_f1_thresh"])
    assert saved_model["f1"] == pytest.approx(best["best_f1"]) == pytest.approx(500 / 6)
    assert saved_model["f1"] == pytest.approx(installed["final_f1"])
    # The headline describes predictions.json, written at the tuned threshold.
    written = official.evaluate_v2(dataset, read("predictions.json"))
    assert written["f1"] == pytest.approx(saved_model["f1"])
    assert squad_evaluate_v2_0.evaluate(dataset, read("predictions.json"))["f1"] == (
        pytest.approx(saved_model["f1"]))
    assert summary["serving_config"]["null_score_diff_threshold"] == best["best_f1_thresh"]
    lite = inference.load_predictor(os.path.join(evaluation.uri, "tflite/dynamic/model.tflite"))
    assert lite.serving_config.to_dict() == summary["serving_config"]
    assert lite.serving_config.query_len == 8 and lite.serving_config.doc_stride == 8
    assert summary["models"]["tflite_dynamic"]["f1"] == pytest.approx(500 / 6)


def test_worker_processes_answer_as_the_default_in_memory_runner(models, tmp_path):
    """The pipeline's Beam args reach the executor: two DirectRunner worker processes answer
    (SavedModel, then the TFLite file and the baseline's) with the same results."""
    vocab, houston, texas = models
    results = {}
    for mode, args in (("in_memory", None), ("two_workers", [
            "--direct_running_mode=multi_processing", "--direct_num_workers=2"])):
        root = tmp_path / mode
        root.mkdir()
        summary, evaluation, _ = run_evaluator(
            root, examples_artifact(root, CLEARLY_HOUSTON), houston, baseline=texas,
            beam_pipeline_args=args)
        assert sorted(os.listdir(evaluation.uri)) == sorted(
            ["baseline", "metrics.json", "model_card.json", "model_card.md",
             "nbest_predictions.json", "predictions.json", "report.html", "tflite"])
        files = {name: json.load(open(os.path.join(evaluation.uri, name)))
                 for name in ("predictions.json", "nbest_predictions.json")}
        results[mode] = summary, files
    (memory, memory_files), (workers, workers_files) = results.values()
    assert workers_files == memory_files
    for name in ("saved_model", "tflite_dynamic"):
        assert workers["models"][name]["official"] == memory["models"][name]["official"]
    assert workers["baseline"]["official"] == memory["baseline"]["official"]
    assert workers["baseline"]["f1"] < workers["f1"]
    assert workers["blessing"]["blessed"] == memory["blessing"]["blessed"]


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


def test_a_shipped_file_losing_more_than_the_allowed_drop_is_not_blessed(tmp_path):
    """float16 weights make 4.999 equal 5.0: the file answers "houston", not "texas"."""
    vocab = write_vocab(tmp_path)
    model = model_artifact(tmp_path, vocab, "texas", 13)
    save_keyword_model(os.path.join(model.uri, "Format-Serving"), vocab, keyword="texas",
                       runner_up=("houston", 4.999))
    questions = [question(f"t{i}", "texas") for i in range(3)]
    summary, _, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, questions), model,
        **{executor.QUANTIZATIONS_KEY: '["float16"]'})
    assert summary["models"]["saved_model"]["f1"] == 100.0
    assert summary["models"]["tflite_float16"]["f1"] == 0.0
    assert summary["blessing"]["blessed"] is False
    assert ("shipped tflite_float16 F1 0.00 vs its SavedModel 100.00: drop 100.00 > "
            "max_quantization_drop 1.00") in summary["blessing"]["reasons"]


def test_a_first_model_without_thresholds_says_no_gate_was_applied(models, tmp_path):
    _, houston, _ = models
    summary, _, blessing = run_evaluator(
        tmp_path, examples_artifact(tmp_path, EVAL_QUESTIONS), houston)
    assert summary["blessing"]["blessed"] is True
    assert any(r.startswith("no accuracy gate applied") for r in summary["blessing"]["reasons"])
    assert "no accuracy gate applied" in blessing.get_string_custom_property("blessing_message")


def test_the_task_library_check_records_and_gates_the_shipped_file(tmp_path):
    vocab = write_vocab(tmp_path)
    spec_384 = SPEC.replace(seq_len=384, query_len=64, doc_stride=128)
    fits = model_artifact(tmp_path, vocab, "houston", 21, seq_len=384)
    summary, _, _ = run_evaluator(
        tmp_path / "fits", examples_artifact(tmp_path / "fits", EVAL_QUESTIONS), fits,
        **{executor.SPEC_KEY: spec_384.to_json(), executor.REQUIRE_TASK_LIBRARY_KEY: True})
    library = summary["models"]["tflite_dynamic"]["task_library"]
    assert library == {"compatible": True, "problems": [], "answer": "houston"}
    assert summary["blessing"]["blessed"] is True
    short = model_artifact(tmp_path, vocab, "houston", 22)
    summary, _, _ = run_evaluator(
        tmp_path / "short", examples_artifact(tmp_path / "short", EVAL_QUESTIONS), short,
        **{executor.REQUIRE_TASK_LIBRARY_KEY: True})
    library = summary["models"]["tflite_dynamic"]["task_library"]
    assert library["compatible"] is False and library["answer"] is None
    assert library["problems"][:2] == ["input shapes [[1, 32], [1, 32], [1, 32]] (needs "
                                       "[1, 384])", "query_len 8 (the Task Library truncates "
                                       "queries to 64 tokens)"]
    assert summary["blessing"]["blessed"] is False
    assert any(r.startswith("shipped tflite_dynamic is not Task Library compatible: input "
                            "shapes") for r in summary["blessing"]["reasons"])


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


def test_through_the_vertex_entrypoint_the_blessing_names_models_by_resource_name(
    models, tmp_path
):
    """TFX's Vertex AI container entrypoint rewrites the blessing's model ids into artifact
    names (what the compiled resolver looks the model up by) for Evaluator executors: the
    QaEvaluator's blessing must get that treatment, the ids otherwise being 63-bit hashes
    that JSON numbers round."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    _, houston, texas = models
    examples = examples_artifact(tmp_path, EVAL_QUESTIONS)
    names = {key: f"projects/p/locations/l/metadataStores/default/artifacts/{key}"
             for key in ("examples", "model", "baseline_model", "evaluation", "blessing")}

    def artifact(key: str, title: str, uri: str, **metadata) -> dict:
        return {"artifacts": [{"name": names[key], "type": {"schemaTitle": f"tfx.{title}"},
                               "uri": uri, "metadata": metadata}]}

    output_file = tmp_path / "task" / "executor_output.json"
    parameters = {executor.SPEC_KEY: {"stringValue": SPEC.to_json()},
                  executor.QUANTIZATIONS_KEY: {"stringValue": '["dynamic"]'},
                  executor.REQUIRE_TASK_LIBRARY_KEY: {"intValue": "0"}}
    executor_input = {
        "inputs": {"parameters": parameters, "artifacts": {
            "examples": artifact("examples", "Examples", examples.uri,
                                 split_names='["train", "eval"]'),
            "model": artifact("model", "Model", houston.uri),
            "baseline_model": artifact("baseline_model", "Model", texas.uri)}},
        "outputs": {"artifacts": {
            "evaluation": artifact("evaluation", "ModelEvaluation", str(tmp_path / "ev")),
            "blessing": artifact("blessing", "ModelBlessing", str(tmp_path / "blessing"))},
            "outputFile": str(output_file)}}
    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags([
        "--executor_class_path", "components.evaluator.executor.Executor",
        "--json_serialized_invocation_args", json.dumps(executor_input)]))
    output = json_format.Parse(output_file.read_text(), pipeline_spec_pb2.ExecutorOutput())
    [blessing] = json_format.MessageToDict(output)["artifacts"]["blessing"]["artifacts"]
    assert blessing["metadata"]["blessed"] == 1
    assert blessing["metadata"]["current_model_id"] == names["model"]
    assert blessing["metadata"]["baseline_model_id"] == names["baseline_model"]
    assert blessing["metadata"]["current_model"] == houston.uri


def _passage(fillers: int) -> str:
    """`fillers` one-token words, then the answer: its token is context token fillers + 1."""
    return "the " * fillers + "houston ."


def test_the_task_library_f1_counts_the_answers_past_its_one_window_and_gates(tmp_path):
    """The shipped file answers in the real BertQuestionAnswerer, which reads only the first
    384 - 3 - 5 = 376 passage tokens here (query "where was she born ?"): the answer as the
    376th token is found, as the 377th it is not; the windowed answering finds both."""
    vocab = write_vocab(tmp_path)
    spec_384 = SPEC.replace(seq_len=384, query_len=64, doc_stride=128)
    model = model_artifact(tmp_path, vocab, "houston", 31, seq_len=384)
    lengths = [0, 20, 100, 375, 375, 376, 376, 600, 40, 10]  # 3 past what it reads
    questions = [question(f"q{i}", "houston", _passage(n)) for i, n in enumerate(lengths)]
    summary, evaluation, _ = run_evaluator(
        tmp_path / "run", examples_artifact(tmp_path / "run", questions), model,
        **{executor.SPEC_KEY: spec_384.to_json(), executor.REQUIRE_TASK_LIBRARY_KEY: True})
    device = summary["task_library"]
    assert device["windowed_f1"] == summary["models"]["tflite_dynamic"]["f1"] == 100.0
    assert device["beyond_kept_context"] == {"questions": 3, "share": 0.3,
                                             "windowed_f1": 100.0, "task_library_f1": 0.0}
    # Below the windowed F1 by exactly the share of answers it cannot see.
    assert device["f1"] == pytest.approx(device["windowed_f1"] - 100 * 0.3)
    assert device["official"]["f1"] == pytest.approx(70.0)
    assert device["exact_match"] == pytest.approx(70.0)
    with open(os.path.join(evaluation.uri, "model_card.md"), encoding="utf-8") as f:
        assert ("Task Library (tflite_dynamic): EM 70.00 F1 70.00 (windowed F1 100.00); "
                "answers past what it reads: 30.0% of questions") in f.read()
    assert summary["blessing"]["blessed"] is True  # min_task_library_f1 is 0: no check
    assert "task_library_f1" not in [c["name"] for c in summary["blessing"]["checks"]]

    for minimum, blessed in ((70.0, True), (70.5, False)):
        root = tmp_path / f"gate{minimum}"
        summary, _, blessing = run_evaluator(
            root, examples_artifact(root, questions), model,
            **{executor.SPEC_KEY: spec_384.to_json(), executor.REQUIRE_TASK_LIBRARY_KEY: True,
               executor.MIN_TASK_LIBRARY_F1_KEY: minimum})
        assert summary["blessing"]["blessed"] is blessed
        check = next(c for c in summary["blessing"]["checks"] if c["name"] == "task_library_f1")
        assert check["detail"] == (
            f"shipped tflite_dynamic Task Library F1 70.00 {'>=' if blessed else '<'} "
            f"min_task_library_f1 {minimum:.2f} (windowed F1 100.00)")
        assert os.path.exists(os.path.join(
            blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"))


def test_squad_2_the_task_library_answers_unanswerable_questions_and_is_scored_so(tmp_path):
    """It has no null threshold: an unanswerable question gets its best span (F1 0), where
    the windowed answering answers '' when the null score is close enough to the best
    span's (here "texas", 2 + 2.1 = 4.1 against "houston"'s 10.1: threshold -5)."""
    vocab = write_vocab(tmp_path)
    spec_384 = SPEC.replace(seq_len=384, query_len=64, doc_stride=128)
    model = model_artifact(tmp_path, vocab, "houston", 41, seq_len=384, runner_up=("texas", 2.0))
    questions = [question("a0", "houston"), question("a1", "houston"),
                 question("n0", None, "she was born in texas ."),
                 question("n1", None, "she sang in texas .")]
    summary, evaluation, _ = run_evaluator(
        tmp_path, examples_artifact(tmp_path, questions), model,
        **{executor.SPEC_KEY: spec_384.to_json(), executor.REQUIRE_TASK_LIBRARY_KEY: True,
           executor.VERSION_2_KEY: True, executor.NULL_SCORE_DIFF_THRESHOLD_KEY: -5.0})
    device = summary["task_library"]
    with open(os.path.join(evaluation.uri, "predictions.json"), encoding="utf-8") as f:
        assert json.load(f) == {"a0": "houston", "a1": "houston", "n0": "", "n1": ""}
    assert device["unanswerable"] == {"questions": 2, "left_unanswered": 0}
    assert device["official"]["HasAns_f1"] == 100.0 and device["official"]["NoAns_f1"] == 0.0
    assert device["f1"] == 50.0
    assert device["windowed_f1"] == summary["models"]["tflite_dynamic"]["f1"] == 100.0
