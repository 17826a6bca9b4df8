"""Vertex AI: the training job built from the spec, and submitting / scheduling PipelineJobs.

`vertex_settings` are the compile-time Vertex AI training settings the Trainer step gets
(`QaTrainer`'s `vertex_training`); when the step runs, `training_custom_config_from_settings`
builds the CustomJob from them and the spec it received (the `spec` RuntimeParameter), so
the worker pools follow the spec's distribution strategy.
`submit_pipeline` and `schedule_pipeline` send a compiled PipelineJob JSON
(`mbqa compile --target vertex`) to Vertex AI Pipelines with google-cloud-aiplatform.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tfx.v1.extensions.google_cloud_ai_platform import (
    ENABLE_VERTEX_KEY,
    TRAINING_ARGS_KEY,
    VERTEX_REGION_KEY,
)

from components.qa.spec import BertQaSpec
from pipelines.config import MULTI_MACHINE_STRATEGIES, ConfigError, PipelineConfig

# The TPU VM machine type of Vertex AI custom training.
TPU_MACHINE_TYPE = "cloud-tpu"
# The PipelineConfig settings a Vertex AI training job is built from.
VERTEX_SETTINGS = (
    "image", "gcp_project", "gcp_region", "vertex_machine_type", "vertex_accelerator_type",
    "vertex_worker_count", "vertex_parameter_server_count", "vertex_tpu_type",
    "vertex_tpu_cores", "vertex_service_account",
)


def worker_pool_specs(config: PipelineConfig, spec: BertQaSpec) -> list[dict[str, Any]]:
    """Vertex AI worker pools for the spec's strategy: [chief, workers, parameter servers].

    'tpu' gets one TPU VM; 'multi_worker_mirrored' a chief and `vertex_worker_count - 1`
    workers; 'parameter_server' also `vertex_parameter_server_count` CPU parameter servers;
    the others one replica. Each GPU replica gets `spec.num_gpus` GPUs (-1: one; 0: none).
    """
    container = {"image_uri": config.image}
    strategy = spec.distribution_strategy
    if strategy == "tpu":
        tpu_machine = {
            "machine_type": TPU_MACHINE_TYPE,
            "accelerator_type": config.vertex_tpu_type,
            "accelerator_count": config.vertex_tpu_cores,
        }
        return [{"machine_spec": tpu_machine, "replica_count": 1, "container_spec": container}]
    machine: dict[str, Any] = {"machine_type": config.vertex_machine_type}
    if spec.num_gpus != 0:
        machine["accelerator_type"] = config.vertex_accelerator_type
        machine["accelerator_count"] = max(spec.num_gpus, 1)

    def pool(replicas: int, machine_spec: dict[str, Any]) -> dict[str, Any]:
        return {"machine_spec": dict(machine_spec), "replica_count": replicas,
                "container_spec": dict(container)}

    pools = [pool(1, machine)]
    if strategy in MULTI_MACHINE_STRATEGIES:
        if strategy == "parameter_server" and config.vertex_worker_count < 2:
            raise ConfigError(
                f"vertex_worker_count={config.vertex_worker_count}: 'parameter_server' training "
                "needs a chief and at least one worker (>= 2)"
            )
        if config.vertex_worker_count > 1:
            pools.append(pool(config.vertex_worker_count - 1, machine))
    if strategy == "parameter_server":
        pools.append(pool(config.vertex_parameter_server_count,
                          {"machine_type": config.vertex_machine_type}))
    return pools


def vertex_settings(config: PipelineConfig) -> dict[str, Any]:
    """The settings of `config` that Vertex AI training needs (`VERTEX_SETTINGS`)."""
    return {name: getattr(config, name) for name in VERTEX_SETTINGS}


def training_custom_config_from_settings(
    settings: dict[str, Any], spec: BertQaSpec
) -> dict[str, Any]:
    """`training_custom_config` from `vertex_settings` output, when the Trainer step runs."""
    unknown = set(settings) - set(VERTEX_SETTINGS)
    if unknown:
        raise ConfigError(f"Unknown Vertex AI training settings {sorted(unknown)}")
    return training_custom_config(PipelineConfig(**settings), spec)


def training_custom_config(config: PipelineConfig, spec: BertQaSpec) -> dict[str, Any]:
    """The Trainer custom_config entries that make it train as a Vertex AI CustomJob."""
    job_spec: dict[str, Any] = {"worker_pool_specs": worker_pool_specs(config, spec)}
    if config.vertex_service_account:
        job_spec["service_account"] = config.vertex_service_account
    return {
        TRAINING_ARGS_KEY: {"project": config.gcp_project, "job_spec": job_spec},
        ENABLE_VERTEX_KEY: True,
        VERTEX_REGION_KEY: config.gcp_region,
    }


# ---- PipelineJobs ---------------------------------------------------------------------------


def template_parameters(pipeline_json: str) -> dict[str, tuple[str, Any]]:
    """The compiled pipeline's runtime parameters: name -> (type, default value)."""
    with open(pipeline_json, encoding="utf-8") as f:
        job = json.load(f)
    definitions = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    runtime = job.get("runtimeConfig", {})
    defaults = dict(runtime.get("parameterValues", {}))
    for name, value in runtime.get("parameters", {}).items():  # schema 2.0: typed values
        defaults[name] = next(iter(value.values()))
    return {
        name: (d.get("parameterType") or d.get("type", "STRING"), defaults.get(name))
        for name, d in definitions.items()
    }


def parse_parameters(pipeline_json: str, assignments: Iterable[str]) -> dict[str, Any]:
    """`name=value` strings as typed parameter values of the compiled pipeline.

    Unknown names raise ValueError listing the known ones.
    """
    known = template_parameters(pipeline_json)
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"Parameter {item!r} is not of the form name=value")
        if name not in known:
            raise ValueError(
                f"{pipeline_json}: unknown parameter {name!r}; known: {sorted(known)}"
            )
        kind = known[name][0]
        try:
            if kind in ("INT", "NUMBER_INTEGER"):
                values[name] = int(text)
            elif kind in ("DOUBLE", "NUMBER_DOUBLE"):
                values[name] = float(text)
            else:
                values[name] = text
        except ValueError as e:
            raise ValueError(f"Parameter {name}={text!r} is not a {kind}") from e
    return values


def pipeline_display_name(pipeline_json: str) -> str:
    """The display name compiled into the PipelineJob JSON."""
    with open(pipeline_json, encoding="utf-8") as f:
        return json.load(f).get("displayName") or "mobilebert-qa"


def _pipeline_job(pipeline_json: str, project: str, region: str, parameters: dict[str, Any],
                  pipeline_root: str | None, enable_caching: bool | None,
                  labels: dict[str, str] | None):
    from google.cloud import aiplatform

    aiplatform.init(project=project, location=region)
    return aiplatform.PipelineJob(
        display_name=pipeline_display_name(pipeline_json),
        template_path=pipeline_json,
        parameter_values=parameters,
        pipeline_root=pipeline_root,
        enable_caching=enable_caching,
        labels=labels,
    )


def submit_pipeline(pipeline_json: str, project: str, region: str,
                    parameters: dict[str, Any] | None = None, service_account: str | None = None,
                    pipeline_root: str | None = None, enable_caching: bool | None = None,
                    labels: dict[str, str] | None = None):
    """Submits one run of the compiled pipeline to Vertex AI Pipelines; returns the job."""
    job = _pipeline_job(pipeline_json, project, region, parameters or {}, pipeline_root,
                        enable_caching, labels)
    job.submit(service_account=service_account)
    return job


def schedule_pipeline(pipeline_json: str, project: str, region: str, cron: str,
                      parameters: dict[str, Any] | None = None,
                      display_name: str | None = None, service_account: str | None = None,
                      pipeline_root: str | None = None, max_concurrent_run_count: int = 1,
                      max_run_count: int | None = None):
    """Schedules runs of the compiled pipeline (cron syntax, e.g. '0 3 * * 1'); returns it."""
    job = _pipeline_job(pipeline_json, project, region, parameters or {}, pipeline_root,
                        None, None)
    return job.create_schedule(
        cron=cron,
        display_name=display_name or f"{pipeline_display_name(pipeline_json)}-schedule",
        max_concurrent_run_count=max_concurrent_run_count,
        max_run_count=max_run_count,
        service_account=service_account,
    )
