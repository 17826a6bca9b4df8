"""The compiled Kubeflow Pipelines package, run locally step by step against ML Metadata
served over gRPC, to a pushed model that the Task Library loads."""

import os
import pathlib
import subprocess
import sys

import pytest

from components.qa import encoders, synth
from pipelines.demo import DEMO_FACTS_PER_PASSAGE

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local_kubeflow")]

MBQA = str(pathlib.Path(sys.executable).with_name("mbqa"))
NAME = "mobilebert-qa"
SETTINGS = [
    "pipeline_root=gs://bucket/root", "data_root=gs://bucket/squad",
    "push_destination=gs://bucket/serving", "spec.uri=gs://bucket/encoder",
    "image=gcr.io/proj/mobilebert-qa-tfx:1", "train_pattern=span-{SPAN}/train/*.json",
    "eval_pattern=span-{SPAN}/eval/*.json", "with_data_validation=false", "train_steps=20",
    "eval_steps=2", "spec.seq_len=384", "spec.query_len=64", "spec.learning_rate=1e-3",
    "spec.default_batch_size=8", "spec.predict_batch_size=16", "min_f1=0",
    "max_quantization_drop=100", "skip_invalid=true",
]
NODES = {"SquadExampleGen", "SquadTransform", "latest_blessed_model_resolver", "Trainer",
         "QaEvaluator", "TFLitePusher"}


def test_the_kubeflow_package_runs_to_a_pushed_model_over_grpc_metadata(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    from components.qa import task_library
    from pipelines.config import PipelineConfig
    from pipelines.report import metadata_store

    bucket = tmp_path / "bucket"
    synth.make_synthetic_squad(str(bucket / "squad" / "span-3"), n=60, seed=1,
                               facts_per_passage=DEMO_FACTS_PER_PASSAGE)
    encoders.make_encoder(str(bucket / "encoder"), tf_format=encoders.TF1, seed=0)
    package = tmp_path / "pipeline.tar.gz"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    compiled = subprocess.run([MBQA, "compile", "--target", "kubeflow", "--out", str(package),
                               *(f"--set={s}" for s in SETTINGS)],
                              capture_output=True, text=True, env=env, timeout=600)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    # The pipeline root is the package's runtime parameter: given here as at submit time.
    result = subprocess.run(
        [MBQA, "deploy", "local-run", "--kubeflow-package", str(package),
         f"--local-bucket=gs://bucket={bucket}", "--parameter=pipeline-root=gs://bucket/kfp"],
        capture_output=True, text=True, env=env, timeout=900)
    log_path = result.stdout.splitlines()[0].removeprefix("Log file: ")
    log = pathlib.Path(log_path).read_text() if os.path.isfile(log_path) else ""
    assert result.returncode == 0, result.stdout[-3000:] + log[-5000:]
    assert f"pushed version 1 to {bucket}/serving/1" in result.stdout
    assert task_library.answer(str(bucket / "serving" / "1" / "model.tflite"),
                               "The flower of Anna is ivy.", "What is the flower of Anna?")
    # TFX's Kubeflow entrypoint recorded every step over gRPC in the store behind it.
    store = metadata_store(PipelineConfig(
        pipeline_name=NAME, metadata_path=str(bucket / "kfp" / "metadata.sqlite")))
    states = {}
    for context in store.get_contexts_by_type("node"):
        [execution] = store.get_executions_by_context(context.id)
        states[context.name.removeprefix(f"{NAME}.")] = execution.last_known_state
    assert states == dict.fromkeys(NODES, metadata_store_pb2.Execution.COMPLETE)
    [examples] = store.get_artifacts_by_type("Examples")[:1]
    assert examples.custom_properties["span"].int_value == 3
    assert examples.uri.startswith(str(bucket / "kfp"))
