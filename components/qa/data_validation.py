"""Data validation of the questions: the reviewed schema's SQuAD rules, and the anomalies
that TFX's ExampleValidator found, read and worded once for every place that shows them.

TensorFlow-free (`tensorflow_metadata`'s protos only; TensorFlow is imported only to read a
remote artifact, TFDV only to infer a schema): the run's console, the end-of-run report, the
model card and the Trainer's stop all call `read_anomalies` and word an `Anomaly` alike.

- ExampleValidator's ExampleAnomalies artifact holds one `SchemaDiff.pb` (an `Anomalies`
  proto) per split under `Split-<split>/`; `read_anomalies` gives one `Anomaly` per reason.
- `squad_schema` turns a schema inferred from the questions' statistics into one a person
  can approve for every later span: no list of values for free text (ids, titles,
  passages, questions, answers), one value for the single-valued features, any number of
  answers (at least one unless the data has unanswerable questions: SQuAD 2.0).
- `DataAnomaliesError` is the Trainer's refusal to train on data with anomalies
  (`stop_on_anomalies`); its message names each anomaly.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components.qa import squad

# ExampleValidator's file in each split directory of its ExampleAnomalies artifact.
ANOMALIES_FILE = "SchemaDiff.pb"
SPLIT_DIR_PREFIX = "Split-"
# `Anomaly.feature` of an anomaly of a whole split (not of one feature).
DATASET = "(dataset)"
# What the model card says when the evaluator got no anomalies (validation did not run).
NOT_VALIDATED = "not validated"
NO_ANOMALIES = "no anomalies"
# The start of `DataAnomaliesError`'s message: the run's console recognises the stop by it
# where the error arrives as text (a task's output on Vertex AI or Kubeflow).
STOP_MESSAGE = "Stopped before training on data anomalies"

# The features a question has exactly one value of (an empty title is one value).
SINGLE_VALUED = (squad.ID, squad.TITLE, squad.CONTEXT, squad.QUESTION, squad.IS_IMPOSSIBLE)
# Every answer of a question (several in SQuAD's dev sets; none when unanswerable).
ANSWER_LISTS = (squad.ANSWER_TEXTS, squad.ANSWER_STARTS)
# SQuAD 2.0's plausible answers of an unanswerable question (none for the others).
PLAUSIBLE_LISTS = (squad.PLAUSIBLE_ANSWER_TEXTS, squad.PLAUSIBLE_ANSWER_STARTS)
# Character offsets into the passage.
OFFSETS = (squad.ANSWER_STARTS, squad.PLAUSIBLE_ANSWER_STARTS)


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One reason ExampleValidator gave for one feature (or the whole split)."""

    split: str
    feature: str
    kind: str  # `AnomalyInfo.Type`'s name, e.g. FEATURE_TYPE_LOW_NUMBER_VALUES
    description: str  # its short description, e.g. "Missing values"

    def __str__(self) -> str:
        return f"{self.split}: {self.feature}: {self.kind} ({self.description})"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def split_names(encoded: str) -> list[str]:
    """An artifact's `split_names` property (TFX writes a JSON list) as a list."""
    return list(json.loads(encoded or "[]"))


def _read_bytes(path: str) -> bytes:
    if "://" in path:  # gs:// and other file systems through TensorFlow
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def split_anomalies(split: str, proto: anomalies_pb2.Anomalies) -> list[Anomaly]:
    """The anomalies of one split's `Anomalies` proto, one per reason, by feature name."""
    found = []
    if proto.data_missing:
        found.append(Anomaly(split, DATASET, "DATA_MISSING", "no examples in this split"))
    infos = sorted(proto.anomaly_info.items())
    if proto.HasField("dataset_anomaly_info"):
        infos.append((DATASET, proto.dataset_anomaly_info))
    for feature, info in infos:
        reasons = info.reason or [anomalies_pb2.AnomalyInfo.Reason(
            type=anomalies_pb2.AnomalyInfo.UNKNOWN_TYPE,
            short_description=info.short_description or info.description)]
        for reason in reasons:
            found.append(Anomaly(split, feature, anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                                 reason.short_description or reason.description))
    return found


def _split_dirs(uri: str) -> list[str]:
    """The splits an artifact's directory holds (`Split-<split>/`), sorted."""
    if "://" in uri:
        import tensorflow as tf

        names = [n.rstrip("/") for n in tf.io.gfile.listdir(uri)]
    else:
        names = os.listdir(uri)
    return sorted(n[len(SPLIT_DIR_PREFIX):] for n in names if n.startswith(SPLIT_DIR_PREFIX))


def read_anomalies(uri: str, splits: Sequence[str] = ()) -> list[Anomaly]:
    """Every anomaly in an ExampleAnomalies artifact at `uri` (its splits in this order; by
    default the splits its directory holds).

    Raises:
      FileNotFoundError: a split has no `SchemaDiff.pb` (names the file).
    """
    found = []
    for split in splits or _split_dirs(uri):
        path = os.path.join(uri, SPLIT_DIR_PREFIX + split, ANOMALIES_FILE)
        try:
            data = _read_bytes(path)
        except OSError as error:
            raise FileNotFoundError(f"No anomalies file {path} in the ExampleAnomalies "
                                    f"artifact ({error})") from error
        found += split_anomalies(split, anomalies_pb2.Anomalies.FromString(data))
    return found


def summary(anomalies: Sequence[Anomaly]) -> str:
    """'no anomalies', '1 anomaly', '3 anomalies'."""
    if not anomalies:
        return NO_ANOMALIES
    return f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}"


def describe(anomalies: Sequence[Anomaly]) -> list[str]:
    """A headline (`summary`) and one line per anomaly, as the console and report show them."""
    return [summary(anomalies), *(str(a) for a in anomalies)]


class DataAnomaliesError(RuntimeError):
    """The Trainer refused to train: the questions have anomalies and stop_on_anomalies is on."""

    def __init__(self, anomalies: Sequence[Anomaly]):
        self.anomalies = list(anomalies)
        super().__init__(
            f"{STOP_MESSAGE} (stop_on_anomalies): {summary(self.anomalies)} against the "
            f"schema: {'; '.join(str(a) for a in self.anomalies)}. Nothing was trained or "
            "pushed: fix the data, or review and approve a new schema (`mbqa schema`), or set "
            "stop_on_anomalies=false")


def is_stop(error: BaseException) -> bool:
    """Whether `error` (or the output lines it carries, `tail`) is the stop on anomalies."""
    texts = [str(error), *getattr(error, "tail", [])]
    return isinstance(error, DataAnomaliesError) or any(STOP_MESSAGE in t for t in texts)


# ---- the schema a person approves -------------------------------------------------------


def _min_num_values(statistics: Iterable[statistics_pb2.DatasetFeatureStatisticsList],
                    feature: str) -> int | None:
    """The fewest values of `feature` in one question, over every split's statistics."""
    counts = []
    for stats_list in statistics:
        for dataset in stats_list.datasets:
            for stats in dataset.features:
                if stats.path.step == [feature] or stats.name == feature:
                    kind = stats.WhichOneof("stats")
                    if kind in ("num_stats", "string_stats"):
                        counts.append(getattr(stats, kind).common_stats.min_num_values)
    return min(counts) if counts else None


def squad_schema(schema: schema_pb2.Schema,
                 statistics: Sequence[statistics_pb2.DatasetFeatureStatisticsList],
                 ) -> schema_pb2.Schema:
    """A copy of an inferred `schema` with what SQuAD allows in any later span.

    Free text never has a list of allowed values (TFDV infers one from few distinct
    values); id, title (possibly empty), context, question and is_impossible have exactly
    one value each, is_impossible 0 or 1; answer_texts/answer_starts any number of values,
    at least 1 unless the `statistics` show a question without an answer (SQuAD 2.0);
    the plausible answers any number; character offsets are >= 0.
    """
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    del schema.string_domain[:]
    has_unanswerable = _min_num_values(statistics, squad.ANSWER_TEXTS) == 0
    for feature in schema.feature:
        feature.ClearField("domain")
        if feature.WhichOneof("domain_info") == "string_domain":
            feature.ClearField("string_domain")
        name = feature.name
        if name in SINGLE_VALUED:
            feature.ClearField("value_count")
            feature.shape.CopyFrom(schema_pb2.FixedShape(dim=[schema_pb2.FixedShape.Dim(size=1)]))
        elif name in ANSWER_LISTS + PLAUSIBLE_LISTS:
            feature.ClearField("shape")
            feature.value_count.Clear()
            feature.value_count.min = int(name in ANSWER_LISTS and not has_unanswerable)
        if name == squad.IS_IMPOSSIBLE:
            feature.int_domain.CopyFrom(schema_pb2.IntDomain(min=0, max=1))
        elif name in OFFSETS:
            feature.int_domain.CopyFrom(schema_pb2.IntDomain(min=0))
    return schema


def infer_squad_schema(
    statistics: Sequence[statistics_pb2.DatasetFeatureStatisticsList],
) -> schema_pb2.Schema:
    """The schema TFX's SchemaGen infers from these splits' statistics (the first split's,
    updated by the others'), made what SQuAD allows (`squad_schema`). Imports TFDV."""
    import tensorflow_data_validation as tfdv

    if not statistics:
        raise ValueError("No statistics to infer a schema from")
    schema = tfdv.infer_schema(statistics[0], infer_feature_shape=True)
    for stats in statistics[1:]:
        schema = tfdv.update_schema(schema, stats, infer_feature_shape=True)
    return squad_schema(schema, statistics)
