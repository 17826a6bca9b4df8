"""`components.qa.data_validation` on real artifacts: TFX's StatisticsGen and
ExampleValidator executors on question tf.Examples, the approved schema's SQuAD rules, the
anomalies as every place words them (console line, report, Trainer's stop)."""

from __future__ import annotations

import io

import pytest
from google.protobuf import text_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_validator import executor as validator_executor
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from components.qa import data_validation, squad
from components.trainer import executor as trainer_executor
from pipelines import report, run_console
from tests.evaluator.evaluator_fixtures import SPEC, question, write_records

LOW = "FEATURE_TYPE_LOW_NUMBER_VALUES"
# SQuAD 2.0 questions: the train split has an unanswerable one (no answers); a passage
# with several answers in eval, and an empty title.
TRAIN = [question("t0", "houston"), question("t1", None), question("t2", "texas")]
EVAL = [question("e0", "houston"),
        squad.SquadExample(id="e1", title="", context="she was born in houston in texas .",
                           question="where ?", answer_texts=("texas", "in texas"),
                           answer_starts=(27, 24))]


def _context(tmp_path, name: str):
    return base_beam_executor.BaseBeamExecutor.Context(
        tmp_dir=str(tmp_path / "tmp" / name), unique_id=name)


@pytest.fixture(scope="module")
def statistics(tmp_path_factory) -> standard_artifacts.ExampleStatistics:
    """TFX's StatisticsGen executor on the questions above (splits train, eval)."""
    root = tmp_path_factory.mktemp("stats")
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split, questions in (("train", TRAIN), ("eval", EVAL)):
        write_records(f"{examples.uri}/Split-{split}", [squad.to_tf_example(q) for q in questions])
    stats = standard_artifacts.ExampleStatistics()
    stats.uri = str(root / "statistics")
    statistics_executor.Executor(_context(root, "stats")).Do(
        {"examples": [examples]}, {"statistics": [stats]}, {"exclude_splits": "[]"})
    return stats


def _validate(tmp_path, statistics, schema: schema_pb2.Schema,
              ) -> standard_artifacts.ExampleAnomalies:
    """TFX's ExampleValidator executor: the statistics against `schema`."""
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = str(tmp_path / "schema")
    (tmp_path / "schema").mkdir(parents=True)
    (tmp_path / "schema" / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "anomalies")
    validator_executor.Executor(_context(tmp_path, "validate")).Do(
        {"statistics": [statistics], "schema": [schema_artifact]}, {"anomalies": [anomalies]},
        {"exclude_splits": "[]"})
    return anomalies


def _stats_protos(statistics):
    return [stats_artifact_utils.load_statistics(statistics, split).proto()
            for split in ("train", "eval")]


def _as_squad_1_1(schema: schema_pb2.Schema) -> schema_pb2.Schema:
    """The schema a team approved on SQuAD 1.1 data: every question has an answer."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    for feature in schema.feature:
        if feature.name in data_validation.ANSWER_LISTS:
            feature.value_count.min = 1
    return schema


def test_the_approved_schema_allows_what_squad_allows(tmp_path, statistics):
    schema = data_validation.infer_squad_schema(_stats_protos(statistics))
    features = {f.name: f for f in schema.feature}
    assert not schema.string_domain and not any(f.HasField("domain") for f in schema.feature)
    for name in data_validation.SINGLE_VALUED:
        assert [d.size for d in features[name].shape.dim] == [1], name
    for name in data_validation.ANSWER_LISTS + data_validation.PLAUSIBLE_LISTS:
        count = features[name].value_count
        assert count.min == 0 and not count.HasField("max"), name  # unanswerable: none
    assert (features["is_impossible"].int_domain.min,
            features["is_impossible"].int_domain.max) == (0, 1)
    assert features["answer_starts"].int_domain.min == 0
    # The same data (several answers, an empty title, an unanswerable question) passes.
    anomalies = _validate(tmp_path, statistics, schema)
    assert data_validation.read_anomalies(anomalies.uri, anomalies.splits) == []


def test_anomalies_of_a_real_validator_run_are_read_and_worded_once(tmp_path, statistics):
    schema = _as_squad_1_1(data_validation.infer_squad_schema(_stats_protos(statistics)))
    anomalies = _validate(tmp_path, statistics, schema)
    found = data_validation.read_anomalies(anomalies.uri, anomalies.splits)
    assert found == [data_validation.Anomaly("train", "answer_starts", LOW, "Missing values"),
                     data_validation.Anomaly("train", "answer_texts", LOW, "Missing values")]
    lines = ["2 anomalies",
             f"train: answer_starts: {LOW} (Missing values)",
             f"train: answer_texts: {LOW} (Missing values)"]
    assert data_validation.describe(found) == lines
    assert data_validation.describe([]) == ["no anomalies"]
    assert data_validation.read_anomalies(anomalies.uri) == found  # splits of its directory

    # The run's console line and the report read the MLMD artifact the same way.
    mlmd = metadata_store_pb2.Artifact(uri=anomalies.uri)
    mlmd.properties["split_names"].string_value = anomalies.split_names
    assert run_console.artifact_figures("ExampleAnomalies", mlmd) == lines
    out = io.StringIO()
    report.print_anomalies(anomalies.uri, anomalies.splits, out)
    assert out.getvalue().splitlines() == [
        f"Data anomalies:     2 anomalies ({anomalies.uri})", *(f"  {x}" for x in lines[1:])]

    error = data_validation.DataAnomaliesError(found)
    assert str(error).startswith(data_validation.STOP_MESSAGE)
    assert all(str(a) in str(error) for a in found) and "\n" not in str(error)
    assert data_validation.is_stop(error) and data_validation.is_stop(RuntimeError(str(error)))
    assert not data_validation.is_stop(RuntimeError("out of memory"))


def test_the_trainer_refuses_before_training_when_told_to_stop(tmp_path, statistics):
    schema = _as_squad_1_1(data_validation.infer_squad_schema(_stats_protos(statistics)))
    anomalies = _validate(tmp_path, statistics, schema)
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    properties = {trainer_executor.SPEC_KEY: SPEC.to_json(),
                  trainer_executor.STOP_ON_ANOMALIES_KEY: 1}
    with pytest.raises(data_validation.DataAnomaliesError, match="train: answer_texts: "):
        trainer_executor.Executor().Do({"anomalies": [anomalies], "examples": []},
                                       {"model": [model], "model_run": []}, properties)
    assert not (tmp_path / "model").exists()  # nothing trained
    # Without anomalies, or without the setting, the check lets training start.
    clean = _validate(tmp_path / "clean", statistics,
                      data_validation.infer_squad_schema(_stats_protos(statistics)))
    trainer_executor.check_anomalies({"anomalies": [clean]}, properties)
    trainer_executor.check_anomalies({"anomalies": [anomalies]}, {})
