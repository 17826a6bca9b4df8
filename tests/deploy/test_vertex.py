"""Vertex AI: worker pools per strategy, and submit/schedule with the cloud client replaced."""

import argparse
import json

import pytest
from google.cloud import aiplatform
from tfx.v1.extensions import google_cloud_ai_platform as tfx_vertex

from deploy import vertex
from pipelines.cli import run
from pipelines.config import ConfigError, PipelineConfig

IMAGE = "gcr.io/p/mbqa:1"


def _pools(strategy, num_gpus=-1, **settings):
    config = PipelineConfig(image=IMAGE, gcp_project="p", **settings)
    spec = config.with_overrides([f"spec.distribution_strategy={strategy}",
                                  f"spec.num_gpus={num_gpus}"]).build_spec()
    return vertex.worker_pool_specs(config, spec)


@pytest.mark.parametrize("strategy", ["off", "one_device", "mirrored"])
def test_single_replica_strategies_get_one_gpu_machine(strategy):
    (pool,) = _pools(strategy, num_gpus=2)
    assert pool == {
        "machine_spec": {"machine_type": "n1-standard-8",
                         "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2},
        "replica_count": 1, "container_spec": {"image_uri": IMAGE},
    }


def test_cpu_only_and_all_gpus():
    assert "accelerator_type" not in _pools("off", num_gpus=0)[0]["machine_spec"]
    assert _pools("mirrored", num_gpus=-1)[0]["machine_spec"]["accelerator_count"] == 1


def test_multi_worker_mirrored_gets_chief_and_workers():
    chief, workers = _pools("multi_worker_mirrored", num_gpus=1, vertex_worker_count=4)
    assert (chief["replica_count"], workers["replica_count"]) == (1, 3)
    assert workers["machine_spec"] == chief["machine_spec"]
    assert workers["machine_spec"]["accelerator_count"] == 1
    assert len(_pools("multi_worker_mirrored", vertex_worker_count=1)) == 1


def test_parameter_server_gets_cpu_parameter_servers():
    chief, workers, servers = _pools("parameter_server", num_gpus=1, vertex_worker_count=3,
                                     vertex_parameter_server_count=2)
    assert (chief["replica_count"], workers["replica_count"], servers["replica_count"]) == (1, 2, 2)
    assert servers["machine_spec"] == {"machine_type": "n1-standard-8"}
    with pytest.raises(ConfigError, match="vertex_worker_count=1"):
        _pools("parameter_server", vertex_worker_count=1)


def test_tpu_gets_one_tpu_vm():
    (pool,) = _pools("tpu", vertex_tpu_type="TPU_V2", vertex_tpu_cores=8)
    assert pool["machine_spec"] == {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V2",
                                    "accelerator_count": 8}
    assert pool["replica_count"] == 1


def test_training_custom_config_uses_tfx_vertex_keys():
    config = PipelineConfig(image=IMAGE, gcp_project="proj", gcp_region="europe-west4",
                            vertex_service_account="sa@proj.iam.gserviceaccount.com")
    custom = vertex.training_custom_config(config, config.build_spec())
    assert custom[tfx_vertex.ENABLE_VERTEX_KEY] is True
    assert custom[tfx_vertex.VERTEX_REGION_KEY] == "europe-west4"
    args = custom[tfx_vertex.TRAINING_ARGS_KEY]
    assert args["project"] == "proj"
    assert args["job_spec"]["service_account"] == "sa@proj.iam.gserviceaccount.com"
    assert len(args["job_spec"]["worker_pool_specs"]) == 1


# ---- submit / schedule ---------------------------------------------------------------------


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
