"""The compiled Vertex AI pipeline, run locally through its own contracts, twice.

`mbqa compile --target vertex` with gs:// settings, Vertex AI training (`gcp_project`) and
`multi_worker_mirrored` on 2 replicas, a tiny TF1 encoder and the Task Library's 384/64
windows; then `mbqa deploy local-run` with one registry:
0. with a data root that has no span: the ExampleGen's driver fails, the run stops there;
   with the `span` runtime parameter naming a span that has no files: the ExampleGen
   fails naming the patterns and the spans that exist;
1. span 1: pushes version 1 under the mapped bucket; the Task Library loads it;
2. spans 2 and 3 added, `span=2`, `min_f1` and `spec` given at submit time: span 2 is read,
   not the latest (another doc_stride, and
   `parameter_server`: the CustomJob's worker pools follow it): the resolver returns run
   1's model, the Trainer warm-starts from it with separate chief, worker and ps
   processes, the Transform, the Trainer and the evaluator use the submitted spec, the
   gate compares against run 1's shipped file, and the push or refusal follows.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from components.qa import encoders, synth
from components.qa.spec import spec_from_json
from deploy.local_registry import Registry
from pipelines.demo import DEMO_FACTS_PER_PASSAGE

# One worker runs the whole module: its runs build on each other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local_vertex")]

MBQA = str(pathlib.Path(sys.executable).with_name("mbqa"))
RUN_TIMEOUT_S = 900
NAME = "mobilebert-qa"
SETTINGS = [
    "pipeline_root=gs://bucket/root", "data_root=gs://bucket/squad",
    "push_destination=gs://bucket/serving", "spec.uri=gs://bucket/encoder",
    "image=gcr.io/proj/mobilebert-qa-tfx:1", "gcp_project=proj",
    "spec.distribution_strategy=multi_worker_mirrored", "vertex_worker_count=2",
    "spec.num_gpus=0", "train_pattern=span-{SPAN}/train/*.json",
    "eval_pattern=span-{SPAN}/eval/*.json", "with_data_validation=false",
    "train_steps=20", "eval_steps=2", "spec.seq_len=384", "spec.query_len=64",
    "spec.learning_rate=1e-3", "spec.default_batch_size=8", "spec.predict_batch_size=16",
    "min_f1=0", "max_quantization_drop=100",
]


def _mbqa(*args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Runs mbqa; returns it and its log file's text ('' without one)."""
    result = subprocess.run([MBQA, *args], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    for line in result.stdout.splitlines()[:2]:
        if line.startswith("Log file: "):
            with open(line.removeprefix("Log file: "), encoding="utf-8") as f:
                return result, f.read()
    return result, ""


def _artifacts(registry: Registry, task: str, kind: str) -> list:
    """The artifacts of `task`'s executions (oldest first), inputs or outputs (`kind`)."""
    from ml_metadata.proto import metadata_store_pb2

    store = registry.store
    context = store.get_context_by_type_and_name("node", f"{NAME}.{task}")
    executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    wanted = getattr(metadata_store_pb2.Event, kind)
    runs = []
    for execution in executions:
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == wanted]
        runs.append({e.path.steps[0].key: store.get_artifacts_by_id([e.artifact_id])[0]
                     for e in events})
    return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("local_vertex")
    bucket = work / "bucket"
    synth.make_synthetic_squad(str(bucket / "squad" / "span-1"), n=60, seed=1,
                               facts_per_passage=DEMO_FACTS_PER_PASSAGE)
    (bucket / "empty").mkdir()
    encoders.make_encoder(str(bucket / "encoder"), tf_format=encoders.TF1, seed=0)
    job = work / "pipeline.json"
    compiled, _ = _mbqa("compile", "--target", "vertex", "--out", str(job),
                        *(f"--set={s}" for s in SETTINGS))
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    local_run = ["deploy", "local-run", "--pipeline-json", str(job),
                 f"--local-bucket=gs://bucket={bucket}"]
    failed = _mbqa(*local_run, "--parameter=data_root=gs://bucket/empty")
    missing_span = _mbqa(*local_run, "--parameter=span=7")
    first = _mbqa(*local_run)
    for span in (2, 3):
        synth.make_synthetic_squad(str(bucket / "squad" / f"span-{span}"), n=60, seed=span,
                                   facts_per_passage=DEMO_FACTS_PER_PASSAGE)
    spec = spec_from_json(json.loads(job.read_text())["runtimeConfig"]["parameters"]["spec"][
        "stringValue"]).replace(doc_stride=96, distribution_strategy="parameter_server")
    second = _mbqa(*local_run, "--parameter=span=2", "--parameter=min_f1=100",
                   f"--parameter=spec={spec.to_json()}")
    registry = Registry(str(bucket / "root" / "metadata.sqlite"), NAME)
    return {"bucket": bucket, "failed": failed, "missing_span": missing_span, "first": first,
            "second": second, "registry": registry}


def test_a_failing_task_stops_the_run_naming_it_with_its_last_lines(runs):
    result, log = runs["failed"]
    assert result.returncode == 1, result.stdout[-3000:]
    assert ("SquadExampleGen FAILED: TaskFailed: task SquadExampleGen (driver) failed: exit "
            "status 1") in result.stdout
    # Its last lines on the terminal: TFX's driver found no span under the empty data root.
    assert "ValueError: Cannot find matching for split train based on span-{SPAN}" in (
        result.stdout)
    assert "Traceback" in log and "Trainer ..." not in result.stdout


def test_a_span_parameter_without_files_fails_naming_the_spans_that_exist(runs):
    result, _ = runs["missing_span"]
    assert result.returncode == 1, result.stdout[-3000:]
    assert "SquadExampleGen FAILED" in result.stdout
    assert "SpanNotFoundError: Span 7 has no files in every input split" in result.stdout
    assert "span-{SPAN}/train/*.json has spans [1]" in result.stdout
    assert "Trainer ..." not in result.stdout


def test_the_first_run_pushes_version_1_which_the_task_library_loads(runs):
    from components.qa import task_library

    result, log = runs["first"]
    assert result.returncode == 0, result.stdout[-3000:] + log[-3000:]
    bucket = runs["bucket"]
    assert f"pushed version 1 to {bucket}/serving/1" in result.stdout
    tflite_path = bucket / "serving" / "1" / "model.tflite"
    assert task_library.answer(str(tflite_path), "The flower of Anna is ivy.",
                               "What is the flower of Anna?") != ""
    # The Trainer ran as a Vertex AI CustomJob of two local replicas with TF_CONFIG.
    assert "started replicas ['workerpool0-0', 'workerpool1-0']" in log
    training = json.loads((_serving_dir(runs, 0) / "assets.extra" / "training.json").read_text())
    assert training["replicas"] == 2 and training["strategy"] == "multi_worker_mirrored"
    _assert_trained_on_the_transforms_buckets(runs, 0, training)


def _assert_trained_on_the_transforms_buckets(runs, run: int, training: dict) -> None:
    """The CustomJob's replicas read the length buckets from the Transform's artifact."""
    from components.squad_transform import length_buckets

    graph = _artifacts(runs["registry"], "SquadTransform", "OUTPUT")[run]["transform_graph"]
    assert _artifacts(runs["registry"], "Trainer", "INPUT")[run]["transform_graph"].name == (
        graph.name)
    table = length_buckets.read_padded_lengths(graph.uri, training["spec"]["params"]["seq_len"])
    assert training["length_buckets"] == sorted(set(table))


def _serving_dir(runs, run: int) -> pathlib.Path:
    """The SavedModel of the Trainer's `run`-th execution (0: the first run's)."""
    model = _artifacts(runs["registry"], "Trainer", "OUTPUT")[run]["model"]
    return pathlib.Path(model.uri) / "Format-Serving"


def test_span_blessing_and_model_reference_survive_every_hop(runs):
    registry = runs["registry"]
    runs_outputs = _artifacts(registry, "SquadExampleGen", "OUTPUT")
    assert runs_outputs[0] == {}  # the failed run: its driver found no span
    spans = [run["examples"].custom_properties["custom:span"].double_value
             for run in runs_outputs[1:] if run]
    assert spans == [1, 2]  # the second run asked for span 2; span 3 is the latest
    models = [run["model"] for run in _artifacts(registry, "Trainer", "OUTPUT")]
    blessings = [run["blessing"] for run in _artifacts(registry, "QaEvaluator", "OUTPUT")]
    for model, blessing in zip(models, blessings, strict=True):
        # The artifact's resource name, as TFX's entrypoint rewrites it on Vertex AI.
        assert blessing.custom_properties["current_model_id"].string_value == model.name
        assert blessing.custom_properties["current_model"].string_value == model.uri
    resolved = _artifacts(registry, "latest_blessed_model_resolver-model-resolver", "OUTPUT")
    assert "model" not in resolved[0]  # the first run: no blessed model yet
    assert resolved[1]["model"].name == models[0].name
    trainer_inputs = _artifacts(registry, "Trainer", "INPUT")
    assert "base_model" not in trainer_inputs[0]
    assert trainer_inputs[1]["base_model"].name == models[0].name


def test_the_second_run_warm_starts_uses_the_submitted_spec_and_gates_on_run_1(runs):
    result, log = runs["second"]
    assert result.returncode in (0, 3), result.stdout[-3000:] + log[-3000:]
    first_model = _artifacts(runs["registry"], "Trainer", "OUTPUT")[0]["model"]
    training = json.loads((_serving_dir(runs, 1) / "assets.extra" / "training.json").read_text())
    assert training["warm_start_from"].startswith(first_model.uri)
    assert training["spec"]["params"]["doc_stride"] == 96
    _assert_trained_on_the_transforms_buckets(runs, 1, training)  # the new windows' buckets
    # The submitted strategy's pools: chief, worker and ps, each its own process; the worker
    # and ps serve (strategies.serve_cluster_task) until the chief is done.
    assert training["strategy"] == "parameter_server"
    assert "started replicas ['workerpool0-0', 'workerpool1-0', 'workerpool2-0']" in log
    assert "[workerpool1-0]" in log and "Serving as worker:0" in log
    assert "[workerpool2-0]" in log and "Serving as ps:0" in log
    assert "stopping workerpool2-0: the chief finished" in log
    assert "warm start from" in result.stdout
    assert "doc_stride=96" in log  # the Transform's windowing line
    evaluation = _artifacts(runs["registry"], "QaEvaluator", "OUTPUT")[1]["evaluation"]
    metrics = json.loads((pathlib.Path(evaluation.uri) / "metrics.json").read_text())
    assert metrics["serving_config"]["doc_stride"] == 96
    assert metrics["baseline"]["model_uri"] == first_model.uri
    details = [c["detail"] for c in metrics["blessing"]["checks"]]
    assert any(c["name"] == "regression" for c in metrics["blessing"]["checks"]), details
    assert any("min 100.00" in d for d in details), details
    pushed = (runs["bucket"] / "serving" / "2").exists()
    assert metrics["blessing"]["blessed"] == pushed == (result.returncode == 0)

