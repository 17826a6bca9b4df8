"""PipelineConfig: defaults, environment, overrides, and the checks made before any work."""

import os

import pytest

from components.qa import spec as spec_lib
from pipelines.config import ConfigError, PipelineConfig, check_hub_module


def _hub_module(path, with_vocab=True, module_file="saved_model.pb"):
    os.makedirs(os.path.join(path, "assets"))
    (path / module_file).write_bytes(b"")
    if with_vocab:
        (path / "assets" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return str(path)


@pytest.fixture
def local_config(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    return PipelineConfig(
        pipeline_root=str(tmp_path / "root"),
        data_root=str(data),
        push_destination=str(tmp_path / "serving"),
        spec={"uri": _hub_module(tmp_path / "encoder")},
    )


def test_defaults_build_model_makers_mobilebert_spec():
    config = PipelineConfig()
    assert config.build_spec() == spec_lib.MobileBertQaSpec()
    assert config.resolved_metadata_path() == os.path.join("runs/pipeline", "metadata.sqlite")


def test_overrides_are_parsed_by_type():
    config = PipelineConfig().with_overrides([
        "train_steps=7", "min_f1=12.5", "enable_cache=false", "quantizations=dynamic,float16",
        'beam_pipeline_args=["--direct_num_workers=2", "--experiments=a,b"]',
        "spec.seq_len=128", "spec.uri=/tmp/x", "spec.trainable=false",
    ])
    assert config.train_steps == 7 and config.min_f1 == 12.5 and config.enable_cache is False
    assert config.quantizations == ["dynamic", "float16"]
    assert config.beam_pipeline_args == ["--direct_num_workers=2", "--experiments=a,b"]
    assert config.spec == {"seq_len": 128, "uri": "/tmp/x", "trainable": False}
    assert PipelineConfig().spec == {}  # The defaults are not shared.


@pytest.mark.parametrize("override, message", [
    ("nope=1", "Unknown setting 'nope'"),
    ("train_steps=many", "train_steps='many'"),
    ("enable_cache=maybe", "enable_cache='maybe'"),
    ("train_steps", "not of the form key=value"),
])
def test_bad_overrides_name_the_setting(override, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig().with_overrides([override])


def test_from_env_reads_mbqa_variables():
    config = PipelineConfig.from_env({
        "MBQA_TRAIN_STEPS": "3",
        "MBQA_SPEC": '{"seq_len": 128, "query_len": 32, "doc_stride": 64}',
        "MBQA_DATA_ROOT": "/data", "HOME": "/ignored",
    })
    assert (config.train_steps, config.data_root) == (3, "/data")
    assert config.build_spec().seq_len == 128


def test_to_env_round_trips(local_config):
    config = local_config.with_overrides(["enable_cache=false", "quantizations=dynamic,int8"])
    env = config.to_env()
    assert env["MBQA_ENABLE_CACHE"] == "false" and "MBQA_TRAIN_STEPS" not in env
    assert PipelineConfig.from_env(env) == config


def test_valid_local_config_passes_and_creates_output_dirs(local_config):
    local_config.validate("local")
    assert os.path.isdir(local_config.pipeline_root)
    assert os.path.isdir(local_config.push_destination)


@pytest.mark.parametrize("override, message", [
    ("spec.distribution_strategy=nope", "distribution_strategy='nope'"),
    ("spec.seq_len=16", "query_len"),
    ("spec.bogus=1", "bogus"),
    ("spec_class=Nope", "spec_class='Nope'"),
    ("min_f1=101", "min_f1=101.0 must be in"),
    ("max_regression=-1", "max_regression"),
    ("max_quantization_drop=-0.5", "max_quantization_drop=-0.5 must be in"),
    ("regression_confidence=1", "regression_confidence=1.0 must be in"),
    ("quantizations=int4", "quantizations"),
    ("train_steps=0", "train_steps=0"),
    ("local_orchestrator=airflow", "local_orchestrator"),
    ('beam_pipeline_args=["direct_num_workers=2"]', "beam_pipeline_args"),
])
def test_invalid_settings_fail_before_any_work(local_config, override, message):
    with pytest.raises(ConfigError, match=message):
        local_config.with_overrides([override]).validate("local")


def test_encoder_dir_without_vocab_is_rejected(tmp_path, local_config):
    uri = _hub_module(tmp_path / "novocab", with_vocab=False)
    with pytest.raises(ConfigError, match="no assets/vocab.txt"):
        local_config.with_overrides([f"spec.uri={uri}"]).validate("local")


def test_directory_that_is_not_a_hub_module_is_rejected(tmp_path):
    (tmp_path / "assets").mkdir()
    with pytest.raises(ConfigError, match="is not a TF-Hub module"):
        check_hub_module(str(tmp_path))
    with pytest.raises(ConfigError, match="neither a URL"):
        check_hub_module(str(tmp_path / "missing"))
    check_hub_module("https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/1")
    check_hub_module(_hub_module(tmp_path / "tf1", module_file="tfhub_module.pb"))


@pytest.mark.parametrize("setting", ["pipeline_root", "push_destination"])
def test_unwritable_outputs_are_rejected(tmp_path, local_config, setting):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=f"{setting}=.* is not a writable directory"):
        local_config.with_overrides([f"{setting}={blocker}/sub"]).validate("local")
    assert blocker.read_text() == "not a directory"


def test_missing_data_root_is_rejected(tmp_path, local_config):
    with pytest.raises(ConfigError, match="data_root=.* is not a directory"):
        local_config.with_overrides([f"data_root={tmp_path}/none"]).validate("local")


def test_vertex_needs_a_gcs_root_but_not_local_files():
    config = PipelineConfig(spec={"uri": "gs://bucket/encoder"})
    with pytest.raises(ConfigError, match="gs:// root"):
        config.validate("vertex")
    config.with_overrides(["pipeline_root=gs://bucket/root"]).validate("vertex")
    config.validate("kubeflow")
    with pytest.raises(ConfigError, match="target='airflow'"):
        config.validate("airflow")
