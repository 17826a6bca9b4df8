"""The approved schema in real local runs (LocalDagRunner, ML Metadata), as a team uses it:

1. a run infers the questions' schema; `mbqa schema` writes it for review, SQuAD 1.1 and
   2.0 alike; with it as `schema_file`, a later span of the same kind of data (new
   passages, titles and ids, SQuAD's own dev questions with several answers each, and for
   2.0 unanswerable ones) validates without anomalies. These runs are the pipeline's
   validation nodes only (the pipeline of `create_pipeline` cut after its ExampleValidator:
   SquadExampleGen, StatisticsGen, SchemaGen, ExampleValidator).
2. the whole pipeline with a schema approved on SQuAD 1.1 data, given a span with
   unanswerable questions (empty answer lists, which the 1.1 schema does not allow): it
   stops before the Trainer, the anomaly on the screen, exit status 4, nothing trained or
   pushed; with `stop_on_anomalies=false` the same anomaly is on the screen, in the report
   and in the pushed model card, and the run trains and pushes.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest

from components.qa import data_validation, encoders, synth
from pipelines import cli, report, run_console
from pipelines.config import PipelineConfig
from pipelines.demo import DEMO_FACTS_PER_PASSAGE

# One worker runs the module: its runs share the encoder and the approved 1.1 schema.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("data_validation"),
              # TFX's note on the validation-only runs (nodes of the whole pipeline):
              pytest.mark.filterwarnings("ignore:Component .* is not found from the registry")]

SQUAD_V2_DEV = pathlib.Path(__file__).parents[1] / "data" / "squad" / (
    "dev-v2.0-first5articles.official.json")
# Few steps of a tiny encoder on short windows: the runs test the wiring, not the model.
SPEC = {"seq_len": 128, "query_len": 32, "doc_stride": 64, "default_batch_size": 8,
        "predict_batch_size": 16, "learning_rate": 1e-3, "distribution_strategy": "off"}
QUESTIONS = 40
# What a 1.1 schema says of a span with unanswerable questions (empty answer lists).
LOW_NUMBER = "FEATURE_TYPE_LOW_NUMBER_VALUES"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("encoder") / "tf1")
    encoders.make_encoder(path, tf_format=encoders.TF1, seed=0)
    return path


def _config(root: pathlib.Path, encoder: str, **settings) -> PipelineConfig:
    return PipelineConfig(
        pipeline_name="data-validation", pipeline_root=str(root / "pipeline"),
        data_root=str(root / "data"), train_pattern="span-{SPAN}/train/*.json",
        eval_pattern="span-{SPAN}/eval/*.json", push_destination=str(root / "serving"),
        spec={**SPEC, "uri": encoder}, train_steps=5, eval_steps=1, min_f1=0,
        max_quantization_drop=100, require_task_library=False, **settings)


def _synth_span(root: pathlib.Path, span: int, version: str, seed: int) -> None:
    synth.make_synthetic_squad(str(root / "data" / f"span-{span}"), n=QUESTIONS, seed=seed,
                               unanswerable_fraction=0.3 if version == "2.0" else 0.0,
                               facts_per_passage=DEMO_FACTS_PER_PASSAGE)


def _squad_dev_span(root: pathlib.Path, span: int, version: str, seed: int) -> None:
    """New synthetic training questions, and SQuAD's own dev questions (real titles,
    several answers each; for 1.1 without the unanswerable ones) as the eval split."""
    synth.make_synthetic_squad(str(root / "data" / f"span-{span}" / "new"), n=QUESTIONS,
                               seed=seed, unanswerable_fraction=0.3 if version == "2.0" else 0,
                               facts_per_passage=DEMO_FACTS_PER_PASSAGE)
    shutil.move(root / "data" / f"span-{span}" / "new" / "train", root / "data" / f"span-{span}")
    shutil.rmtree(root / "data" / f"span-{span}" / "new")
    dev = json.loads(SQUAD_V2_DEV.read_text(encoding="utf-8"))
    if version == "1.1":
        dev["version"] = "1.1"
        for article in dev["data"]:
            for paragraph in article["paragraphs"]:
                paragraph["qas"] = [{k: v for k, v in qa.items() if k != "is_impossible"}
                                    for qa in paragraph["qas"] if not qa["is_impossible"]]
    (root / "data" / f"span-{span}" / "eval").mkdir()
    (root / "data" / f"span-{span}" / "eval" / "dev.json").write_text(json.dumps(dev))


def _run_validation_only(config: PipelineConfig) -> None:
    """The pipeline as `create_pipeline` builds it, cut after its ExampleValidator (the
    nodes after it detached), run with TFX's LocalDagRunner."""
    from absl import logging
    from tfx import v1 as tfx

    from pipelines.pipeline import create_pipeline

    logging.set_verbosity(logging.INFO)  # the component lines, as `run_local` does
    whole = create_pipeline(config)
    keep = ("SquadExampleGen", "StatisticsGen", "SchemaGen", report.VALIDATOR_NODE)
    for node in whole.components:
        if node.id not in keep:
            for upstream in list(node.upstream_nodes):
                node.remove_upstream_node(upstream)
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=[node for node in whole.components if node.id in keep],
        enable_cache=config.enable_cache,
        metadata_connection_config=whole.metadata_connection_config,
        beam_pipeline_args=whole.beam_pipeline_args))


def _run(config: PipelineConfig, capfd, validation_only: bool = False) -> tuple[int, str]:
    """`mbqa run`'s console run of `config` (or of its validation nodes): status, screen."""
    run = (lambda: _run_validation_only(config)) if validation_only else None
    status = run_console.run_and_report(config, run=run)
    return status, capfd.readouterr().out


def _last_anomalies(config: PipelineConfig) -> list[data_validation.Anomaly]:
    uri, splits = report.run_summary(config).anomalies[-1]
    return data_validation.read_anomalies(uri, splits)


def _mbqa_schema(config: PipelineConfig, out: pathlib.Path, monkeypatch, *flags) -> int:
    for name, value in config.to_env().items():
        monkeypatch.setenv(name, value)
    return cli.main(["schema", "--out", str(out), *flags])


def _approve(root: pathlib.Path, encoder: str, version: str, capfd) -> str:
    """A first run on span 1 (schema inferred), then `mbqa schema`; the schema's path."""
    config = _config(root, encoder)
    _synth_span(root, 1, version, seed=1)
    status, screen = _run(config, capfd, validation_only=True)
    assert report.run_summary(config).executions[report.VALIDATOR_NODE] == ["COMPLETE"], screen
    assert "SchemaGen complete" in screen, screen
    assert "inferred from this run's statistics" in screen, screen
    out = root / "approved" / "schema.pbtxt"
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _mbqa_schema(config, out, monkeypatch) == 0
    printed = capfd.readouterr().out
    assert f"to {out}" in printed and f"schema_file={out}" in printed, printed
    return str(out)


@pytest.fixture(scope="module")
def approved(tmp_path_factory, encoder):
    """`approved(version, capfd)`: (workspace, approved schema) of that SQuAD version, made
    once for the module (the 1.1 one serves both tests)."""
    done = {}

    def get(version: str, capfd) -> tuple[pathlib.Path, str]:
        if version not in done:
            root = tmp_path_factory.mktemp(f"approved_{version}")
            done[version] = root, _approve(root, encoder, version, capfd)
        return done[version]

    return get


def _schema_feature(path: str, name: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(pathlib.Path(path).read_text(), schema_pb2.Schema())
    assert not schema.string_domain, "free text must not have a list of values"
    return {f.name: f for f in schema.feature}[name]


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_mbqa_schema_writes_a_schema_that_the_same_kind_of_data_passes(
        version, approved, encoder, monkeypatch, capfd):
    root, schema_file = approved(version, capfd)
    answers = _schema_feature(schema_file, "answer_texts")
    assert answers.value_count.min == (1 if version == "1.1" else 0)
    assert not answers.value_count.HasField("max") and not answers.HasField("shape")
    assert _schema_feature(schema_file, "title").shape.dim[0].size == 1
    assert _schema_feature(schema_file, "is_impossible").int_domain.max == 1
    # Never overwritten without --overwrite.
    written = pathlib.Path(schema_file).read_text()
    assert _mbqa_schema(_config(root, encoder), pathlib.Path(schema_file), monkeypatch) == 2
    assert "--overwrite" in capfd.readouterr().err
    assert pathlib.Path(schema_file).read_text() == written

    _squad_dev_span(root, 2, version, seed=2)
    config = _config(root, encoder, schema_file=schema_file)
    status, screen = _run(config, capfd, validation_only=True)
    assert _last_anomalies(config) == [], screen
    assert any("] SchemaGen complete in " in line and line.endswith(f": imported {schema_file}")
               for line in screen.splitlines()), screen
    assert "ExampleValidator complete" in screen and "no anomalies" in screen, screen
    assert "Data anomalies:     no anomalies" in screen, screen


def test_anomalies_stop_the_run_before_training_or_are_reported(
        approved, tmp_path, encoder, capfd):
    _, schema_file = approved("1.1", capfd)
    capfd.readouterr()
    _synth_span(tmp_path, 1, "2.0", seed=3)  # unanswerable questions: empty answer lists
    config = _config(tmp_path, encoder, schema_file=schema_file)  # stop_on_anomalies: auto
    status, screen = _run(config, capfd)
    assert status == report.EXIT_DATA_ANOMALIES, screen
    validator = [line for line in screen.splitlines() if "ExampleValidator" in line]
    assert any("anomalies" in line for line in validator), screen
    named = [line for line in screen.splitlines()
             if "answer_texts" in line and LOW_NUMBER in line]
    assert any("train: answer_texts: " + LOW_NUMBER in line for line in named), screen
    assert "FAILED" not in screen, screen
    stop = [line for line in screen.splitlines() if "Trainer stopped: " in line]
    assert len(stop) == 1 and data_validation.STOP_MESSAGE in stop[0], screen
    assert "answer_texts" in stop[0] and LOW_NUMBER in stop[0], stop
    executions = report.run_summary(config).executions
    assert executions["Trainer"] == ["FAILED"], executions
    assert "QaEvaluator" not in executions and "TFLitePusher" not in executions, executions
    assert not os.path.exists(config.push_destination) or not os.listdir(
        config.push_destination)
    assert report.run_summary(config).pushed == []

    go_on = _config(tmp_path, encoder, schema_file=schema_file, stop_on_anomalies=False)
    status, screen = _run(go_on, capfd)
    assert status == report.EXIT_PUSHED, screen
    assert any("train: answer_texts: " + LOW_NUMBER in line for line in screen.splitlines()
               if "Data anomalies" not in line), screen
    found = _last_anomalies(go_on)
    assert {(a.feature, a.kind) for a in found} == {
        ("answer_texts", LOW_NUMBER), ("answer_starts", LOW_NUMBER)}, found
    assert f"Data anomalies:     {data_validation.summary(found)} (" in screen, screen
    destination = report.run_summary(go_on).last_push["pushed_destination"]
    card = (pathlib.Path(destination) / "model_card.md").read_text()
    assert f"Data anomalies (ExampleValidator): {data_validation.summary(found)}." in card
    assert f"| train | answer_texts | {LOW_NUMBER} | Missing values |" in card
