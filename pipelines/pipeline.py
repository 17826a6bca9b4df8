"""The TFX pipeline: SQuAD JSON in, a blessed, pushed TFLite model out.

SquadExampleGen -> (StatisticsGen -> SchemaGen, or ImportSchemaGen of the approved
`schema_file` -> ExampleValidator, whose anomalies the Trainer may stop on and the model card
lists) -> SquadTransform -> Trainer (warm-started from the last blessed model) -> QaEvaluator
(against that model, on the span's eval split or on the fixed evaluation set of
FixedEvalExampleGen) -> TFLitePusher. SquadExampleGen reads the span asked for (or the
latest) and, for training, the window of spans before it; the Trainer stops when the last
blessed model was trained on the same data. Every setting comes from
`pipelines.config.PipelineConfig`; on Vertex AI the data root, span, training steps, spec,
thresholds and push destination are RuntimeParameters.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tfx import v1 as tfx
from tfx.orchestration import data_types

from components.evaluator.component import QaEvaluator
from components.pusher.component import TFLitePusher
from components.squad_example_gen.component import SquadExampleGen
from components.squad_transform.component import SquadTransform
from components.trainer.component import QaTrainer
from components.trainer.run_fn import (
    FORCE_RETRAIN_KEY,
    MIXED_PRECISION_KEY,
    TRIM_PADDING_KEY,
    WARM_START_KEY,
)
from components.trainer.vertex_training import VertexTrainingSettings, training_custom_config
from pipelines.config import ConfigError, PipelineConfig
from pipelines.report import EVALUATOR_NODE, PUSHER_NODE, VALIDATOR_NODE

RESOLVER_ID = "latest_blessed_model_resolver"
EVAL_EXAMPLE_GEN_ID = "FixedEvalExampleGen"
TRAINER_ID = "Trainer"
SCHEMA_GEN_ID = "SchemaGen"
# Names of the Vertex AI runtime parameters (KubeflowV2DagRunner only).
PARAM_DATA_ROOT = "data_root"
PARAM_SPAN = "span"
PARAM_TRAIN_ARGS = "train_args"
PARAM_SPEC = "spec"
PARAM_MIN_EXACT_MATCH = "min_exact_match"
PARAM_MIN_F1 = "min_f1"
PARAM_MAX_REGRESSION = "max_regression"
PARAM_PUSH_DESTINATION = "push_destination"


def create_pipeline(config: PipelineConfig, target: str = "local") -> tfx.dsl.Pipeline:
    """The pipeline for `target` ('local', 'kubeflow' or 'vertex'), after checking `config`.

    Raises:
      pipelines.config.ConfigError: a setting cannot work (named in the message).
    """
    config.validate(target)
    params = runtime_parameters(config) if target == "vertex" else parameter_values(config)
    input_config = tfx.proto.Input(splits=[
        tfx.proto.Input.Split(name="train", pattern=config.train_pattern),
        tfx.proto.Input.Split(name="eval", pattern=config.eval_pattern),
    ])
    example_gen = SquadExampleGen(
        input_base=params[PARAM_DATA_ROOT], input_config=input_config,
        skip_invalid=config.skip_invalid,
        # The span parameter where the patterns have spans (else there is none to ask for).
        requested_span=params[PARAM_SPAN] if config.has_spans() else 0,
        training_spans=config.training_spans,
    )
    components: list[Any] = [example_gen]
    eval_examples = example_gen.outputs["examples"]
    if config.fixed_eval_pattern:  # the same questions on every run, read once (cached)
        eval_gen = SquadExampleGen(
            input_base=params[PARAM_DATA_ROOT], skip_invalid=config.skip_invalid,
            input_config=tfx.proto.Input(splits=[
                tfx.proto.Input.Split(name="eval", pattern=config.fixed_eval_pattern)]),
            output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
                tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1)])),
        ).with_id(EVAL_EXAMPLE_GEN_ID)
        eval_examples = eval_gen.outputs["examples"]
        components.append(eval_gen)
    anomalies = None  # ExampleValidator's, for the Trainer's stop and the model card
    if config.with_data_validation:
        statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
        # The approved schema when one is set, else the one inferred from this run's
        # statistics; the node keeps its id either way (its console line says which).
        schema_gen = (
            tfx.components.ImportSchemaGen(schema_file=config.schema_file)
            if config.schema_file else
            tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
        ).with_id(SCHEMA_GEN_ID)
        example_validator = tfx.components.ExampleValidator(
            statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
        ).with_id(VALIDATOR_NODE)
        anomalies = example_validator.outputs["anomalies"]
        components += [statistics_gen, schema_gen, example_validator]
    stop_on_anomalies = anomalies is not None and config.resolved_stop_on_anomalies()

    transform = SquadTransform(examples=example_gen.outputs["examples"], spec=params[PARAM_SPEC],
                               length_buckets=config.length_buckets)
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)
    trainer = QaTrainer(
        examples=transform.outputs["transformed_examples"],
        spec=params[PARAM_SPEC],
        base_model=model_resolver.outputs["model"],
        transform_graph=transform.outputs["transform_graph"] if config.length_buckets else None,
        train_args=params[PARAM_TRAIN_ARGS],
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config=trainer_custom_config(config),
        vertex_training=vertex_training(config, target),
        anomalies=anomalies if stop_on_anomalies else None,
        stop_on_anomalies=stop_on_anomalies,
    ).with_id(TRAINER_ID)
    evaluator = QaEvaluator(
        examples=eval_examples,
        transformed_examples=transform.outputs["transformed_examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        anomalies=anomalies,
        spec=params[PARAM_SPEC],
        eval_split="eval",
        min_exact_match=params[PARAM_MIN_EXACT_MATCH],
        min_f1=params[PARAM_MIN_F1],
        max_regression=params[PARAM_MAX_REGRESSION],
        quantizations=config.quantizations,
        regression_confidence=config.regression_confidence,
        max_quantization_drop=config.max_quantization_drop,
        require_task_library=config.require_task_library,
        min_task_library_f1=config.min_task_library_f1,
        null_score_diff_threshold=config.null_score_diff_threshold,
        tune_null_threshold=config.tune_null_threshold,
    ).with_id(EVALUATOR_NODE)
    pusher = TFLitePusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        evaluation=evaluator.outputs["evaluation"],
        push_destination=params[PARAM_PUSH_DESTINATION],
    ).with_id(PUSHER_NODE)
    components += [transform, model_resolver, trainer, evaluator, pusher]

    metadata = None
    if target == "local":
        metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.resolved_metadata_path()
        )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )


def trainer_custom_config(config: PipelineConfig) -> dict[str, Any]:
    """`run_fn`'s settings besides the spec (which is the Trainer's `spec` property)."""
    return {WARM_START_KEY: config.warm_start, TRIM_PADDING_KEY: config.trim_padding,
            MIXED_PRECISION_KEY: config.mixed_precision, FORCE_RETRAIN_KEY: config.force_retrain}


def vertex_training(config: PipelineConfig, target: str) -> VertexTrainingSettings | None:
    """The Vertex AI training settings on Vertex AI with a project; None: train in the step.

    Checks now that the configured spec can train there (e.g. enough workers).
    """
    if target != "vertex" or not config.gcp_project:
        return None
    settings = VertexTrainingSettings(**{field.name: getattr(config, field.name)
                                         for field in dataclasses.fields(VertexTrainingSettings)})
    try:
        training_custom_config(settings, config.build_spec())
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return settings


def parameter_values(config: PipelineConfig) -> dict[str, Any]:
    """The values of the settings that are RuntimeParameters on Vertex AI, from `config`."""
    return {
        PARAM_DATA_ROOT: config.data_root,
        PARAM_SPAN: int(config.span),
        PARAM_TRAIN_ARGS: tfx.proto.TrainArgs(num_steps=config.train_steps),
        PARAM_SPEC: config.build_spec().to_json(),
        PARAM_MIN_EXACT_MATCH: float(config.min_exact_match),
        PARAM_MIN_F1: float(config.min_f1),
        PARAM_MAX_REGRESSION: float(config.max_regression),
        PARAM_PUSH_DESTINATION: config.push_destination,
    }


def runtime_parameters(config: PipelineConfig) -> dict[str, data_types.RuntimeParameter]:
    """The Vertex AI RuntimeParameters; defaults are `runtime_parameter_defaults(config)`."""
    defaults = runtime_parameter_defaults(config)
    return {
        name: data_types.RuntimeParameter(name=name, ptype=type(value), default=value)
        for name, value in defaults.items()
    }


def runtime_parameter_defaults(config: PipelineConfig) -> dict[str, str | float]:
    """The RuntimeParameters' values as Vertex AI takes them (protos and dicts as JSON)."""
    values = parameter_values(config)
    values[PARAM_TRAIN_ARGS] = json.dumps({"num_steps": config.train_steps})
    return values
