"""QaEvaluator's executor: official SQuAD EM/F1 of the SavedModel and its TFLite files.

Steps of `Executor.Do` (each logged):
1. `_Run.read`: the settings and the eval split's questions (`components.evaluator.inputs`);
2. `_score_saved_model`: answer them with the candidate SavedModel over sliding windows on
   Beam, each worker loading the model once (`components.evaluator.scoring`: the pipeline's
   Beam args choose the DirectRunner's workers or Dataflow), and score them
   (`components.qa.metrics`);
3. `_score_tflite_files`: convert the SavedModel to TFLite in each requested quantization
   (`components.qa.tflite`; 'int8' and 'int16x8' are calibrated on a sample of the train
   split's windows), score each file the same way, measure its agreement with the
   SavedModel on eval windows, its size, its F1 drop, its invoke latency at 1 thread and the
   ops it computes in float (`tflite.float_ops`) (SQuAD 2.0: at `null_score_diff_threshold`,
   or with `tune_null_threshold` at the SavedModel's best-F1 threshold on this split, as
   the official script's `best_f1_thresh`; the threshold and the window settings go into
   each file's metadata, a `contracts.ServingConfig`); and whether it works in the TFLite
   Task Library (`components.qa.task_library`); the shipped file also answers every
   question in the Task Library's `BertQuestionAnswerer` (first window only, as on the
   device: `components.evaluator.device_scores`);
4. convert the baseline model (the latest blessed one), if any, as the shipped file (the
   first quantization) and score it on the same questions (the TFLite files of steps 3
   and 4 are answered in one Beam pipeline);
5. `_checks`: bless by the checks of `components.evaluator.gate` (thresholds, quantization drop, a
   significant regression of the shipped file against the baseline's, Task Library, and
   with `min_task_library_f1` its Task Library F1);
6. `_write_evaluation`: write the evaluation (`metrics.json`, `predictions.json`,
   `nbest_predictions.json`,
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
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.types import artifact_utils, standard_component_specs

from components import beam_executor
from components.evaluator import (
    data_summary,
    device_scores,
    gate,
    inputs,
    model_card,
    report,
    scoring,
)
from components.qa import (
    contracts,
    data_validation,
    encoders,
    inference,
    postprocess,
    squad,
    task_library,
    tflite,
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
ANOMALIES_KEY = "anomalies"

SAVED_MODEL_NAME = "saved_model"
# The baseline's shipped file, among the models answered on Beam.
BASELINE_NAME = "baseline"
# Where the Beam workers leave their answers during the run (removed after).
SCORING_WORK_DIR = ".answers"
# Eval windows whose invoke time (median, 1 thread) is each file's reported latency.
LATENCY_WINDOWS = 10


def tflite_name(quantization: str) -> str:
    """A TFLite file's model name in metrics.json and the report."""
    return f"tflite_{quantization}"


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


@dataclasses.dataclass
class _Run:
    """One evaluation: its settings and artifacts, the questions, and what was measured."""

    spec: spec_lib.BertQaSpec
    split: str
    quantizations: list[str]
    gate_config: gate.GateConfig
    model: types.Artifact
    baseline: types.Artifact | None
    transformed: types.Artifact | None
    anomalies: list[data_validation.Anomaly] | None  # None: the data was not validated
    examples_artifact: types.Artifact
    examples: list[squad.SquadExample]
    version_2: bool
    saved_model_dir: str
    vocab_path: str
    evaluation: types.Artifact
    blessing: types.Artifact
    # Filled as the steps run: metrics.json's results and the per-question F1, by model.
    models: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    scores: dict[str, gate.QuestionScores] = dataclasses.field(default_factory=dict)

    @property
    def shipped(self) -> str:
        return tflite_name(self.quantizations[0])

    @classmethod
    def read(cls, input_dict: dict[str, list[types.Artifact]],
             output_dict: dict[str, list[types.Artifact]],
             exec_properties: dict[str, Any]) -> _Run:
        """The settings, artifacts and eval questions of an execution, checked."""
        spec = spec_lib.spec_from_json(exec_properties[SPEC_KEY])
        split = exec_properties.get(EVAL_SPLIT_KEY) or "eval"
        quantizations = json.loads(exec_properties.get(QUANTIZATIONS_KEY) or '["dynamic"]')
        transformed = input_dict.get(standard_component_specs.TRANSFORMED_EXAMPLES_KEY) or []
        calibrated = [q for q in quantizations if q in contracts.CALIBRATED_QUANTIZATIONS]
        if calibrated and not transformed:
            raise ValueError(f"quantizations has {calibrated} but no transformed_examples were "
                             "given to draw its representative training windows from")
        examples_artifact = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EXAMPLES_KEY])
        examples = inputs.read_questions(examples_artifact, split,
                                         int(exec_properties.get(MAX_EVAL_EXAMPLES_KEY) or 0))
        version_2 = exec_properties.get(VERSION_2_KEY)
        if version_2 is None:
            version_2 = any(e.is_impossible for e in examples)
        logging.info("Evaluating on %d questions of split %r (SQuAD %s)", len(examples), split,
                     "2.0" if version_2 else "1.1")
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        saved_model_dir = contracts.serving_dir(model)
        baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        return cls(
            spec=spec, split=split, quantizations=quantizations,
            gate_config=gate_config_from(exec_properties), model=model,
            baseline=baseline[0] if baseline else None,
            transformed=transformed[0] if transformed else None,
            anomalies=_anomalies(input_dict.get(ANOMALIES_KEY) or []),
            examples_artifact=examples_artifact, examples=examples, version_2=bool(version_2),
            saved_model_dir=saved_model_dir,
            vocab_path=(inference.saved_model_vocab_path(saved_model_dir)
                        or encoders.module_vocab_path(spec.uri)),
            evaluation=artifact_utils.get_single_instance(
                output_dict[standard_component_specs.EVALUATION_KEY]),
            blessing=artifact_utils.get_single_instance(
                output_dict[standard_component_specs.BLESSING_KEY]))


def _anomalies(artifacts: list[types.Artifact]) -> list[data_validation.Anomaly] | None:
    """ExampleValidator's anomalies (None without its artifact: not validated)."""
    if not artifacts:
        return None
    return [anomaly for artifact in artifacts for anomaly in data_validation.read_anomalies(
        artifact.uri, data_validation.split_names(artifact.split_names))]


def _describe_file(path: str, saved_model_dir: str,
                   agreement_windows: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A TFLite file's size, invoke latency (1 thread), agreement with the SavedModel and
    ops computed in float."""
    with tf.io.gfile.GFile(path, "rb") as f:
        model_buffer = f.read()
    return {
        "size_bytes": len(model_buffer),
        "latency_ms": tflite.latency_ms(
            path, {k: v[:LATENCY_WINDOWS] for k, v in agreement_windows.items()}, threads=1),
        "agreement": tflite.compare_with_saved_model(saved_model_dir, path, agreement_windows),
        "float_ops": tflite.float_ops(model_buffer),
    }


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
        run = _Run.read(input_dict, output_dict, exec_properties)
        scorer = scoring.Scorer(
            run.examples, run.spec, run.vocab_path, run.version_2,
            float(exec_properties.get(NULL_SCORE_DIFF_THRESHOLD_KEY) or 0.0),
            inputs.split_pattern(run.examples_artifact, run.split), self._make_beam_pipeline,
            os.path.join(run.evaluation.uri, SCORING_WORK_DIR),
            beam_executor.threads_per_worker(self._beam_pipeline_args or []))
        serving = self._score_saved_model(run, scorer,
                                          bool(exec_properties.get(TUNE_NULL_THRESHOLD_KEY)))
        device, baseline_scored = self._score_tflite_files(run, scorer, serving)
        checks, baseline_result = self._checks(run, scorer, device, baseline_scored)
        blessed, reasons = gate.bless(checks)
        summary = {
            "eval_split": run.split,
            "num_questions": len(run.examples),
            "version_2_with_negative": run.version_2,
            "quantizations": run.quantizations,
            "shipped": run.shipped,
            "serving_config": serving.to_dict(),
            "exact_match": run.models[SAVED_MODEL_NAME]["exact_match"],
            "f1": run.models[SAVED_MODEL_NAME]["f1"],
            "models": run.models,
            "task_library": device,
            "data": data_summary.summarize(run.examples_artifact, run.split, len(run.examples),
                                           run.transformed, run.baseline),
            "baseline": baseline_result,
            "blessing": {"blessed": blessed, "reasons": reasons,
                         "checks": [dataclasses.asdict(c) for c in checks],
                         **dataclasses.asdict(run.gate_config)},
        }
        self._write_evaluation(run, summary)
        self._bless(run.blessing, run.model, run.baseline, blessed, reasons)
        logging.info("%s: %s; wrote %s", "BLESSED" if blessed else "NOT BLESSED",
                     "; ".join(reasons), run.evaluation.uri)

    @staticmethod
    def _score_saved_model(run: _Run, scorer: scoring.Scorer,
                           tune_null_threshold: bool) -> contracts.ServingConfig:
        """Scores the SavedModel (SQuAD 2.0: at the threshold given, or the tuned one) and
        writes its answers; the serving config the TFLite files will carry."""
        result, answers = scorer.score({SAVED_MODEL_NAME: run.saved_model_dir})[SAVED_MODEL_NAME]
        if run.version_2 and tune_null_threshold:
            result, answers = scorer.tune_null_threshold(answers, result)
        run.models[SAVED_MODEL_NAME] = result
        run.scores[SAVED_MODEL_NAME] = scorer.question_scores(answers)
        postprocess.write_answers(
            answers, os.path.join(run.evaluation.uri, contracts.PREDICTIONS_FILE), run.version_2)
        return contracts.ServingConfig.from_spec(run.spec, run.version_2, scorer.null_threshold)

    def _score_tflite_files(self, run: _Run, scorer: scoring.Scorer,
                            serving: contracts.ServingConfig,
                            ) -> tuple[dict[str, Any], tuple[dict, postprocess.Answers] | None]:
        """Exports and scores each quantization's file and the baseline's shipped file (one
        Beam pipeline), and the shipped file in the Task Library; the Task Library's scores
        (`device_scores`) and the baseline's (result, answers) (None without a baseline)."""
        representative = None
        if any(q in contracts.CALIBRATED_QUANTIZATIONS for q in run.quantizations):
            representative = inputs.sample_windows(run.transformed, "train", run.spec.seq_len)
        paths = {}
        for quantization in run.quantizations:
            path = os.path.join(run.evaluation.uri, contracts.tflite_relative_path(quantization))
            tflite.export_tflite(run.saved_model_dir, path, run.spec, run.vocab_path,
                                 quantization, representative, serving)
            paths[tflite_name(quantization)] = path
        sample = run.examples[0]
        compatibility = {
            q: task_library.compatibility(paths[tflite_name(q)], run.spec.query_len,
                                         run.spec.do_lower_case, sample.context, sample.question)
            for q in run.quantizations}
        shipped_compatible = compatibility[run.quantizations[0]]["compatible"]
        on_device = ({device_scores.TASK_LIBRARY_NAME: paths[run.shipped]}
                     if shipped_compatible else {})
        if run.baseline:
            paths[BASELINE_NAME] = self._export_baseline(
                run.baseline, run.quantizations[0], scorer, run.evaluation.uri, representative)
        scored = scorer.score(paths, on_device)
        agreement_windows = scorer.agreement_windows()
        for quantization in run.quantizations:
            name = tflite_name(quantization)
            result, answers = scored[name]
            result.update(_describe_file(paths[name], run.saved_model_dir, agreement_windows))
            result["path"] = contracts.tflite_relative_path(quantization)
            result["f1_drop"] = run.models[SAVED_MODEL_NAME]["f1"] - result["f1"]
            result["task_library"] = compatibility[quantization]
            logging.info("%s vs SavedModel: %s; in the Task Library: %s", name,
                         result["agreement"], result["task_library"])
            run.models[name] = result
            run.scores[name] = scorer.question_scores(answers)
        if on_device:
            official, device_answers = scored[device_scores.TASK_LIBRARY_NAME]
            run.scores[device_scores.TASK_LIBRARY_NAME] = scorer.question_scores(device_answers)
            device = device_scores.summarize(
                run.shipped, official["official"], run.scores[device_scores.TASK_LIBRARY_NAME],
                run.scores[run.shipped], device_scores.beyond_kept_context(
                    run.examples, run.vocab_path, run.spec.do_lower_case),
                run.examples, device_answers.predictions)
        else:
            device = device_scores.not_answered(
                run.shipped, compatibility[run.quantizations[0]]["problems"])
        logging.info("%s", device_scores.describe(device))
        return device, scored.get(BASELINE_NAME)

    @staticmethod
    def _checks(run: _Run, scorer: scoring.Scorer, device: dict[str, Any],
                baseline_scored: tuple[dict, postprocess.Answers] | None,
                ) -> tuple[list[gate.Check], dict[str, Any] | None]:
        """The gate's checks, and the baseline's result for metrics.json (None without)."""
        config = run.gate_config
        checks = gate.threshold_checks(run.models, run.baseline is not None, config)
        checks.append(gate.quantization_check(run.shipped, run.models[run.shipped]["f1"],
                                              run.models[SAVED_MODEL_NAME]["f1"], config))
        checks.append(gate.task_library_check(run.shipped, run.models[run.shipped]["task_library"],
                                              config))
        device_check = gate.task_library_f1_check(run.shipped, device, config)
        if device_check:
            checks.append(device_check)
        if baseline_scored is None:
            return checks, None
        baseline_result, baseline_answers = baseline_scored
        baseline_result.update(
            model_uri=run.baseline.uri, name=run.shipped,
            path=f"{contracts.BASELINE_DIR}/{contracts.tflite_relative_path(run.quantizations[0])}")
        run.scores[BASELINE_NAME] = scorer.question_scores(baseline_answers)
        regression, differences = gate.regression_checks(
            run.scores[run.shipped], run.scores[BASELINE_NAME], config)
        checks.extend(regression)
        baseline_result["difference"] = {
            key: dataclasses.asdict(d) for key, d in differences.items()}
        return checks, baseline_result

    @staticmethod
    def _write_evaluation(run: _Run, summary: dict[str, Any]) -> None:
        """metrics.json, the model card and report.html."""
        _write_json(os.path.join(run.evaluation.uri, contracts.METRICS_FILE), summary)
        model_card.write_model_card(model_card.build_model_card(
            summary, run.examples_artifact, run.transformed, run.model, run.spec,
            anomalies=run.anomalies),
            run.evaluation.uri)
        f1_by_model = {name: {e.id: f1 / 100.0 for e, f1 in zip(run.examples, s.f1, strict=True)}
                       for name, s in run.scores.items()}
        with tf.io.gfile.GFile(os.path.join(run.evaluation.uri, contracts.REPORT_FILE), "w") as f:
            f.write(report.render_report(summary, run.examples, f1_by_model))

    @staticmethod
    def _export_baseline(
        baseline_model: types.Artifact, quantization: str, scorer: scoring.Scorer, out_dir: str,
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
               baseline: types.Artifact | None, blessed: bool, reasons: list[str]) -> None:
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
        if baseline is not None:
            blessing.set_string_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
            blessing.set_int_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
