"""Scheduled retraining in real local runs (LocalDagRunner, ML Metadata), as a team runs it:
a new span of questions arrives before each run.

One pipeline with `training_spans=2` and a fixed evaluation set lives through five runs:
1-3. spans 1, 2 and 3 arrive, one per run: run 3 trains on spans 2 and 3 only (the windows
   its Trainer read, from ML Metadata), and every run is evaluated on the same questions;
4. no new span: the run stops before training, nothing is trained or pushed, exit status 5;
5. the same with `force_retrain`: it trains and pushes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import ml_metadata as mlmd
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.qa import contracts, encoders, synth
from pipelines import report, run_console
from pipelines.config import PipelineConfig
from pipelines.demo import DEMO_FACTS_PER_PASSAGE

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spans")]

# Few steps of a tiny encoder on short windows: the runs test which data is read.
SPEC = {"seq_len": 128, "query_len": 32, "doc_stride": 64, "default_batch_size": 8,
        "predict_batch_size": 16, "learning_rate": 1e-3, "distribution_strategy": "off"}
QUESTIONS = 30
FIXED_EVAL = "fixed_eval/*.json"


def _write_span(data_root: pathlib.Path, name: str, seed: int, prefix: str) -> None:
    """Synthetic questions under `data_root/name/{train,eval}`, ids prefixed (`s2-...`)."""
    paths = synth.make_synthetic_squad(str(data_root / name), n=QUESTIONS, seed=seed,
                                       eval_fraction=0.3,
                                       facts_per_passage=DEMO_FACTS_PER_PASSAGE)
    for path in paths.values():
        data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    qa["id"] = f"{prefix}-{qa['id']}"
        pathlib.Path(path).write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    encoder = str(root / "encoder")
    encoders.make_encoder(encoder, tf_format=encoders.TF1, seed=0)
    _write_span(root / "data", "fixed", seed=9, prefix="fixed")
    os.rename(root / "data" / "fixed" / "eval", root / "data" / "fixed_eval")
    config = PipelineConfig(
        pipeline_name="spans", pipeline_root=str(root / "pipeline"),
        data_root=str(root / "data"), train_pattern="span-{SPAN}/train/*.json",
        eval_pattern="span-{SPAN}/eval/*.json", push_destination=str(root / "serving"),
        spec={**SPEC, "uri": encoder}, train_steps=4, eval_steps=1, min_f1=0,
        max_regression=100, max_quantization_drop=100, require_task_library=False,
        with_data_validation=False, training_spans=2, fixed_eval_pattern=FIXED_EVAL)
    return root, config


def _store(config: PipelineConfig) -> mlmd.MetadataStore:
    return mlmd.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(
        config.resolved_metadata_path()))


def _executions(store, node: str) -> list:
    context = store.get_context_by_type_and_name("node", f"spans.{node}")
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _artifacts(store, execution, key: str, event_type) -> list:
    events = [e for e in store.get_events_by_execution_ids([execution.id])
              if e.type == event_type and e.path.steps[0].key == key]
    return store.get_artifacts_by_id([e.artifact_id for e in events])


def _span_prefixes(windows_uri: str, split: str) -> set[str]:
    files = tf.io.gfile.glob(os.path.join(windows_uri, f"Split-{split}", "*"))
    ids = set()
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        ids.add(example.features.feature["example_id"].bytes_list.value[0].decode())
    return {i.split("-")[0] for i in ids}


def _evaluated_ids(evaluation_uri: str) -> set[str]:
    path = os.path.join(evaluation_uri, contracts.PREDICTIONS_FILE)
    return set(json.loads(pathlib.Path(path).read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def three_runs(workspace):
    root, config = workspace
    statuses = []
    for span in (1, 2, 3):
        _write_span(root / "data", f"span-{span}", seed=span, prefix=f"s{span}")
        statuses.append(run_console.run_and_report(config))
    return statuses


def test_each_run_trains_on_the_last_two_spans_and_evaluates_on_the_fixed_set(
        workspace, three_runs):
    _, config = workspace
    assert three_runs == [report.EXIT_PUSHED] * 3
    store = _store(config)
    trainers = _executions(store, "Trainer")
    read = [_span_prefixes(_artifacts(store, t, "examples", mlmd.proto.Event.INPUT)[0].uri,
                           "train") for t in trainers]
    assert read == [{"s1"}, {"s1", "s2"}, {"s2", "s3"}]
    evaluations = [_artifacts(store, e, "evaluation", mlmd.proto.Event.OUTPUT)[0].uri
                   for e in _executions(store, report.EVALUATOR_NODE)]
    evaluated = [_evaluated_ids(uri) for uri in evaluations]
    assert len(evaluated) == 3 and evaluated[0] and all(ids == evaluated[0] for ids in evaluated)
    assert {i.split("-")[0] for i in evaluated[0]} == {"fixed"}
    # The model card says which spans trained and which questions evaluated.
    card = json.loads(pathlib.Path(evaluations[-1], contracts.MODEL_CARD_JSON_FILE).read_text())
    trained = card["data"]["training_spans"]
    assert sorted(trained["train"]) == ["2", "3"] and all(n > 0 for n in trained["train"].values())
    assert card["data"]["evaluation_set"]["questions"] == len(evaluated[0])
    # Its QA statistics beside the previous model's: run 3's baseline is run 2's model.
    previous = json.loads(pathlib.Path(evaluations[-2], contracts.MODEL_CARD_JSON_FILE)
                          .read_text())["data"]["qa_statistics"]["this_run"]
    statistics = card["data"]["qa_statistics"]
    assert statistics["previous"] == previous and statistics["this_run"] != previous
    assert statistics["this_run"]["train"]["questions"] == sum(trained["train"].values())


def test_no_new_span_trains_nothing_and_forcing_a_retrain_trains(workspace, three_runs, capfd):
    _, config = workspace
    capfd.readouterr()
    pushed_before = report.run_summary(config).pushed
    assert run_console.run_and_report(config) == report.EXIT_NO_NEW_DATA
    screen = capfd.readouterr().out
    assert "FAILED" not in screen, screen
    assert "Trainer stopped: No new training data" in screen and "force_retrain" in screen
    summary = report.run_summary(config)
    assert summary.executions["Trainer"][-1] == "FAILED"
    # The resolver's line names the model it gave the Trainer (resolved inline, locally).
    base = _artifacts(_store(config), _executions(_store(config), "Trainer")[-1], "base_model",
                      mlmd.proto.Event.INPUT)[0].uri
    assert any(line.endswith(f": baseline {base}") for line in screen.splitlines()
               if "latest_blessed_model_resolver complete" in line), screen
    assert summary.pushed == pushed_before and summary.executions["TFLitePusher"] == [
        "COMPLETE"] * 3

    forced = dataclasses.replace(config, force_retrain=True)
    assert run_console.run_and_report(forced) == report.EXIT_PUSHED
    summary = report.run_summary(config)
    assert summary.executions["Trainer"][-1] == "COMPLETE"
    assert summary.last_push["pushed"] == 1 and len(summary.pushed) == 4
