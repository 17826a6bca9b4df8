"""PipelineConfig: defaults, environment, overrides, and the checks made before any work."""

import dataclasses
import hashlib
import json
import os
import re

import pytest

from components.qa import spec as spec_lib
from pipelines.config import ConfigError, PipelineConfig, check_hub_module, setting_descriptions


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
        spec={"uri": _hub_module(tmp_path / "encoder"), "is_tf2": True},
    )


def test_defaults_build_model_makers_mobilebert_spec():
    config = PipelineConfig()
    assert config.build_spec() == spec_lib.MobileBertQaSpec()
    assert config.resolved_metadata_path() == os.path.join(
        os.path.expanduser("~/mbqa-runs"), "pipeline", "metadata.sqlite")


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
    ("spec.is_tf2=maybe", r"spec.is_tf2='maybe' is not a valid bool"),
    ("spec.seq_len=long", "spec.seq_len='long'"),
    ("train_step=3", r"Unknown setting 'train_step' \(did you mean train_steps\?\)"),
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


def test_from_env_rejects_unknown_mbqa_variables():
    with pytest.raises(ConfigError, match=r"MBQA_TRAIN_STEP is not a setting "
                       r"\(did you mean MBQA_TRAIN_STEPS\?\).*mbqa settings"):
        PipelineConfig.from_env({"MBQA_TRAIN_STEP": "3", "MBQA_DATA_ROOT": "/data"})


@pytest.mark.parametrize("text, value", [
    ("True", True), ("true", True), ("yes", True), ("1", True),
    ("False", False), ("false", False), ("no", False), ("0", False),
])
def test_booleans_are_parsed_alike_in_settings_and_spec(text, value):
    config = PipelineConfig().with_overrides([f"enable_cache={text}", f"spec.is_tf2={text}"])
    assert config.enable_cache is value and config.build_spec().is_tf2 is value
    from_env = PipelineConfig.from_env(
        {"MBQA_SPEC": json.dumps({"is_tf2": text, "seq_len": "128", "model_dir": None})}
    )
    assert from_env.spec == {"is_tf2": value, "seq_len": 128, "model_dir": None}


def test_bad_spec_json_value_names_the_parameter():
    with pytest.raises(ConfigError, match=r"spec.is_tf2='maybe' is not a valid bool"):
        PipelineConfig.from_env({"MBQA_SPEC": '{"is_tf2": "maybe"}'})


def test_every_setting_is_described_in_the_docstring():
    descriptions = setting_descriptions()
    assert set(descriptions) == {field.name for field in dataclasses.fields(PipelineConfig)}
    assert all(descriptions.values())
    assert "\n" not in descriptions["warm_start"] and descriptions["warm_start"].endswith(
        "training starts from the encoder).")  # Continuation lines are joined.


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
    ("min_task_library_f1=100.5", "min_task_library_f1=100.5 must be in"),
    ("regression_confidence=1", "regression_confidence=1.0 must be in"),
    ("quantizations=int4", "quantizations"),
    ("train_steps=0", "train_steps=0"),
    ("local_orchestrator=airflow", "local_orchestrator"),
    ('beam_pipeline_args=["direct_num_workers=2"]', "beam_pipeline_args"),
    ("mixed_precision=float16", "mixed_precision='float16' is not"),
    ("length_buckets=1", "length_buckets=1 must be 0 .off. or >= 2"),
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
        check_hub_module(str(tmp_path), is_tf2=True)
    with pytest.raises(ConfigError, match="neither a URL"):
        check_hub_module(str(tmp_path / "missing"), is_tf2=True)
    check_hub_module("gs://bucket/encoder", is_tf2=True)  # Not checked: that needs TensorFlow.
    check_hub_module(_hub_module(tmp_path / "tf1", module_file="tfhub_module.pb"), is_tf2=False)


def _tf1_module(path):
    """A TF1 Hub module's files: tfhub_module.pb beside saved_model.pb."""
    uri = _hub_module(path, module_file="tfhub_module.pb")
    (path / "saved_model.pb").write_bytes(b"")
    return uri


@pytest.mark.parametrize("is_tf2, message", [
    (True, r"TF1 Hub module .* spec.is_tf2=True; set spec.is_tf2=False"),
    (False, r"TF2 SavedModel .* spec.is_tf2=False; set spec.is_tf2=True"),
])
def test_hub_module_format_must_match_is_tf2(tmp_path, local_config, is_tf2, message):
    uri = _tf1_module(tmp_path / "tf1") if is_tf2 else _hub_module(tmp_path / "tf2")
    config = local_config.with_overrides([f"spec.uri={uri}", f"spec.is_tf2={is_tf2}"])
    with pytest.raises(ConfigError, match=rf"spec.uri='{re.escape(uri)}' is a {message}"):
        config.validate("local")
    config.with_overrides([f"spec.is_tf2={not is_tf2}"]).validate("local")


def test_unreachable_hub_url_is_rejected(tmp_path, monkeypatch, local_config):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))
    config = local_config.with_overrides(["spec.uri=http://127.0.0.1:9/module"])
    with pytest.raises(ConfigError, match=r"spec.uri='http://127.0.0.1:9/module' cannot be "
                       r"reached .* may be offline.*mbqa make-encoder"):
        config.validate("local")


def test_hub_url_in_tfhub_cache_is_not_fetched(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/module"  # Unreachable: only the cache can make it pass.
    sha1 = hashlib.sha1(url.encode("utf8")).hexdigest()
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    _tf1_module(tmp_path / sha1)
    check_hub_module(url, is_tf2=False)
    with pytest.raises(ConfigError, match="TF1 Hub module"):  # Its format is checked.
        check_hub_module(url, is_tf2=True)


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


def test_relative_local_paths_are_made_absolute_when_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = PipelineConfig.from_env({
        "MBQA_PIPELINE_ROOT": "root", "MBQA_SPEC": '{"uri": "encoder"}',
    }).with_overrides(["data_root=data", "metadata_path=md/m.sqlite", "push_destination=~/s"])
    assert config.pipeline_root == str(tmp_path / "root")
    assert config.data_root == str(tmp_path / "data")
    assert config.metadata_path == str(tmp_path / "md" / "m.sqlite")
    assert config.push_destination == os.path.expanduser("~/s")
    assert config.spec["uri"] == str(tmp_path / "encoder")
    remote = PipelineConfig(pipeline_root="gs://b/root", spec={"uri": "https://tfhub.dev/m/1"})
    assert (remote.pipeline_root, remote.spec["uri"]) == ("gs://b/root", "https://tfhub.dev/m/1")
    assert remote.metadata_path == ""  # '' stays: under pipeline_root


_REMOTE_SETTINGS = ["image=gcr.io/proj/mobilebert-qa-tfx:1", "pipeline_root=gs://b/root",
                    "data_root=gs://b/squad", "push_destination=gs://b/serving",
                    "spec.uri=gs://b/encoder"]


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_remote_targets_refuse_the_placeholder_image_and_local_paths(target):
    PipelineConfig().with_overrides(_REMOTE_SETTINGS).validate(target)
    with pytest.raises(ConfigError) as error:
        PipelineConfig(spec={"uri": "encoder"}).validate(target)
    for setting in ("image='gcr.io/my-project/", "pipeline_root='/", "data_root='/",
                    "push_destination='/", "spec.uri='/"):
        assert setting in str(error.value)
    with pytest.raises(ConfigError, match="pipeline_root='https://b/root'.*gs://"):
        PipelineConfig().with_overrides(_REMOTE_SETTINGS + ["pipeline_root=https://b/root"]
                                        ).validate(target)
    with pytest.raises(ConfigError, match="target='airflow'"):
        PipelineConfig().validate("airflow")


def test_multi_machine_strategies_need_vertex_ai_training():
    config = PipelineConfig().with_overrides(
        _REMOTE_SETTINGS + ["spec.distribution_strategy=parameter_server"])
    for target in ("kubeflow", "vertex"):
        with pytest.raises(ConfigError, match="'parameter_server' needs several machines"):
            config.validate(target)
    config.with_overrides(["gcp_project=proj"]).validate("vertex")


def test_kubeflow_tpu_topology_is_checked():
    config = PipelineConfig().with_overrides(
        _REMOTE_SETTINGS + ["spec.distribution_strategy=tpu", "spec.tpu=local"])
    config.validate("kubeflow")
    with pytest.raises(ConfigError, match="kubeflow_tpu_topology='2by4'"):
        config.with_overrides(["kubeflow_tpu_topology=2by4"]).validate("kubeflow")


def test_mixed_precision_is_parsed_and_float16_is_refused_on_tpus(local_config):
    tpu = local_config.with_overrides(["spec.distribution_strategy=tpu", "spec.tpu=local"])
    for policy in ("mixed_bfloat16", "mixed_float16"):
        config = local_config.with_overrides([f"mixed_precision={policy}"])
        assert config.mixed_precision == policy
        config.validate("local")
    tpu.with_overrides(["mixed_precision=mixed_bfloat16"]).validate("local")
    with pytest.raises(ConfigError, match="mixed_precision='mixed_float16' cannot run on TPUs"):
        tpu.with_overrides(["mixed_precision=mixed_float16"]).validate("local")


def test_the_approved_schema_and_the_stop_on_anomalies(tmp_path, local_config, monkeypatch):
    assert local_config.resolved_stop_on_anomalies() is False  # auto, no schema_file
    with pytest.raises(ConfigError, match=r"schema_file='.*missing.pbtxt' is not a file"):
        local_config.with_overrides(["schema_file=missing.pbtxt"]).validate("local")
    (tmp_path / "schema.pbtxt").write_text("")
    monkeypatch.chdir(tmp_path)
    config = local_config.with_overrides(["schema_file=schema.pbtxt"])
    assert config.schema_file == str(tmp_path / "schema.pbtxt")  # made absolute
    config.validate("local")
    assert config.resolved_stop_on_anomalies() is True  # auto: on with a schema_file
    assert config.with_overrides(["stop_on_anomalies=false"]).resolved_stop_on_anomalies() is (
        False)
    assert config.with_overrides(["stop_on_anomalies=false", "stop_on_anomalies=None"]
                                 ).stop_on_anomalies is None
    assert PipelineConfig.from_env(config.with_overrides(["stop_on_anomalies=true"]).to_env()
                                   ).stop_on_anomalies is True
    local_config.with_overrides(["schema_file=gs://b/schema.pbtxt"]).validate("local")
    for setting in ("schema_file=schema.pbtxt", "stop_on_anomalies=true"):
        with pytest.raises(ConfigError, match=f"{setting.split('=')[0]}=.* needs "
                                              "with_data_validation=true"):
            local_config.with_overrides([setting, "with_data_validation=false"]).validate()
    with pytest.raises(ConfigError, match="schema_file=.*containers that see no local files"):
        config.with_overrides(["image=gcr.io/p/i:1", "pipeline_root=gs://b/r",
                               "data_root=gs://b/d", "push_destination=gs://b/s",
                               "spec.uri=gs://b/e"]).validate("vertex")
