"""`mbqa compile`: the Kubeflow (Argo) package and the Vertex AI PipelineJob are valid."""

import importlib
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines.cli import build_parser

REPO = pathlib.Path(__file__).resolve().parents[2]
IMAGE = "gcr.io/proj/mobilebert-qa-tfx:1"
COMPONENTS = {"SquadExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
              "SquadTransform", "Trainer", "QaEvaluator", "TFLitePusher"}
SETTINGS = ["pipeline_root=gs://bucket/root", "data_root=gs://bucket/squad",
            "push_destination=gs://bucket/serving", "spec.uri=gs://bucket/encoder",
            f"image={IMAGE}", "train_steps=1234", "min_f1=42"]


def _mbqa(argv):
    args = build_parser().parse_args(argv)
    return args.handler(args)


def _class_paths(node):
    """Every executor `classPath` in a TFX IR / pipeline JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("classPath", "class_path") and isinstance(value, str):
                yield value
            else:
                yield from _class_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from _class_paths(value)


def _assert_imports(class_path):
    module, _, name = class_path.rpartition(".")
    assert hasattr(importlib.import_module(module), name), class_path


@pytest.fixture(scope="module")
def vertex_job(tmp_path_factory):
    path = tmp_path_factory.mktemp("vertex") / "pipeline.json"
    settings = SETTINGS + ["gcp_project=proj", "spec.distribution_strategy=multi_worker_mirrored",
                           "vertex_worker_count=3", "spec.num_gpus=2"]
    assert _mbqa(["compile", "--target", "vertex", "--out", str(path)]
                 + [f"--set={s}" for s in settings]) == 0
    return path


def test_vertex_job_parses_as_a_pipeline_job(vertex_job):
    job = json_format.ParseDict(json.loads(vertex_job.read_text()), pipeline_spec_pb2.PipelineJob())
    tasks = set(job.pipeline_spec["root"]["dag"]["tasks"])
    assert COMPONENTS <= tasks
    assert any("resolver" in t for t in tasks - COMPONENTS)
    params = job.pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"data_root", "train_args", "spec", "min_exact_match",
                           "min_f1", "max_regression", "push_destination"}
    values = json_format.MessageToDict(job.runtime_config)["parameters"]
    assert values["data_root"] == {"stringValue": "gs://bucket/squad"}
    assert json.loads(values["train_args"]["stringValue"]) == {"num_steps": 1234}
    assert values["min_f1"] == {"doubleValue": 42.0}
    assert job.runtime_config.gcs_output_directory == "gs://bucket/root"


def _tasks(job_path) -> dict:
    return json.loads(job_path.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]


def test_every_step_reads_the_one_spec_parameter(vertex_job):
    tasks = _tasks(vertex_job)
    spec_parameter = {"componentInputParameter": "spec"}
    assert tasks["SquadTransform"]["inputs"]["parameters"]["windowing"] == spec_parameter
    assert tasks["Trainer"]["inputs"]["parameters"]["spec"] == spec_parameter
    assert tasks["QaEvaluator"]["inputs"]["parameters"]["spec"] == spec_parameter
    executors = json.loads(vertex_job.read_text())["pipelineSpec"]["deploymentSpec"]["executors"]
    trainer = executors["Trainer_executor"]["container"]
    assert trainer["image"] == IMAGE
    assert trainer["args"][trainer["args"].index("--executor_class_path") + 1] == (
        "components.trainer.executor.Executor")


def test_the_trainer_reads_the_length_buckets_from_the_transforms_artifact(vertex_job, tmp_path):
    tasks = _tasks(vertex_job)
    transform = tasks["SquadTransform"]["inputs"]["parameters"]["length_buckets"]
    assert transform == {"runtimeValue": {"constantValue": {"intValue": "8"}}}
    assert tasks["Trainer"]["inputs"]["artifacts"]["transform_graph"] == {"taskOutputArtifact": {
        "outputArtifactKey": "transform_graph", "producerTask": "SquadTransform"}}
    path = tmp_path / "off.json"
    assert _mbqa(["compile", "--target", "vertex", "--out", str(path), "--set=length_buckets=0"]
                 + [f"--set={s}" for s in SETTINGS]) == 0
    tasks = _tasks(path)
    assert tasks["SquadTransform"]["inputs"]["parameters"]["length_buckets"] == {
        "runtimeValue": {"constantValue": {"intValue": "0"}}}
    assert "transform_graph" not in tasks["Trainer"]["inputs"].get("artifacts", {})


def test_the_approved_schema_is_imported_and_the_trainer_may_stop_on_anomalies(tmp_path):
    """`schema_file` compiles into ImportSchemaGen (node id SchemaGen kept); the Trainer
    gets ExampleValidator's anomalies and `stop_on_anomalies` only when it stops on them;
    the evaluator gets them whenever validation runs (for the model card)."""
    settings = [f"--set={s}" for s in SETTINGS + [
        "train_pattern=span-{SPAN}/train/*.json", "eval_pattern=span-{SPAN}/eval/*.json"]]
    path = tmp_path / "schema.json"
    assert _mbqa(["compile", "--target", "vertex", "--out", str(path),
                  "--set=schema_file=gs://bucket/schema/questions.pbtxt", *settings]) == 0
    tasks = _tasks(path)
    assert tasks["SchemaGen"]["inputs"]["parameters"]["schema_file"] == {"runtimeValue": {
        "constantValue": {"stringValue": "gs://bucket/schema/questions.pbtxt"}}}
    assert "artifacts" not in tasks["SchemaGen"].get("inputs", {})  # not inferred
    anomalies = {"taskOutputArtifact": {"outputArtifactKey": "anomalies",
                                        "producerTask": "ExampleValidator"}}
    assert tasks["Trainer"]["inputs"]["artifacts"]["anomalies"] == anomalies
    assert tasks["Trainer"]["inputs"]["parameters"]["stop_on_anomalies"] == {
        "runtimeValue": {"constantValue": {"intValue": "1"}}}
    assert tasks["QaEvaluator"]["inputs"]["artifacts"]["anomalies"] == anomalies
    assert _mbqa(["compile", "--target", "vertex", "--out", str(tmp_path / "default.json"),
                  *settings]) == 0
    default = _tasks(tmp_path / "default.json")
    assert "statistics" in default["SchemaGen"]["inputs"]["artifacts"]  # inferred
    assert "anomalies" not in default["Trainer"]["inputs"]["artifacts"]
    assert "stop_on_anomalies" not in default["Trainer"]["inputs"]["parameters"]
    assert default["QaEvaluator"]["inputs"]["artifacts"]["anomalies"] == anomalies


def _run_trainer_step(job_path, submitted: list[str], tmp_path, monkeypatch) -> list:
    """Runs the compiled Trainer task through TFX's Vertex AI container entrypoint with the
    ExecutorInput of a local run (`deploy.local_vertex`: parameters submitted as
    `name=value`), the cloud job start replaced; returns the jobs it started."""
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    from deploy.local_vertex import LocalVertexJob, fill_placeholders

    started = []
    monkeypatch.setattr(vertex_executor.runner, "start_cloud_training",
                        lambda *args: started.append(args))
    job = LocalVertexJob(str(job_path), {"gs://bucket": str(tmp_path / "bucket")}, submitted)
    _, component, executor = job.task("Trainer")
    examples = {"name": "projects/p/locations/l/metadataStores/default/artifacts/1",
                "type": component["inputDefinitions"]["artifacts"]["examples"]["artifactType"],
                "uri": str(tmp_path / "examples"),
                "metadata": {"split_names": '["train", "eval"]'}}
    executor_input = job.executor_input("Trainer", {"examples": [examples]},
                                        str(tmp_path / "trainer"))
    args = fill_placeholders("Trainer", executor["container"]["args"], executor_input)
    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags(args))
    return started


def test_a_spec_given_at_submit_is_the_spec_that_trains_on_its_pools(
    vertex_job, tmp_path, monkeypatch
):
    from components.qa.spec import MobileBertQaSpec

    submitted = MobileBertQaSpec(uri="gs://bucket/encoder", num_gpus=1, learning_rate=1e-4,
                                 distribution_strategy="parameter_server")
    (start,) = _run_trainer_step(vertex_job, [f"spec={submitted.to_json()}"], tmp_path,
                                 monkeypatch)
    _, _, exec_properties, executor_class_path, job_args, *_ = start
    assert executor_class_path == "tfx.components.trainer.executor.GenericExecutor"
    custom_config = json.loads(exec_properties["custom_config"])
    # What every replica's run_fn reads (gs://bucket is the local run's tmp_path/bucket).
    assert custom_config["spec"] == submitted.replace(
        uri=str(tmp_path / "bucket" / "encoder")).to_json()
    assert custom_config["warm_start"] is True
    pools = job_args["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2, 1]  # chief, workers, parameter server
    assert pools[0]["machine_spec"]["accelerator_count"] == 1
    assert pools[0]["container_spec"] == {"image_uri": IMAGE}
    # Without a new spec: the compiled one (multi_worker_mirrored, 2 GPUs).
    (start,) = _run_trainer_step(vertex_job, [], tmp_path, monkeypatch)
    pools = start[4]["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert pools[0]["machine_spec"]["accelerator_count"] == 2


def test_a_submitted_spec_the_compiled_settings_cannot_train_fails_before_the_job(
    tmp_path, monkeypatch
):
    from components.qa.spec import MobileBertQaSpec

    path = tmp_path / "pipeline.json"
    settings = SETTINGS + ["gcp_project=proj", "vertex_worker_count=1"]
    assert _mbqa(["compile", "--target", "vertex", "--out", str(path)]
                 + [f"--set={s}" for s in settings]) == 0
    submitted = MobileBertQaSpec(uri="gs://bucket/encoder",
                                 distribution_strategy="parameter_server")
    with pytest.raises(ValueError, match="vertex_worker_count=1"):
        _run_trainer_step(path, [f"spec={submitted.to_json()}"], tmp_path, monkeypatch)


def test_every_vertex_executor_imports(vertex_job):
    executors = json.loads(vertex_job.read_text())["pipelineSpec"]["deploymentSpec"]["executors"]
    paths = []
    for executor in executors.values():
        args = executor.get("container", {}).get("args", [])
        if "--executor_class_path" in args:
            paths.append(args[args.index("--executor_class_path") + 1])
    assert len(paths) == len(COMPONENTS)
    for path in paths:
        _assert_imports(path)


def _kubeflow_steps(tmp_path, settings) -> dict:
    """The Argo workflow's step templates (name -> template) compiled with `settings`."""
    out = tmp_path / "pipeline.tar.gz"
    assert _mbqa(["compile", "--target", "kubeflow", "--out", str(out)]
                 + [f"--set={s}" for s in settings]) == 0
    with tarfile.open(out) as tar:
        workflow = yaml.safe_load(tar.extractfile("pipeline.yaml"))
    assert workflow["kind"] == "Workflow"
    return {t["name"]: t for t in workflow["spec"]["templates"] if "container" in t}


def test_kubeflow_package_has_every_step_and_importable_executors(tmp_path):
    containers = {name: t["container"] for name, t in _kubeflow_steps(tmp_path, SETTINGS).items()}
    assert {c.lower() for c in COMPONENTS} <= set(containers)
    class_paths = set()
    for container in containers.values():
        assert container["image"] == IMAGE
        args = container["args"]
        ir = json.loads(args[args.index("--tfx_ir") + 1])
        class_paths.update(_class_paths(ir))
    assert "components.squad_example_gen.executor.Executor" in class_paths
    for path in class_paths:
        _assert_imports(path)


@pytest.mark.parametrize("spec_settings, limits, node_selector", [
    (["spec.distribution_strategy=mirrored", "spec.num_gpus=2"], {"nvidia.com/gpu": "2"},
     {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}),
    (["spec.distribution_strategy=off", "spec.num_gpus=2"], None, None),
    (["spec.distribution_strategy=tpu", "spec.tpu=local", "kubeflow_tpu_topology=2x2"],
     {"google.com/tpu": "4"}, {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                               "cloud.google.com/gke-tpu-topology": "2x2"}),
])
def test_only_the_kubeflow_trainer_requests_its_strategys_accelerators(
    tmp_path, spec_settings, limits, node_selector
):
    steps = _kubeflow_steps(tmp_path, SETTINGS + spec_settings)
    trainer = steps.pop("trainer")
    assert trainer["container"].get("resources", {}).get("limits") == limits
    assert trainer.get("nodeSelector") == node_selector
    assert {c.lower() for c in COMPONENTS} - {"trainer"} <= set(steps)
    for step in steps.values():
        assert "resources" not in step["container"] and "nodeSelector" not in step


def test_invalid_spec_fails_at_compile_time(tmp_path):
    from pipelines.config import ConfigError

    with pytest.raises(ConfigError, match="distribution_strategy='bogus'"):
        _mbqa(["compile", "--target", "vertex", "--out", str(tmp_path / "p.json")]
              + [f"--set={s}" for s in SETTINGS + ["spec.distribution_strategy=bogus"]])
    assert not (tmp_path / "p.json").exists()


def _local_settings(directory: pathlib.Path) -> dict[str, str]:
    """`MBQA_*` variables of a local run, with paths relative to `directory` (made there)."""
    (directory / "data").mkdir()
    (directory / "encoder" / "assets").mkdir(parents=True)
    for name in ("saved_model.pb", "tfhub_module.pb"):  # A TF1 Hub module's files.
        (directory / "encoder" / name).write_bytes(b"")
    (directory / "encoder" / "assets" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return {"MBQA_DATA_ROOT": "data", "MBQA_SPEC": '{"uri": "encoder", "is_tf2": false}',
            "MBQA_PIPELINE_ROOT": "pipeline", "MBQA_PUSH_DESTINATION": "serving"}


@pytest.mark.parametrize("engine, home, command", [
    ("local", "LOCAL_HOME", "create"),
    ("vertex", "VERTEX_HOME", "create"),
    ("kubeflow", "KUBEFLOW_HOME", "compile"),
])
def test_tfx_cli_compiles_the_runner_files_from_any_directory(tmp_path, engine, home, command):
    """The README's way: outside the checkout, the runner path from `mbqa runner-path`."""
    from pipelines.config import PipelineConfig

    bin_dir = pathlib.Path(sys.executable).parent
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    settings = (_local_settings(cwd) if engine == "local"
                else PipelineConfig().with_overrides(SETTINGS).to_env())
    env = {**os.environ, **settings, home: str(tmp_path / "home"),
           # The TFX CLI finds kfp with the `pip` on the PATH.
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    runner = subprocess.run([str(bin_dir / "mbqa"), "runner-path", engine], env=env, cwd=cwd,
                            capture_output=True, text=True, check=True).stdout.strip()
    assert runner == str(REPO / "pipelines" / f"{engine}_runner.py")
    result = subprocess.run(
        [str(bin_dir / "tfx"), "pipeline", command, "--engine", engine, "--pipeline_path", runner],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    if engine == "local":  # What `tfx run create` runs, from any directory: absolute paths.
        stored = json.loads(
            (tmp_path / "home" / "mobilebert-qa" / "pipeline_args.json").read_text())
        assert stored == {"pipeline_name": "mobilebert-qa", "pipeline_dsl_path": runner,
                          "pipeline_root": str(cwd / "pipeline")}
    elif engine == "vertex":
        path = tmp_path / "home" / "mobilebert-qa" / "pipeline.json"
        job = json_format.ParseDict(json.loads(path.read_text()), pipeline_spec_pb2.PipelineJob())
        assert COMPONENTS <= set(job.pipeline_spec["root"]["dag"]["tasks"])
    else:
        with tarfile.open(cwd / "mobilebert-qa.tar.gz") as tar:
            assert yaml.safe_load(tar.extractfile("pipeline.yaml"))["kind"] == "Workflow"
