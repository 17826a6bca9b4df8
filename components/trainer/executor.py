"""QaTrainer's executor: the spec into `run_fn`'s custom_config, then TFX's own executors.

Without Vertex AI settings, TFX's `GenericExecutor` runs `run_fn` in this process. With
them, TFX's Vertex AI training executor starts a CustomJob whose every replica runs TFX's
`GenericExecutor` with the same custom_config; its worker pools are built here, from the
spec this step received, so they follow its `distribution_strategy` and `num_gpus`.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.components.trainer import executor as tfx_trainer_executor
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from components.qa import spec as spec_lib
from components.trainer import vertex_training

SPEC_KEY = "spec"
VERTEX_TRAINING_KEY = "vertex_training"


def run_fn_custom_config(
    exec_properties: dict[str, Any],
) -> tuple[dict[str, Any], vertex_training.VertexTrainingSettings | None]:
    """`(custom_config with the spec, Vertex AI settings or None)` from the execution
    properties.

    With Vertex AI settings, custom_config also gets the CustomJob's training arguments.
    Raises ValueError naming a setting that cannot train this spec, before any job starts.
    """
    spec = spec_lib.spec_from_json(exec_properties[SPEC_KEY])
    config = json_utils.loads(
        exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}"
    ) or {}
    if SPEC_KEY in config:
        raise ValueError("custom_config must not hold a 'spec': the spec is the "
                         f"{SPEC_KEY!r} execution property")
    config[SPEC_KEY] = spec.to_json()
    vertex = vertex_training.VertexTrainingSettings.from_json(
        exec_properties.get(VERTEX_TRAINING_KEY))
    if vertex:
        config.update(vertex_training.training_custom_config(vertex, spec))
    return config, vertex


class Executor(tfx_trainer_executor.GenericExecutor):
    """Trains here (TFX's GenericExecutor) or as a Vertex AI CustomJob."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        config, vertex = run_fn_custom_config(exec_properties)
        properties = {k: v for k, v in exec_properties.items()
                      if k not in (SPEC_KEY, VERTEX_TRAINING_KEY)}
        properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(config)
        if not vertex:
            super().Do(input_dict, output_dict, properties)
            return
        logging.info("Training on Vertex AI: %s", config[vertex_training.TRAINING_ARGS_KEY])
        vertex_trainer_executor.GenericExecutor(self._context).Do(
            input_dict, output_dict, properties
        )
