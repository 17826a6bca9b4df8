"""QaTrainer's executor: the spec into `run_fn`'s custom_config, then TFX's own executors.

Without Vertex AI settings, TFX's `GenericExecutor` runs `run_fn` in this process. With
them, TFX's Vertex AI training executor starts a CustomJob whose every replica runs TFX's
`GenericExecutor` with the same custom_config; its worker pools are built here, from the
spec this step received, so they follow its `distribution_strategy` and `num_gpus`.
With `stop_on_anomalies`, it first refuses to train on questions with data anomalies; and
unless `force_retrain`, when the last blessed model was trained on the same data and spec
(`training_data`).
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.components.trainer import executor as tfx_trainer_executor
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils

from components.qa import data_validation
from components.qa import spec as spec_lib
from components.trainer import run_fn, training_data, vertex_training

SPEC_KEY = "spec"
VERTEX_TRAINING_KEY = "vertex_training"
ANOMALIES_KEY = "anomalies"
STOP_ON_ANOMALIES_KEY = "stop_on_anomalies"


def check_anomalies(input_dict: dict[str, list[types.Artifact]],
                    exec_properties: dict[str, Any]) -> None:
    """Raises `DataAnomaliesError` naming every anomaly when the Trainer stops on them."""
    if not exec_properties.get(STOP_ON_ANOMALIES_KEY):
        return
    found = [anomaly for artifact in input_dict.get(ANOMALIES_KEY) or []
             for anomaly in data_validation.read_anomalies(
                 artifact.uri, data_validation.split_names(artifact.split_names))]
    if found:
        raise data_validation.DataAnomaliesError(found)
    logging.info("No data anomalies: training")


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
        check_anomalies(input_dict, exec_properties)  # before anything is trained
        input_dict = {k: v for k, v in input_dict.items() if k != ANOMALIES_KEY}
        config, vertex = run_fn_custom_config(exec_properties)
        config[run_fn.TRAINING_DATA_KEY] = training_data.describe(
            artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY]))
        base_model = input_dict.get(standard_component_specs.BASE_MODEL_KEY) or []
        training_data.check_new_data(  # before anything is trained
            config[run_fn.TRAINING_DATA_KEY], config[SPEC_KEY],
            base_model[0] if base_model else None, bool(config.get(run_fn.FORCE_RETRAIN_KEY)))
        properties = {k: v for k, v in exec_properties.items()
                      if k not in (SPEC_KEY, VERTEX_TRAINING_KEY, STOP_ON_ANOMALIES_KEY)}
        properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(config)
        if not vertex:
            super().Do(input_dict, output_dict, properties)
            return
        logging.info("Training on Vertex AI: %s", config[vertex_training.TRAINING_ARGS_KEY])
        vertex_trainer_executor.GenericExecutor(self._context).Do(
            input_dict, output_dict, properties
        )
