"""Vertex AI Pipelines: submitting and scheduling compiled PipelineJobs.

`submit_pipeline` and `schedule_pipeline` send a compiled PipelineJob JSON
(`mbqa compile --target vertex`) to Vertex AI Pipelines with google-cloud-aiplatform;
`parse_parameters` types `name=value` runtime parameters as the JSON declares them. The
Trainer's CustomJob is built when its step runs (`components.trainer.vertex_training`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


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
