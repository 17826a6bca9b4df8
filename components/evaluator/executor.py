"""QaEvaluator's executor: official SQuAD EM/F1 of the SavedModel and its TFLite files.

Steps (each logged):
1. read the eval split's questions (`components.qa.squad.from_tf_example`);
2. answer them with the candidate SavedModel over sliding windows on Beam, each worker
   loading the model once (`components.evaluator.scoring`: the pipeline's Beam args choose
   the DirectRunner's workers or Dataflow), and score them (`components.qa.metrics`);
3. convert the SavedModel to TFLite in each requested quantization (`components.qa.tflite`;
   'int8' and 'int16x8' are calibrated on a sample of the train split's windows), score each
   file the same way, measure its agreement with the SavedModel on eval windows, its size,
   its F1 drop, its invoke latency at 1 thread and the ops it computes in float
   (`tflite.float_ops`) (SQuAD 2.0: at
   `null_score_diff_threshold`, or with `tune_null_threshold` at the SavedModel's
   best-F1 threshold on this split, as the official script's `best_f1_thresh`; the
   threshold and the window settings go into each file's metadata, `serving_config`);
   and whether it works in the TFLite Task Library (`components.qa.task_library`); the
   shipped file also answers every question in the Task Library's `BertQuestionAnswerer`
   (first window only, as on the device: `components.evaluator.device_scores`);
4. convert the baseline model (the latest blessed one), if any, as the shipped file (the
   first quantization) and score it on the same questions (the TFLite files of steps 3
   and 4 are answered in one Beam pipeline);
5. bless by the checks of `components.evaluator.gate` (thresholds, quantization drop, a
   significant regression of the shipped file against the baseline's, Task Library, and
   with `min_task_library_f1` its Task Library F1);
6. write the evaluation (`metrics.json`, `predictions.json`, `nbest_predictions.json`,
   `null_odds.json` for SQuAD 2.0, `tflite/<quantization>/model.tflite`,
   `baseline/tflite/<quantization>/model.tflite`, `report.html`, `model_card.md` and
   `model_card.json` (`components.evaluator.model_card`)) and the blessing
   (`BLESSED`/`NOT_BLESSED` file with every check's reason, custom properties as TFX's
   Evaluator).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.types import artifact_utils, standard_component_specs

from components import beam_executor
from components.evaluator import device_scores, gate, model_card, report, scoring
from components.qa import (
    answering,
    contracts,
    encoders,
    inference,
    metrics,
    postprocess,
    squad,
    task_library,
    tflite,
    windows,
)
from components.qa import spec as spec_lib

SPEC_KEY = "spec"
EVAL_SPLIT_KEY = "eval_split"
MIN_EXACT_MATCH_KEY = "min_exact_match"
MIN_F1_KEY = "min_f1"
MAX_REGRESSION_KEY = "max_regression"
QUANTIZATIONS_KEY = "quantizations"
VERSION_2_KEY = "version_2_with_negative"
NULL_SCORE_DIFF_THRESHOLD_KEY = "null_score_diff_threshold"
MAX_EVAL_EXAMPLES_KEY = "max_eval_examples"
REGRESSION_CONFIDENCE_KEY = "regression_confidence"
MAX_QUANTIZATION_DROP_KEY = "max_quantization_drop"
REQUIRE_TASK_LIBRARY_KEY = "require_task_library"
MIN_TASK_LIBRARY_F1_KEY = "min_task_library_f1"
TUNE_NULL_THRESHOLD_KEY = "tune_null_threshold"
NULL_THRESHOLD_RESULT = "null_score_diff_threshold"

SAVED_MODEL_NAME = "saved_model"
# The baseline's shipped file, among the models answered on Beam.
BASELINE_NAME = "baseline"
# Where the Beam workers leave their answers during the run (removed after).
SCORING_WORK_DIR = ".answers"
# Training windows drawn (uniformly, seeded) to calibrate 'int8' and 'int16x8'.
REPRESENTATIVE_WINDOWS = 100
# Eval windows on which each TFLite file is compared with the SavedModel.
AGREEMENT_WINDOWS = 200
# Eval windows whose invoke time (median, 1 thread) is each file's reported latency.
LATENCY_WINDOWS = 10


def tflite_name(quantization: str) -> str:
    """A TFLite file's model name in metrics.json and the report."""
    return f"tflite_{quantization}"


def _split_pattern(artifact: types.Artifact, split: str) -> str:
    """The file pattern of one split of an Examples artifact."""
    splits = artifact_utils.decode_split_names(artifact.split_names)
    if split not in splits:
        raise ValueError(f"{artifact.uri!r} has no split {split!r}; it has {splits}")
    return os.path.join(artifact_utils.get_split_uri([artifact], split), "*")


def _record_files(artifact: types.Artifact, split: str) -> list[str]:
    """The TFRecord files of one split of an Examples artifact."""
    files = sorted(tf.io.gfile.glob(_split_pattern(artifact, split)))
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


def _headline(official: Mapping[str, Any]) -> dict[str, Any]:
    """EM/F1 under one pair of names (v1.1 says 'exact_match', v2.0 'exact')."""
    em = official["exact_match"] if "exact_match" in official else official["exact"]
    return {"exact_match": float(em), "f1": float(official["f1"]), "official": dict(official)}


class _Scorer:
    """Answers (on Beam, `scoring`) and scores one set of questions with any number of models."""

    def __init__(self, examples, spec, vocab_path, version_2, null_threshold, records_pattern,
                 make_pipeline, work_dir, threads):
        self.examples = examples
        self.spec = spec
        self.vocab_path = vocab_path
        self.version_2 = version_2
        self.null_threshold = null_threshold
        self.records_pattern = records_pattern
        self.make_pipeline = make_pipeline
        self.work_dir = work_dir
        self.threads = threads
        self.config = windows.WindowConfig.from_spec(spec)

    def score(self, paths: Mapping[str, str], task_library_paths: Mapping[str, str] | None = None
              ) -> dict[str, tuple[dict, postprocess.Answers]]:
        """Each model's (official metrics at `null_threshold`, answers at it), by name; and
        each file of `task_library_paths` answered in the Task Library (no null threshold:
        the official metrics of its best answers)."""
        settings = answering.AnswerSettings(
            batch_size=self.spec.predict_batch_size, version_2_with_negative=self.version_2,
            null_score_diff_threshold=self.null_threshold)
        scored = scoring.answer_on_beam(
            self.make_pipeline(), self.records_pattern, paths, self.examples, self.vocab_path,
            self.config, settings, self.work_dir, self.threads, task_library_paths)
        results = {}
        for name, model in scored.items():
            if name in (task_library_paths or {}):
                official = metrics.evaluate_examples(
                    self.examples, model.answers.predictions, version_2=self.version_2)
                results[name] = _headline(official), model.answers
            else:
                results[name] = self.metrics(model.answers)
            logging.info("%s: EM %.2f, F1 %.2f", name, results[name][0]["exact_match"],
                         results[name][0]["f1"])
        return results

    def metrics(self, answers: postprocess.Answers):
        """(official metrics, answers) at `null_threshold`, as predictions.json says."""
        if not self.version_2:
            return _headline(metrics.evaluate_examples(self.examples, answers.predictions)), answers
        answers = answers.at_threshold(self.null_threshold)
        official = metrics.evaluate_v2_at_threshold(self.examples, answers, self.null_threshold)
        return {**_headline(official), NULL_THRESHOLD_RESULT: self.null_threshold}, answers

    def tune_null_threshold(self, answers: postprocess.Answers, result: dict):
        """Adopts the official best-F1 threshold of these answers; their metrics at it."""
        self.null_threshold = float(result["official"]["best_f1_thresh"])
        logging.info("SQuAD 2.0: the best-F1 null threshold on this split is %.4f (F1 %.2f)",
                     self.null_threshold, result["official"]["best_f1"])
        return self.metrics(answers)

    def question_scores(self, answers: postprocess.Answers) -> gate.QuestionScores:
        return gate.question_scores(self.examples, answers.predictions, self.version_2)

    def agreement_windows(self) -> dict[str, np.ndarray]:
        """Up to `AGREEMENT_WINDOWS` eval windows, in question order."""
        chosen = []
        maker = windows.WindowMaker(self.vocab_path, self.config)
        for example in self.examples:
            chosen.extend(maker.make_windows(example, training=False))
            if len(chosen) >= AGREEMENT_WINDOWS:
                break
        chosen = chosen[:AGREEMENT_WINDOWS]
        return {name: np.array([getattr(w, name) for w in chosen], np.int32)
                for name in tflite.WINDOW_INPUTS}


def serving_config(spec: spec_lib.BertQaSpec, version_2: bool,
                   null_threshold: float) -> dict[str, Any]:
    """What `mbqa predict`/`answer` need to answer as the evaluation did (TFLite metadata)."""
    return {"seq_len": spec.seq_len, "query_len": spec.query_len,
            "doc_stride": spec.doc_stride, "do_lower_case": spec.do_lower_case,
            "version_2_with_negative": version_2, NULL_THRESHOLD_RESULT: null_threshold}


def gate_config_from(exec_properties: Mapping[str, Any]) -> gate.GateConfig:
    """The gate's settings from the execution properties (unset: the defaults)."""
    defaults = gate.GateConfig()
    values = {}
    for field in dataclasses.fields(gate.GateConfig):
        value = exec_properties.get(field.name)
        values[field.name] = getattr(defaults, field.name) if value is None else value
    config = gate.GateConfig(
        **{k: bool(v) if k == REQUIRE_TASK_LIBRARY_KEY else float(v)
           for k, v in values.items()})
    config.validate()
    return config


def _write_json(path: str, value: Any) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=2, ensure_ascii=False, sort_keys=True)


class Executor(beam_executor.SkipEphemeralPackageOnDirectRunner,
               tfx_evaluator_executor.Executor):
    """Scores the candidate (SavedModel + TFLite) and the baseline's shipped file; blesses.

    A subclass of TFX's Evaluator executor (whose `Do` it replaces) because runners treat
    that class's blessings specially: on Vertex AI, TFX's container entrypoint
    (`kubeflow_v2_run_executor`) rewrites the blessing's `current_model_id` and
    `baseline_model_id` from the artifacts' hashed ids into their resource names, which the
    compiled latest-blessed-model resolver looks the model up by.
    """

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        spec = spec_lib.spec_from_json(exec_properties[SPEC_KEY])
        split = exec_properties.get(EVAL_SPLIT_KEY) or "eval"
        quantizations = json.loads(exec_properties.get(QUANTIZATIONS_KEY) or '["dynamic"]')
        gate_config = gate_config_from(exec_properties)
        model = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_KEY])
        baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        transformed = input_dict.get(standard_component_specs.TRANSFORMED_EXAMPLES_KEY) or []
        evaluation = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.BLESSING_KEY])
        calibrated = [q for q in quantizations if q in contracts.CALIBRATED_QUANTIZATIONS]
        if calibrated and not transformed:
            raise ValueError(f"quantizations has {calibrated} but no transformed_examples were "
                             "given to draw its representative training windows from")

        examples_artifact = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EXAMPLES_KEY])
        examples = read_questions(examples_artifact, split,
                                  int(exec_properties.get(MAX_EVAL_EXAMPLES_KEY) or 0))
        version_2 = exec_properties.get(VERSION_2_KEY)
        if version_2 is None:
            version_2 = any(e.is_impossible for e in examples)
        logging.info("Evaluating on %d questions of split %r (SQuAD %s)", len(examples), split,
                     "2.0" if version_2 else "1.1")

        saved_model_dir = contracts.serving_dir(model)
        vocab_path = (inference.saved_model_vocab_path(saved_model_dir)
                      or encoders.module_vocab_path(spec.uri))
        scorer = _Scorer(examples, spec, vocab_path, bool(version_2),
                         float(exec_properties.get(NULL_SCORE_DIFF_THRESHOLD_KEY) or 0.0),
                         _split_pattern(examples_artifact, split), self._make_beam_pipeline,
                         os.path.join(evaluation.uri, SCORING_WORK_DIR),
                         beam_executor.threads_per_worker(self._beam_pipeline_args or []))
        models: dict[str, dict[str, Any]] = {}
        scores: dict[str, gate.QuestionScores] = {}
        models[SAVED_MODEL_NAME], answers = scorer.score(
            {SAVED_MODEL_NAME: saved_model_dir})[SAVED_MODEL_NAME]
        if version_2 and exec_properties.get(TUNE_NULL_THRESHOLD_KEY):
            models[SAVED_MODEL_NAME], answers = scorer.tune_null_threshold(
                answers, models[SAVED_MODEL_NAME])
        serving = serving_config(spec, bool(version_2), scorer.null_threshold)
        scores[SAVED_MODEL_NAME] = scorer.question_scores(answers)
        postprocess.write_answers(answers, os.path.join(evaluation.uri, contracts.PREDICTIONS_FILE),
                                  bool(version_2))

        representative = None
        if calibrated:
            representative = sample_windows(
                artifact_utils.get_single_instance(transformed), "train", spec.seq_len)
        shipped = tflite_name(quantizations[0])
        paths = {}
        for quantization in quantizations:
            path = os.path.join(evaluation.uri, contracts.tflite_relative_path(quantization))
            tflite.export_tflite(saved_model_dir, path, spec, vocab_path, quantization,
                                 representative, serving)
            paths[tflite_name(quantization)] = path
        sample = examples[0]
        compatibility = {
            q: task_library.compatibility(paths[tflite_name(q)], spec.query_len,
                                         spec.do_lower_case, sample.context, sample.question)
            for q in quantizations}
        on_device = ({device_scores.TASK_LIBRARY_NAME: paths[shipped]}
                     if compatibility[quantizations[0]]["compatible"] else {})
        if baseline:
            paths[BASELINE_NAME] = self._export_baseline(
                artifact_utils.get_single_instance(baseline), quantizations[0], scorer,
                evaluation.uri, representative)
        scored = scorer.score(paths, on_device)
        agreement_windows = scorer.agreement_windows()
        for quantization in quantizations:
            name = tflite_name(quantization)
            path = paths[name]
            result, lite_answers = scored[name]
            result["path"] = contracts.tflite_relative_path(quantization)
            result["size_bytes"] = int(tf.io.gfile.stat(path).length)
            result["f1_drop"] = models[SAVED_MODEL_NAME]["f1"] - result["f1"]
            result["latency_ms"] = tflite.latency_ms(
                path, {k: v[:LATENCY_WINDOWS] for k, v in agreement_windows.items()}, threads=1)
            result["agreement"] = tflite.compare_with_saved_model(
                saved_model_dir, path, agreement_windows)
            logging.info("%s vs SavedModel: %s", name, result["agreement"])
            result["task_library"] = compatibility[quantization]
            with tf.io.gfile.GFile(path, "rb") as f:
                result["float_ops"] = tflite.float_ops(f.read())
            logging.info("%s in the Task Library: %s", name, result["task_library"])
            models[name] = result
            scores[name] = scorer.question_scores(lite_answers)
        if on_device:
            official, device_answers = scored[device_scores.TASK_LIBRARY_NAME]
            scores[device_scores.TASK_LIBRARY_NAME] = scorer.question_scores(device_answers)
            device = device_scores.summarize(
                shipped, official["official"], scores[device_scores.TASK_LIBRARY_NAME],
                scores[shipped], device_scores.beyond_kept_context(
                    examples, vocab_path, spec.do_lower_case),
                examples, device_answers.predictions)
        else:
            device = device_scores.not_answered(
                shipped, compatibility[quantizations[0]]["problems"])
        logging.info("%s", device_scores.describe(device))

        checks = gate.threshold_checks(models, bool(baseline), gate_config)
        checks.append(gate.quantization_check(shipped, models[shipped]["f1"],
                                              models[SAVED_MODEL_NAME]["f1"], gate_config))
        checks.append(gate.task_library_check(shipped, models[shipped]["task_library"],
                                              gate_config))
        device_check = gate.task_library_f1_check(shipped, device, gate_config)
        if device_check:
            checks.append(device_check)
        baseline_result = None
        if baseline:
            baseline_result, baseline_answers = scored[BASELINE_NAME]
            baseline_result.update(
                model_uri=artifact_utils.get_single_instance(baseline).uri, name=shipped,
                path=f"{contracts.BASELINE_DIR}/{contracts.tflite_relative_path(quantizations[0])}")
            scores["baseline"] = scorer.question_scores(baseline_answers)
            regression, differences = gate.regression_checks(
                scores[shipped], scores["baseline"], gate_config)
            checks.extend(regression)
            baseline_result["difference"] = {
                key: dataclasses.asdict(d) for key, d in differences.items()}
        blessed, reasons = gate.bless(checks)
        summary = {
            "eval_split": split,
            "num_questions": len(examples),
            "version_2_with_negative": bool(version_2),
            "quantizations": quantizations,
            "shipped": shipped,
            "serving_config": serving,
            "exact_match": models[SAVED_MODEL_NAME]["exact_match"],
            "f1": models[SAVED_MODEL_NAME]["f1"],
            "models": models,
            "task_library": device,
            "baseline": baseline_result,
            "blessing": {"blessed": blessed, "reasons": reasons,
                         "checks": [dataclasses.asdict(c) for c in checks],
                         **dataclasses.asdict(gate_config)},
        }
        _write_json(os.path.join(evaluation.uri, contracts.METRICS_FILE), summary)
        model_card.write_model_card(model_card.build_model_card(
            summary, examples_artifact, transformed[0] if transformed else None, model, spec),
            evaluation.uri)
        f1_by_model = {name: {e.id: f1 / 100.0 for e, f1 in zip(examples, s.f1, strict=True)}
                       for name, s in scores.items()}
        with tf.io.gfile.GFile(os.path.join(evaluation.uri, contracts.REPORT_FILE), "w") as f:
            f.write(report.render_report(summary, examples, f1_by_model))
        self._bless(blessing, model, baseline, blessed, reasons)
        logging.info("%s: %s; wrote %s", "BLESSED" if blessed else "NOT BLESSED",
                     "; ".join(reasons), evaluation.uri)

    @staticmethod
    def _export_baseline(
        baseline_model: types.Artifact, quantization: str, scorer: _Scorer, out_dir: str,
        representative: Mapping[str, np.ndarray] | None,
    ) -> str:
        """The baseline's shipped file: its SavedModel converted as the candidate's."""
        saved_model_dir = contracts.serving_dir(baseline_model)
        with inference.load_predictor(saved_model_dir) as predictor:
            spec = scorer.spec.replace(seq_len=predictor.seq_len or scorer.spec.seq_len)
            vocab_path = predictor.vocab_path or scorer.vocab_path
        path = os.path.join(out_dir, contracts.BASELINE_DIR,
                            contracts.tflite_relative_path(quantization))
        tflite.export_tflite(saved_model_dir, path, spec, vocab_path, quantization,
                             representative)
        return path

    @staticmethod
    def _bless(blessing: types.Artifact, model: types.Artifact,
               baseline: list[types.Artifact], blessed: bool, reasons: list[str]) -> None:
        """As TFX's Evaluator: a BLESSED/NOT_BLESSED file and the custom properties."""
        tf.io.gfile.makedirs(blessing.uri)
        file_name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
        with tf.io.gfile.GFile(os.path.join(blessing.uri, file_name), "w") as f:
            f.write("\n".join(reasons) + "\n")
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSED_KEY,
            constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE)
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, "; ".join(reasons))
        if baseline:
            blessing.set_string_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline[0].uri)
            blessing.set_int_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline[0].id)
