"""Vertex AI training: the CustomJob's worker pools for a spec, built when the Trainer runs.

`VertexTrainingSettings` are fixed when the pipeline is compiled (QaTrainer's
`vertex_training` property, JSON; the names are the pipeline settings'); when the Trainer
step runs, `training_custom_config` builds the custom_config entries of TFX's Vertex AI
training executor from them and the spec the step received, so the worker pools follow
that spec's `distribution_strategy` and `num_gpus`. Imports neither TensorFlow nor TFX
(the settings checks of `mbqa compile` use it).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from components.qa.spec import BertQaSpec

# Strategies that need a cluster of machines (`TF_CONFIG`): Vertex AI training sets one up.
MULTI_MACHINE_STRATEGIES = ("multi_worker_mirrored", "parameter_server")
# The TPU VM machine type of Vertex AI custom training.
TPU_MACHINE_TYPE = "cloud-tpu"
# TFX's custom_config keys of Vertex AI training (tfx.v1.extensions.google_cloud_ai_platform:
# TRAINING_ARGS_KEY, ENABLE_VERTEX_KEY, VERTEX_REGION_KEY; checked by the tests).
TRAINING_ARGS_KEY = "ai_platform_training_args"
ENABLE_VERTEX_KEY = "ai_platform_enable_vertex"
VERTEX_REGION_KEY = "ai_platform_vertex_region"


@dataclasses.dataclass(frozen=True)
class VertexTrainingSettings:
    """What a Vertex AI training job is built from besides the spec (see the pipeline
    settings of the same names in `pipelines.config`)."""

    image: str
    gcp_project: str
    gcp_region: str = "us-central1"
    vertex_machine_type: str = "n1-standard-8"
    vertex_accelerator_type: str = "NVIDIA_TESLA_T4"
    vertex_worker_count: int = 2
    vertex_parameter_server_count: int = 1
    vertex_tpu_type: str = "TPU_V3"
    vertex_tpu_cores: int = 8
    vertex_service_account: str = ""

    @classmethod
    def from_json(cls, text: str | None) -> VertexTrainingSettings | None:
        """The settings of `to_json` text; None for None, '' or '{}' (train in the step)."""
        values = json.loads(text or "{}")
        if not values:
            return None
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown Vertex AI training settings {unknown}; known: "
                             f"{sorted(names)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def worker_pool_specs(settings: VertexTrainingSettings,
                      spec: BertQaSpec) -> list[dict[str, Any]]:
    """Vertex AI worker pools for the spec's strategy: [chief, workers, parameter servers].

    'tpu' gets one TPU VM; 'multi_worker_mirrored' a chief and `vertex_worker_count - 1`
    workers; 'parameter_server' also `vertex_parameter_server_count` CPU parameter servers;
    the others one replica. Each GPU replica gets `spec.num_gpus` GPUs (-1: one; 0: none).
    Raises ValueError naming a setting that cannot train the spec.
    """
    container = {"image_uri": settings.image}
    strategy = spec.distribution_strategy
    if strategy == "tpu":
        tpu_machine = {
            "machine_type": TPU_MACHINE_TYPE,
            "accelerator_type": settings.vertex_tpu_type,
            "accelerator_count": settings.vertex_tpu_cores,
        }
        return [{"machine_spec": tpu_machine, "replica_count": 1, "container_spec": container}]
    machine: dict[str, Any] = {"machine_type": settings.vertex_machine_type}
    if spec.num_gpus != 0:
        machine["accelerator_type"] = settings.vertex_accelerator_type
        machine["accelerator_count"] = max(spec.num_gpus, 1)

    def pool(replicas: int, machine_spec: dict[str, Any]) -> dict[str, Any]:
        return {"machine_spec": dict(machine_spec), "replica_count": replicas,
                "container_spec": dict(container)}

    pools = [pool(1, machine)]
    if strategy in MULTI_MACHINE_STRATEGIES:
        if strategy == "parameter_server" and settings.vertex_worker_count < 2:
            raise ValueError(
                f"vertex_worker_count={settings.vertex_worker_count}: 'parameter_server' "
                "training needs a chief and at least one worker (>= 2)"
            )
        if settings.vertex_worker_count > 1:
            pools.append(pool(settings.vertex_worker_count - 1, machine))
    if strategy == "parameter_server":
        pools.append(pool(settings.vertex_parameter_server_count,
                          {"machine_type": settings.vertex_machine_type}))
    return pools


def training_custom_config(settings: VertexTrainingSettings,
                           spec: BertQaSpec) -> dict[str, Any]:
    """The Trainer custom_config entries that make TFX train as a Vertex AI CustomJob."""
    job_spec: dict[str, Any] = {"worker_pool_specs": worker_pool_specs(settings, spec)}
    if settings.vertex_service_account:
        job_spec["service_account"] = settings.vertex_service_account
    return {
        TRAINING_ARGS_KEY: {"project": settings.gcp_project, "job_spec": job_spec},
        ENABLE_VERTEX_KEY: True,
        VERTEX_REGION_KEY: settings.gcp_region,
    }
