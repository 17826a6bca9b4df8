"""QaEvaluator: official SQuAD EM/F1 of the Trainer's model and its TFLite files, and a
blessing for the pusher (TFX's Evaluator does not know span QA; this one does).

See `executor.py` for what is scored, the blessing rule and the files written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs

from components.evaluator import executor, gate
from components.qa import contracts
from components.qa import spec as spec_lib


class QaEvaluatorSpec(types.ComponentSpec):
    """QaEvaluator's parameters, inputs and outputs."""

    PARAMETERS = {
        executor.SPEC_KEY: component_spec.ExecutionParameter(type=str),
        executor.EVAL_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
        executor.MIN_EXACT_MATCH_KEY: component_spec.ExecutionParameter(type=float),
        executor.MIN_F1_KEY: component_spec.ExecutionParameter(type=float),
        executor.MAX_REGRESSION_KEY: component_spec.ExecutionParameter(type=float),
        executor.QUANTIZATIONS_KEY: component_spec.ExecutionParameter(type=str),
        executor.VERSION_2_KEY: component_spec.ExecutionParameter(type=bool, optional=True),
        executor.NULL_SCORE_DIFF_THRESHOLD_KEY: component_spec.ExecutionParameter(type=float),
        executor.MAX_EVAL_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
        executor.REGRESSION_CONFIDENCE_KEY: component_spec.ExecutionParameter(type=float),
        executor.MAX_QUANTIZATION_DROP_KEY: component_spec.ExecutionParameter(type=float),
        executor.REQUIRE_TASK_LIBRARY_KEY: component_spec.ExecutionParameter(type=bool),
        executor.MIN_TASK_LIBRARY_F1_KEY: component_spec.ExecutionParameter(type=float),
        executor.TUNE_NULL_THRESHOLD_KEY: component_spec.ExecutionParameter(type=bool),
    }
    INPUTS = {
        standard_component_specs.EXAMPLES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Examples),
        standard_component_specs.MODEL_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Model),
        standard_component_specs.BASELINE_MODEL_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Model, optional=True),
        standard_component_specs.TRANSFORMED_EXAMPLES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Examples, optional=True),
        executor.ANOMALIES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ExampleAnomalies, optional=True),
    }
    OUTPUTS = {
        standard_component_specs.EVALUATION_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelEvaluation),
        standard_component_specs.BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelBlessing),
    }


class QaEvaluator(base_component.BaseComponent):
    """Scores the candidate QA model (SavedModel and TFLite) and blesses it or not.

    Outputs: `evaluation` (ModelEvaluation: metrics.json, predictions, the TFLite files
    under `tflite/<quantization>/model.tflite`, report.html) and `blessing` (ModelBlessing).
    """

    SPEC_CLASS = QaEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        spec: spec_lib.BertQaSpec | str | data_types.RuntimeParameter,
        baseline_model: types.BaseChannel | None = None,
        transformed_examples: types.BaseChannel | None = None,
        anomalies: types.BaseChannel | None = None,
        eval_split: str = "eval",
        min_exact_match: float | data_types.RuntimeParameter = 0.0,
        min_f1: float | data_types.RuntimeParameter = 0.0,
        max_regression: float | data_types.RuntimeParameter = 0.0,
        quantizations: Sequence[str] = ("dynamic",),
        version_2_with_negative: bool | None = None,
        null_score_diff_threshold: float = 0.0,
        max_eval_examples: int = 0,
        regression_confidence: float = 0.95,
        max_quantization_drop: float = 1.0,
        require_task_library: bool = True,
        min_task_library_f1: float = 0.0,
        tune_null_threshold: bool = False,
    ):
        """Builds the component.

        Args:
          examples: SquadExampleGen's Examples (one tf.Example per question).
          model: the Trainer's Model (SavedModel under Format-Serving).
          spec: the model spec (or its JSON, or a RuntimeParameter holding the JSON):
            seq_len, query_len, doc_stride, TFLite names.
          baseline_model: the model to beat (e.g. the latest blessed one, resolved with
            `LatestBlessedModelStrategy`); converted as the shipped file and scored on the
            same questions.
          transformed_examples: SquadTransform's windows; its `train` split calibrates
            'int8' and 'int16x8' (required for them).
          anomalies: ExampleValidator's anomalies of the questions, listed in the model card
            (without it the card says the data was not validated).
          eval_split: the split of `examples` to score.
          min_exact_match, min_f1: thresholds (percent) every scored candidate must reach
            (numbers or float RuntimeParameters, as `max_regression`).
          max_regression: how many points the shipped file's EM and F1 may be below the
            baseline's shipped file's before a significant difference blocks the blessing.
          regression_confidence: the paired bootstrap's confidence (0.95: a regression
            counts when the 95% interval of candidate − baseline lies below 0).
          max_quantization_drop: how many F1 points the shipped file may lose against its
            own SavedModel.
          require_task_library: bless only if the shipped file answers in the TFLite Task
            Library's `BertQuestionAnswerer` (seq_len 384, query_len 64, uncased).
          min_task_library_f1: bless only if the shipped file's F1 as the Task Library
            answers every eval question (its first window only, as on the device) reaches
            this (0: off).
          quantizations: TFLite formats to export and score, the first being the one to
            ship (`components.qa.contracts.QUANTIZATIONS`).
          version_2_with_negative: SQuAD 2.0 (unanswerable questions) or 1.1; None: 2.0 when
            any eval question is unanswerable.
          null_score_diff_threshold: SQuAD 2.0: predict no answer when the null score beats
            the best span by more than this (null score − best span score, logits).
          tune_null_threshold: SQuAD 2.0: use instead the SavedModel's best-F1 threshold
            on the eval split (the official script's `best_f1_thresh`), for every file.
          max_eval_examples: score only the first N questions (0: all).
        """
        quantizations = list(quantizations)
        unknown = [q for q in quantizations if q not in contracts.QUANTIZATIONS]
        if not quantizations or unknown:
            raise ValueError(
                f"quantizations={quantizations} must be a non-empty list of "
                f"{contracts.QUANTIZATIONS}"
            )
        calibrated = [q for q in quantizations if q in contracts.CALIBRATED_QUANTIZATIONS]
        if calibrated and transformed_examples is None:
            raise ValueError(f"quantizations has {calibrated}: pass transformed_examples (its "
                             "train windows calibrate them)")
        gate.GateConfig(regression_confidence=float(regression_confidence),
                        max_quantization_drop=float(max_quantization_drop),
                        min_task_library_f1=float(min_task_library_f1)).validate()
        if max_eval_examples < 0:
            raise ValueError(f"max_eval_examples={max_eval_examples} must be >= 0 (0: all)")
        if isinstance(spec, spec_lib.BertQaSpec):
            spec = spec.to_json()
        elif isinstance(spec, str):
            spec_lib.spec_from_json(spec)  # Fails here, not in the run, if invalid.
        super().__init__(QaEvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            transformed_examples=transformed_examples,
            anomalies=anomalies,
            spec=spec,
            eval_split=eval_split,
            min_exact_match=_float_or_parameter(min_exact_match),
            min_f1=_float_or_parameter(min_f1),
            max_regression=_float_or_parameter(max_regression),
            quantizations=json.dumps(quantizations),
            version_2_with_negative=version_2_with_negative,
            null_score_diff_threshold=float(null_score_diff_threshold),
            max_eval_examples=int(max_eval_examples),
            regression_confidence=float(regression_confidence),
            max_quantization_drop=float(max_quantization_drop),
            require_task_library=bool(require_task_library),
            min_task_library_f1=float(min_task_library_f1),
            tune_null_threshold=bool(tune_null_threshold),
            evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
        ))


def _float_or_parameter(
    value: float | data_types.RuntimeParameter,
) -> float | data_types.RuntimeParameter:
    return value if isinstance(value, data_types.RuntimeParameter) else float(value)
