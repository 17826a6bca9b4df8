"""QaEvaluator → TFLitePusher in a real TFX pipeline (LocalDagRunner, ML Metadata)."""

from __future__ import annotations

import json
import os

from tfx import v1 as tfx

from components.evaluator.component import QaEvaluator
from components.pusher.component import TFLitePusher
from tests.evaluator.evaluator_fixtures import (
    EVAL_QUESTIONS,
    SPEC,
    examples_artifact,
    model_artifact,
    write_vocab,
)

# The Task Library's windows: the evaluator requires them of the shipped file by default.
TASK_LIBRARY_SPEC = SPEC.replace(seq_len=384, query_len=64, doc_stride=128)


def _pipeline(root, examples_uri: str, model_uri: str, destination: str, min_f1: float,
              name: str = "evaluate_and_push", enable_cache: bool = False):
    examples = tfx.dsl.Importer(
        source_uri=examples_uri, artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'},
    ).with_id("examples")
    model = tfx.dsl.Importer(
        source_uri=model_uri, artifact_type=tfx.types.standard_artifacts.Model,
    ).with_id("model")
    evaluator = QaEvaluator(examples.outputs["result"], model.outputs["result"],
                            TASK_LIBRARY_SPEC, min_f1=min_f1)
    pusher = TFLitePusher(model.outputs["result"], evaluator.outputs["blessing"],
                          evaluator.outputs["evaluation"], destination)
    return tfx.dsl.Pipeline(
        pipeline_name=name,
        pipeline_root=str(root / "pipeline_root"),
        components=[examples, model, evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")),
    )


def _pushed_models(root):
    import ml_metadata as mlmd

    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(root / "metadata.sqlite"))
    store = mlmd.MetadataStore(config)
    artifacts = sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id)
    return [{k: (v.int_value if v.HasField("int_value") else v.string_value)
             for k, v in a.custom_properties.items()} for a in artifacts]


def test_the_pipeline_pushes_once_records_it_in_mlmd_and_reruns_idempotently(tmp_path):
    vocab = write_vocab(tmp_path)
    examples = examples_artifact(tmp_path, EVAL_QUESTIONS)
    model = model_artifact(tmp_path, vocab, "houston", 0, seq_len=384)
    destination = str(tmp_path / "serving")
    for _ in range(2):
        tfx.orchestration.LocalDagRunner().run(
            _pipeline(tmp_path, examples.uri, model.uri, destination, min_f1=50.0))
    pushes = _pushed_models(tmp_path)
    assert [p["pushed"] for p in pushes] == [1, 1]
    assert [p["pushed_version"] for p in pushes] == ["1", "1"]
    assert pushes[0]["pushed_destination"] == os.path.join(destination, "1")
    assert os.listdir(destination) == ["1"]
    with open(os.path.join(destination, "1", "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["serving_config"] == {
        "seq_len": 384, "query_len": 64, "doc_stride": 128, "do_lower_case": True,
        "version_2_with_negative": False, "null_score_diff_threshold": 0.0}
    assert "shipped tflite_dynamic loads in the Task Library's BertQuestionAnswerer" in (
        manifest["blessing_reasons"])
    with open(os.path.join(destination, "1", "model_card.md")) as f:
        card = f.read()
    assert card.startswith("# Model card") and "tflite_dynamic: compatible" in card
    assert "No accuracy gate" not in card  # min_f1 50 was set


def test_the_pipeline_does_not_push_an_unblessed_model(tmp_path):
    vocab = write_vocab(tmp_path)
    examples = examples_artifact(tmp_path, EVAL_QUESTIONS)
    model = model_artifact(tmp_path, vocab, "houston", 0, seq_len=384)
    destination = str(tmp_path / "serving")
    tfx.orchestration.LocalDagRunner().run(
        _pipeline(tmp_path, examples.uri, model.uri, destination, min_f1=90.0))
    assert [p["pushed"] for p in _pushed_models(tmp_path)] == [0]
    assert not os.path.exists(destination)


def test_each_pipelines_exit_status_is_its_own_push_and_a_cached_push_counts(tmp_path):
    """Two pipelines in one ML Metadata store: "good" pushes, then "gated" is not blessed;
    each run's exit status is its own pipeline's last push, and a rerun of "good" whose
    Pusher comes from the cache (the push of its first run) exits 0."""
    from pipelines import report
    from pipelines.config import PipelineConfig

    vocab = write_vocab(tmp_path)
    examples = examples_artifact(tmp_path, EVAL_QUESTIONS)
    model = model_artifact(tmp_path, vocab, "houston", 0, seq_len=384)
    configs = {name: PipelineConfig(pipeline_name=name, pipeline_root=str(tmp_path / "root"),
                                    metadata_path=str(tmp_path / "metadata.sqlite"))
               for name in ("good", "gated")}

    def run(name: str, min_f1: float) -> int:
        tfx.orchestration.LocalDagRunner().run(_pipeline(
            tmp_path, examples.uri, model.uri, str(tmp_path / name), min_f1, name,
            enable_cache=True))
        return report.exit_status(configs[name])

    assert run("good", 50.0) == report.EXIT_PUSHED
    assert run("gated", 100.0) == report.EXIT_NOT_BLESSED
    assert report.exit_status(configs["good"]) == report.EXIT_PUSHED  # not "gated"'s push
    assert run("good", 50.0) == report.EXIT_PUSHED
    summary = report.run_summary(configs["good"])
    assert summary.executions["TFLitePusher"] == ["COMPLETE", "CACHED"]
    assert [p["pushed"] for p in summary.pushed] == [1, 1]
    assert summary.pushed[0]["uri"] == summary.pushed[1]["uri"]  # the cached push
    assert [p["pushed"] for p in report.run_summary(configs["gated"]).pushed] == [0]
