"""SquadExampleGen as a TFX component: its defaults, and a real local TFX pipeline."""

import gzip
import json

from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from components.squad_example_gen.component import SquadExampleGen
from tests.squad_example_gen.example_gen_runs import read_report, read_split


def _output_config(gen: SquadExampleGen) -> example_gen_pb2.Output:
    return proto_utils.json_to_proto(gen.exec_properties["output_config"],
                                     example_gen_pb2.Output())


def test_defaults_read_every_json_file_and_hash_split_on_the_passage():
    gen = SquadExampleGen(input_base="/data/squad")
    assert isinstance(gen, FileBasedExampleGen)  # so runners use the span-resolving driver
    input_config = proto_utils.json_to_proto(gen.exec_properties["input_config"],
                                             example_gen_pb2.Input())
    assert [(s.name, s.pattern) for s in input_config.splits] == [("single_split", "*.json*")]
    split_config = _output_config(gen).split_config
    assert [(s.name, s.hash_buckets) for s in split_config.splits] == [("train", 2), ("eval", 1)]
    assert split_config.partition_feature_name == "context"
    assert gen.exec_properties["skip_invalid"] is False
    assert gen.outputs["examples"].type is standard_artifacts.Examples


def test_a_given_hash_split_is_keyed_on_the_passage_and_the_given_config_is_not_changed():
    given = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=9),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
    ]))
    gen = SquadExampleGen(input_base="/data", output_config=given)
    assert _output_config(gen).split_config.partition_feature_name == "context"
    assert not given.split_config.HasField("partition_feature_name")
    given.split_config.partition_feature_name = "title"
    assert _output_config(SquadExampleGen(input_base="/data", output_config=given)) == given


def test_input_splits_by_pattern_give_the_output_splits():
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="train", pattern="train-*.json"),
        example_gen_pb2.Input.Split(name="eval", pattern="dev-*.json"),
    ])
    gen = SquadExampleGen(input_base="/data", input_config=input_config, skip_invalid=True)
    assert _output_config(gen) == example_gen_pb2.Output()
    assert gen.exec_properties["skip_invalid"] is True


def _write_articles(path, articles):
    """Writes a SQuAD file of `articles` (gzip-compressed if the name ends with .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"version": "v2.0", "data": articles}).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_runs_in_a_local_tfx_pipeline_reading_the_span_given_by_range_config(data_dir, tmp_path):
    fixture = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    articles = json.loads(fixture.read_text(encoding="utf-8"))["data"]
    input_base = tmp_path / "input"
    # span 1: article 0 (train) and 1 (eval); span 2 (the latest): articles 2 and 3.
    for span, (train, eval_) in ((1, articles[0:2]), (2, articles[2:4])):
        _write_articles(input_base / f"span-{span}" / "train" / "part.json", [train])
        _write_articles(input_base / f"span-{span}" / "eval" / "part.json.gz", [eval_])
    bad_article = {"title": "Bad", "paragraphs": [{"context": "A passage.", "qas": [
        {"id": "bad-start", "question": "Q?", "answers": [{"text": "A", "answer_start": 99}]}]}]}
    _write_articles(input_base / "span-1" / "train" / "bad.json", [bad_article])
    gen = SquadExampleGen(
        input_base=str(input_base),
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="train", pattern="span-{SPAN}/train/*"),
            example_gen_pb2.Input.Split(name="eval", pattern="span-{SPAN}/eval/*"),
        ]),
        range_config=range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=1, end_span_number=1)),
        skip_invalid=True,
    )
    metadata_path = str(tmp_path / "metadata.sqlite")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="squad-example-gen-test",
        pipeline_root=str(tmp_path / "root"),
        components=[gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    [mlmd_artifact] = store.get_artifacts_by_type(standard_artifacts.Examples.TYPE_NAME)
    examples = artifact_utils.deserialize_artifact(
        store.get_artifact_type(standard_artifacts.Examples.TYPE_NAME), mlmd_artifact)
    assert examples.get_int_custom_property("span") == 1
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    for split, article in (("train", articles[0]), ("eval", articles[1])):
        expected = {q["id"] for p in article["paragraphs"] for q in p["qas"]}
        assert {e.id for e in read_split(examples, split)} == expected
    num_questions = sum(len(p["qas"]) for a in articles[:2] for p in a["paragraphs"])
    assert examples.get_int_custom_property("num_examples") == num_questions
    assert examples.get_int_custom_property("num_skipped") == 1
    assert examples.get_string_custom_property("file_format") == "tfrecords_gzip"
    report = read_report(examples)
    assert report["num_questions"] == num_questions + 1
    assert [(r["question_id"], r["field"]) for r in report["skipped"]] == [
        ("bad-start", "answers[0].answer_start")
    ]
