"""Vertex AI Pipelines: submit/schedule with the cloud client replaced."""

import argparse
import json

import pytest
from google.cloud import aiplatform

from deploy import vertex
from pipelines.cli import run


@pytest.fixture
def pipeline_json(tmp_path):
    """A PipelineJob JSON as KubeflowV2DagRunner writes it (root parameters + defaults)."""
    job = {
        "displayName": "mobilebert-qa",
        "pipelineSpec": {"root": {"inputDefinitions": {"parameters": {
            "data_root": {"type": "STRING"}, "spec": {"type": "STRING"},
            "min_f1": {"type": "DOUBLE"},
            "train_steps": {"type": "INT"},
        }}}},
        "runtimeConfig": {"gcsOutputDirectory": "gs://b/root", "parameters": {
            "data_root": {"stringValue": "gs://b/data"},
            "spec": {"stringValue": '{"old": 1}'},
            "min_f1": {"doubleValue": 0.0},
        }},
    }
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(job))
    return str(path)


def _mbqa(argv):
    """`mbqa` with the subcommands of pipelines/cli/run.py."""
    parser = argparse.ArgumentParser(prog="mbqa")
    run.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


class FakePipelineJob:
    """Records what the code asks of `aiplatform.PipelineJob` (no network)."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        self.resource_name = "projects/p/locations/r/pipelineJobs/1"
        FakePipelineJob.instances.append(self)

    def submit(self, **kwargs):
        self.calls.append(("submit", kwargs))

    def create_schedule(self, **kwargs):
        self.calls.append(("create_schedule", kwargs))
        return "schedule"


@pytest.fixture
def fake_aiplatform(monkeypatch):
    inits = []
    FakePipelineJob.instances = []
    monkeypatch.setattr(aiplatform, "init", lambda **kw: inits.append(kw))
    monkeypatch.setattr(aiplatform, "PipelineJob", FakePipelineJob)
    return inits


def test_parameters_are_typed(pipeline_json):
    values = vertex.parse_parameters(
        pipeline_json, ["min_f1=40", "train_steps=10", 'spec={"new": 2}']
    )
    assert values["min_f1"] == 40.0 and isinstance(values["min_f1"], float)
    assert values["train_steps"] == 10
    assert values["spec"] == '{"new": 2}'
    with pytest.raises(ValueError, match="unknown parameter 'nope'.*data_root"):
        vertex.parse_parameters(pipeline_json, ["nope=1"])
    with pytest.raises(ValueError, match="min_f1='high'"):
        vertex.parse_parameters(pipeline_json, ["min_f1=high"])


def test_submit_passes_template_parameters_and_service_account(pipeline_json, fake_aiplatform):
    code = _mbqa(["deploy", "submit", "--pipeline-json", pipeline_json, "--project", "proj",
                 "--region", "us-central1", "--parameter", "data_root=gs://b/span-2",
                 "--service-account", "sa@proj.iam.gserviceaccount.com", "--no-cache"])
    assert code == 0
    assert fake_aiplatform == [{"project": "proj", "location": "us-central1"}]
    (job,) = FakePipelineJob.instances
    assert job.kwargs == {
        "display_name": "mobilebert-qa", "template_path": pipeline_json,
        "parameter_values": {"data_root": "gs://b/span-2"}, "pipeline_root": None,
        "enable_caching": False, "labels": None,
    }
    assert job.calls == [("submit", {"service_account": "sa@proj.iam.gserviceaccount.com"})]


def test_schedule_passes_cron_and_limits(pipeline_json, fake_aiplatform):
    code = _mbqa(["deploy", "schedule", "--pipeline-json", pipeline_json, "--project", "proj",
                 "--region", "europe-west4", "--cron", "0 3 * * 1", "--max-runs", "10",
                 "--parameter", "min_f1=50", "--pipeline-root", "gs://b/other"])
    assert code == 0
    (job,) = FakePipelineJob.instances
    assert job.kwargs["parameter_values"] == {"min_f1": 50.0}
    assert job.kwargs["pipeline_root"] == "gs://b/other"
    assert job.calls == [("create_schedule", {
        "cron": "0 3 * * 1", "display_name": "mobilebert-qa-schedule",
        "max_concurrent_run_count": 1, "max_run_count": 10, "service_account": None,
    })]
