"""Vertex AI training: the CustomJob's worker pools per strategy, from the settings and spec."""

import pytest
from tfx.v1.extensions import google_cloud_ai_platform as tfx_vertex

from components.qa.spec import MobileBertQaSpec
from components.trainer import vertex_training
from components.trainer.vertex_training import VertexTrainingSettings

IMAGE = "gcr.io/p/mbqa:1"


def _pools(strategy, num_gpus=-1, **settings):
    spec = MobileBertQaSpec(uri="gs://b/encoder", distribution_strategy=strategy,
                            num_gpus=num_gpus)
    return vertex_training.worker_pool_specs(
        VertexTrainingSettings(image=IMAGE, gcp_project="p", **settings), spec)


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
    with pytest.raises(ValueError, match="vertex_worker_count=1"):
        _pools("parameter_server", vertex_worker_count=1)


def test_tpu_gets_one_tpu_vm():
    (pool,) = _pools("tpu", vertex_tpu_type="TPU_V2", vertex_tpu_cores=8)
    assert pool["machine_spec"] == {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V2",
                                    "accelerator_count": 8}
    assert pool["replica_count"] == 1


def test_training_custom_config_uses_tfx_vertex_keys():
    settings = VertexTrainingSettings(image=IMAGE, gcp_project="proj",
                                      gcp_region="europe-west4",
                                      vertex_service_account="sa@proj.iam.gserviceaccount.com")
    custom = vertex_training.training_custom_config(
        settings, MobileBertQaSpec(uri="gs://b/encoder"))
    assert custom[tfx_vertex.ENABLE_VERTEX_KEY] is True
    assert custom[tfx_vertex.VERTEX_REGION_KEY] == "europe-west4"
    args = custom[tfx_vertex.TRAINING_ARGS_KEY]
    assert args["project"] == "proj"
    assert args["job_spec"]["service_account"] == "sa@proj.iam.gserviceaccount.com"
    assert len(args["job_spec"]["worker_pool_specs"]) == 1


def test_settings_round_trip_through_the_compiled_json_and_unknown_ones_are_named():
    settings = VertexTrainingSettings(image=IMAGE, gcp_project="p", vertex_worker_count=3)
    assert VertexTrainingSettings.from_json(settings.to_json()) == settings
    assert VertexTrainingSettings.from_json("{}") is None
    with pytest.raises(ValueError, match="vertex_workers"):
        VertexTrainingSettings.from_json('{"image": "i", "gcp_project": "p", '
                                         '"vertex_workers": 3}')
