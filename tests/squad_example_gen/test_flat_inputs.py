"""SquadExampleGen on flat inputs: JSON lines and Parquet in the Hugging Face `datasets`
SQuAD layout (one record per question, `answers` = {"text": [...], "answer_start": [...]}),
on real artifacts and real Beam pipelines."""

import contextlib
import dataclasses
import gzip
import json
import logging
import os
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2

from components.qa import squad, squad_json
from tests.squad_example_gen.example_gen_runs import read_report, read_split, run_executor

FIXTURE = pathlib.Path(__file__).parents[1] / "data/squad/dev-v2.0-first5articles.official.json"
NUM_QUESTIONS = 200
NUM_TRAIN = 150  # the first 150 questions are the train split's file, the other 50 eval's
# Each format's two files: (train, eval).
FILES = {
    "nested": ("part-1.json", "part-2.json"),
    "jsonl": ("part-1.jsonl", "part-2.jsonl"),
    "jsonl.gz": ("part-1.jsonl.gz", "part-2.jsonl.gz"),
    "parquet": ("part-1.parquet", "part-2.parquet"),
}
# How `datasets` writes SQuAD to Parquet: `answers` a struct of two list columns.
ANSWERS_TYPE = pa.struct([("text", pa.list_(pa.string())),
                          ("answer_start", pa.list_(pa.int32()))])
DATASETS_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()),
                             ("context", pa.string()), ("question", pa.string()),
                             ("answers", ANSWERS_TYPE)])


def _splits(**patterns: str) -> example_gen_pb2.Input:
    return example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in patterns.items()])


def _first_questions() -> list[tuple[str, str, dict]]:
    """(title, context, qa) of the fixture's first 200 questions, in file order."""
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))["data"]
    questions = [(article["title"], paragraph["context"], qa) for article in data
                 for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return questions[:NUM_QUESTIONS]


def _nested(questions) -> dict:
    """Nested SQuAD JSON of `questions`, without plausible answers: the `datasets` layout
    has none, so leaving them out here makes the three inputs hold the same information
    (and their tf.Examples byte-identical)."""
    data = []
    for title, context, qa in questions:
        if not data or data[-1]["title"] != title:
            data.append({"title": title, "paragraphs": []})
        paragraphs = data[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != context:
            paragraphs.append({"context": context, "qas": []})
        paragraphs[-1]["qas"].append(
            {k: v for k, v in qa.items() if k != "plausible_answers"})
    return {"version": "v2.0", "data": data}


def _datasets_record(title: str, context: str, qa: dict) -> dict:
    """A question as `datasets` holds SQuAD v2: no is_impossible, unanswerable = no answers."""
    return {"id": qa["id"], "title": title, "context": context, "question": qa["question"],
            "answers": {"text": [a["text"] for a in qa["answers"]],
                        "answer_start": [a["answer_start"] for a in qa["answers"]]}}


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _write(directory: pathlib.Path, name: str, questions) -> None:
    path = directory / name
    records = [_datasets_record(*q) for q in questions]
    if name.endswith(".json"):
        path.write_text(json.dumps(_nested(questions), ensure_ascii=False), encoding="utf-8")
    elif name.endswith(".jsonl"):
        path.write_bytes(_jsonl(records))
    elif name.endswith(".jsonl.gz"):
        path.write_bytes(gzip.compress(_jsonl(records)))
    else:
        # Small row groups: the reader goes through several of them.
        pq.write_table(pa.Table.from_pylist(records, schema=DATASETS_SCHEMA), path,
                       row_group_size=64)


def _serialized_by_id(uri: str, split: str) -> list[bytes]:
    """The split's tf.Examples, sorted by question id, serialized deterministically: the
    features are a protobuf map, whose plain serialization may order its keys differently
    from one run to the next for the same example."""
    files = tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*"))
    examples = [tf.train.Example.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    return [e.SerializeToString(deterministic=True)
            for e in sorted(examples, key=lambda e: squad.from_tf_example(e).id)]


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _absl_log():
    handler, logger = _Messages(), logging.getLogger("absl")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each format's input dir and the Examples artifact the executor wrote from it."""
    questions = _first_questions()
    result = {}
    for fmt, (train_name, eval_name) in FILES.items():
        root = tmp_path_factory.mktemp(fmt.replace(".", "_"))
        input_base = root / "input"
        input_base.mkdir()
        _write(input_base, train_name, questions[:NUM_TRAIN])
        _write(input_base, eval_name, questions[NUM_TRAIN:])
        with _absl_log() as messages:
            examples = run_executor(root, input_base,
                                    input_config=_splits(train=train_name, eval=eval_name))
        result[fmt] = (input_base, examples, messages)
    return result


def test_every_format_writes_the_same_tf_examples(runs):
    nested = runs["nested"][1]
    assert json.loads(nested.split_names) == ["train", "eval"]
    for split, count in (("train", NUM_TRAIN), ("eval", NUM_QUESTIONS - NUM_TRAIN)):
        expected = _serialized_by_id(nested.uri, split)
        assert len(expected) == count
        for fmt in ("jsonl", "jsonl.gz", "parquet"):
            assert _serialized_by_id(runs[fmt][1].uri, split) == expected, (fmt, split)


def test_every_format_gives_the_fixture_questions_without_plausible_answers(runs):
    fixture, _ = squad_json.read_squad_examples(str(FIXTURE))
    expected = sorted((dataclasses.replace(e, plausible_answer_texts=(),
                                           plausible_answer_starts=())
                       for e in fixture[:NUM_QUESTIONS]), key=lambda e: e.id)
    assert sum(e.is_impossible for e in expected) == 109
    assert any(not e.context.isascii() for e in expected)
    for fmt, (input_base, examples, _) in runs.items():
        written = read_split(examples, "train") + read_split(examples, "eval")
        assert sorted(written, key=lambda e: e.id) == expected, fmt
        # The parser (what `mbqa predict` and the Trainer's tests read) agrees.
        parsed, invalid = squad_json.read_squad_examples(
            [str(input_base / name) for name in FILES[fmt]])
        assert invalid == [] and sorted(parsed, key=lambda e: e.id) == expected, fmt
        report = read_report(examples)
        assert (report["num_questions"], report["num_examples"], report["num_skipped"]) == (
            NUM_QUESTIONS, NUM_QUESTIONS, 0)


def test_each_file_read_is_logged(runs):
    for fmt, (input_base, _, messages) in runs.items():
        train_name, eval_name = FILES[fmt]
        assert f"Read {NUM_TRAIN} questions from {input_base / train_name}" in messages
        assert (f"Read {NUM_QUESTIONS - NUM_TRAIN} questions from {input_base / eval_name}"
                in messages)


# Bad records, in the `datasets` layout. CONTEXT[24:30] == "France", CONTEXT[48:53] == "Rollo".
CONTEXT = "Normandy is a region in France; its first duke, Rollo, was a Viking."
GOOD = {"id": "good", "title": "Normandy", "context": CONTEXT, "question": "Where?",
        "answers": {"text": ["France"], "answer_start": [24]}}
NO_ANSWER = {**GOOD, "id": "no-answer", "question": "Who won?",
             "answers": {"text": [], "answer_start": []}}
# question id: (record, field, the error's reason)
BAD = {
    "start-as-string": ({**GOOD, "answers": {"text": ["France"], "answer_start": ["24"]}},
                        "answers.answer_start[0]", "= '24' must be an integer"),
    "missing-context": ({k: v for k, v in GOOD.items() if k != "context"},
                        "context", "is missing"),
    "unequal-lists": ({**GOOD, "answers": {"text": ["France", "Rollo"], "answer_start": [24]}},
                      "answers", "has 2 text(s) but 1 answer_start(s): the two lists must be "
                                 "parallel"),
    "start-not-at-text": ({**GOOD, "answers": {"text": ["France", "Rollo"],
                                               "answer_start": [24, 45]}},
                          "answers.answer_start[1]",
                          "= 45 does not point at the answer text 'Rollo': the context has "
                          "'e, Ro' there"),
}


def _bad_record(question_id: str) -> dict:
    return {**BAD[question_id][0], "id": question_id}


def _write_bad_parquet(path: pathlib.Path, records: list[dict]) -> None:
    """`records` in the `datasets` schema; string answer starts make the column strings
    (a Parquet column has one type, so such a record needs a file of its own)."""
    starts = {type(s) for r in records for s in r["answers"]["answer_start"]}
    schema = DATASETS_SCHEMA
    if starts == {str}:
        schema = schema.set(schema.get_field_index("answers"), pa.field("answers", pa.struct(
            [("text", pa.list_(pa.string())), ("answer_start", pa.list_(pa.string()))])))
    # A missing context is a null in the context column.
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)


def _write_bad(path: pathlib.Path, records: list[dict]) -> None:
    if path.suffix == ".parquet":
        _write_bad_parquet(path, records)
    else:
        path.write_bytes(_jsonl(records))


@pytest.mark.parametrize("question_id", list(BAD))
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_bad_record_fails_the_run_naming_file_location_question_and_field(
    tmp_path, suffix, question_id
):
    input_base = tmp_path / "input"
    input_base.mkdir()
    path = input_base / f"questions{suffix}"
    if suffix == ".parquet" and question_id == "start-as-string":
        _write_bad(path, [_bad_record(question_id)])  # a column of string starts
        location = "row 0"
    else:
        _write_bad(path, [GOOD, _bad_record(question_id)])
        location = "row 1" if suffix == ".parquet" else "line 2"
    _, field, reason = BAD[question_id]
    with pytest.raises(squad_json.InvalidQuestionError) as raised:
        run_executor(tmp_path, input_base, input_config=_splits(all=f"*{suffix}"))
    assert f"{path}: {location} (question {question_id}): field '{field}' {reason}" in str(
        raised.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_skip_invalid_counts_and_lists_the_bad_records(tmp_path, suffix):
    input_base = tmp_path / "input"
    input_base.mkdir()
    main, start_type = input_base / f"bad{suffix}", input_base / f"bad-start-type{suffix}"
    others = [q for q in BAD if q != "start-as-string"]
    if suffix == ".parquet":
        _write_bad(main, [GOOD, NO_ANSWER] + [_bad_record(q) for q in others])
        _write_bad(start_type, [_bad_record("start-as-string")])
        expected_locations = {"start-as-string": (start_type, "row 0")} | {
            q: (main, f"row {i}") for i, q in enumerate(others, start=2)}
    else:
        _write_bad(main, [GOOD, NO_ANSWER, _bad_record("start-as-string")]
                   + [_bad_record(q) for q in others])
        expected_locations = {q: (main, f"line {i}") for i, q in enumerate(BAD, start=3)}

    examples = run_executor(tmp_path, input_base, skip_invalid=True,
                            input_config=_splits(all=f"*{suffix}"))

    written = read_split(examples, "train") + read_split(examples, "eval")
    assert sorted(e.id for e in written) == ["good", "no-answer"]
    assert {e.id: e.is_impossible for e in written} == {"good": False, "no-answer": True}
    report = read_report(examples)
    assert sorted(report["skipped"], key=lambda r: r["question_id"]) == sorted((
        {"file": str(expected_locations[q][0]), "question_id": q,
         "location": expected_locations[q][1], "field": BAD[q][1], "reason": BAD[q][2]}
        for q in BAD), key=lambda r: r["question_id"])
    assert (report["num_questions"], report["num_examples"], report["num_skipped"]) == (6, 2, 4)
    assert examples.get_int_custom_property("num_skipped") == 4


def test_a_parquet_file_without_a_context_column_fails_naming_file_and_column(tmp_path):
    input_base = tmp_path / "input"
    input_base.mkdir()
    table = pa.Table.from_pylist([GOOD], schema=DATASETS_SCHEMA).drop(["context"])
    pq.write_table(table, input_base / "no-context.parquet")
    with pytest.raises(squad_json.SquadFileError) as raised:
        run_executor(tmp_path, input_base, skip_invalid=True,
                     input_config=_splits(all="*.parquet"))
    assert (f"{input_base / 'no-context.parquet'}: is not a SQuAD Parquet file: column "
            "'context' is missing (columns: id, title, question, answers)") in str(raised.value)
