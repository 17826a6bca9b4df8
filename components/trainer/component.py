"""QaTrainer: TFX's Trainer with the model spec as its own execution property.

The spec is the pipeline's `spec` (a RuntimeParameter on Vertex AI, shared with the
Transform and the evaluator), so a spec given at submit time is the spec that trains. With
Vertex AI training settings, the step runs `run_fn` as a Vertex AI CustomJob whose worker
pools follow the spec's strategy, decided when the step runs (`executor.Executor`).
"""

from __future__ import annotations

import json
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import trainer_pb2
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs

from components.qa import spec as spec_lib
from components.trainer import executor
from components.trainer.vertex_training import VertexTrainingSettings

RUN_FN = "components.trainer.run_fn.run_fn"


class QaTrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's TrainerSpec, plus the model spec and the Vertex AI training settings (JSON)."""

    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        executor.SPEC_KEY: component_spec.ExecutionParameter(type=str),
        executor.VERTEX_TRAINING_KEY: component_spec.ExecutionParameter(type=str),
        executor.STOP_ON_ANOMALIES_KEY: component_spec.ExecutionParameter(type=int,
                                                                          optional=True),
    }
    INPUTS = {
        **standard_component_specs.TrainerSpec.INPUTS,
        executor.ANOMALIES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ExampleAnomalies, optional=True),
    }


class QaTrainer(base_component.BaseComponent):
    """Trains the spec's QA model with `components.trainer.run_fn.run_fn`."""

    SPEC_CLASS = QaTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        spec: spec_lib.BertQaSpec | str | data_types.RuntimeParameter,
        train_args: trainer_pb2.TrainArgs | data_types.RuntimeParameter,
        eval_args: trainer_pb2.EvalArgs,
        base_model: types.BaseChannel | None = None,
        transform_graph: types.BaseChannel | None = None,
        custom_config: dict[str, Any] | None = None,
        vertex_training: VertexTrainingSettings | None = None,
        anomalies: types.BaseChannel | None = None,
        stop_on_anomalies: bool = False,
    ):
        """Builds the component.

        Args:
          examples: SquadTransform's windows.
          spec: the model spec, its JSON, or a RuntimeParameter holding the JSON.
          train_args, eval_args: as TFX's Trainer (`num_steps`).
          base_model: the model to warm-start from (if compatible).
          transform_graph: SquadTransform's length buckets (TransformGraph); with it, each
            training batch holds windows of one bucket (`run_fn.train_and_export`).
          custom_config: `run_fn`'s other settings (batch size, checkpoints, warm start).
          vertex_training: the Vertex AI training settings (`components.trainer.
            vertex_training.VertexTrainingSettings`); None trains in the step itself.
          anomalies: ExampleValidator's anomalies of the questions.
          stop_on_anomalies: refuse to train (`components.qa.data_validation.
            DataAnomaliesError`, before anything else) when `anomalies` has any.
        """
        if stop_on_anomalies and anomalies is None:
            raise ValueError("stop_on_anomalies needs the anomalies (ExampleValidator's output)")
        if isinstance(spec, spec_lib.BertQaSpec):
            spec = spec.to_json()
        elif isinstance(spec, str):
            spec_lib.spec_from_json(spec)  # fails now, naming the problem, if invalid
        super().__init__(spec=QaTrainerSpec(
            examples=examples,
            base_model=base_model,
            transform_graph=transform_graph,
            train_args=train_args,
            eval_args=eval_args,
            run_fn=RUN_FN,
            custom_config=json.dumps(custom_config or {}, sort_keys=True),
            spec=spec,
            vertex_training=vertex_training.to_json() if vertex_training else "{}",
            anomalies=anomalies,
            stop_on_anomalies=1 if stop_on_anomalies else None,
            model=channel.Channel(type=standard_artifacts.Model),
            model_run=channel.Channel(type=standard_artifacts.ModelRun),
        ))
