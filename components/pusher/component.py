"""TFLitePusher: pushes a blessed QA model (TFLite files, vocab, SavedModel, evaluation) to a
numbered version directory under a local path or gs:// (see `executor.py`).

Like TFX's Pusher, it records `pushed` (1/0), `pushed_destination` (the version directory)
and `pushed_version` on its `pushed_model` artifact.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs

from components.pusher import executor


class TFLitePusherSpec(types.ComponentSpec):
    """TFLitePusher's parameters, inputs and outputs."""

    PARAMETERS = {
        executor.PUSH_DESTINATION_KEY: component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {
        standard_component_specs.MODEL_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Model),
        standard_component_specs.MODEL_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelBlessing),
        standard_component_specs.EVALUATION_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelEvaluation),
    }
    OUTPUTS = {
        standard_component_specs.PUSHED_MODEL_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.PushedModel),
    }


class TFLitePusher(base_component.BaseComponent):
    """Pushes the QaEvaluator's TFLite files and the model, only if blessed."""

    SPEC_CLASS = TFLitePusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        evaluation: types.BaseChannel,
        push_destination: str,
    ):
        """Builds the component.

        Args:
          model: the Trainer's Model.
          model_blessing: the QaEvaluator's blessing of that model.
          evaluation: the QaEvaluator's evaluation (TFLite files, metrics, report).
          push_destination: the base directory (local or gs://) of the versions.
        """
        if not push_destination:
            raise ValueError("push_destination must name a directory (local path or gs://)")
        super().__init__(TFLitePusherSpec(
            model=model,
            model_blessing=model_blessing,
            evaluation=evaluation,
            push_destination=push_destination,
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
        ))
