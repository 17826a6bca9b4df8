"""SquadExampleGen's span settings on real files, real Beam, real artifacts: the span asked
for (or the latest), the window of spans the train split reads, a missing span named, and
the data fingerprint the Trainer compares."""

import json
import pathlib

import pytest
from tfx.proto import example_gen_pb2

from components.qa import contracts
from components.squad_example_gen import spans
from tests.squad_example_gen.example_gen_runs import read_split, run_executor

SPLITS = example_gen_pb2.Input(splits=[
    example_gen_pb2.Input.Split(name="train", pattern="span-{SPAN}/train/*.json"),
    example_gen_pb2.Input.Split(name="eval", pattern="span-{SPAN}/eval/*.json"),
])


def _question(qid: str) -> dict:
    return {"id": qid, "question": "Who?", "answers": [{"text": "Ann", "answer_start": 0}]}


def _write(path: pathlib.Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": f"Ann met {qid}.", "qas": [_question(qid)]} for qid in ids]}]}))


@pytest.fixture
def data_root(tmp_path) -> pathlib.Path:
    root = tmp_path / "data"
    for span in (1, 2, 3):
        _write(root / f"span-{span}" / "train" / "q.json", [f"s{span}-t{i}" for i in range(3)])
        _write(root / f"span-{span}" / "eval" / "q.json", [f"s{span}-e{i}" for i in range(2)])
    return root


def _spans_read(examples, split: str) -> set[str]:
    return {e.id.split("-")[0] for e in read_split(examples, split)}


def test_the_train_split_reads_the_last_two_spans_and_eval_the_latest(data_root, tmp_path):
    examples = run_executor(tmp_path / "run", data_root, input_config=SPLITS, training_spans=2)
    assert _spans_read(examples, "train") == {"s2", "s3"}
    assert _spans_read(examples, "eval") == {"s3"}
    assert examples.get_int_custom_property("span") == 3
    assert json.loads(examples.get_string_custom_property(contracts.SPANS_PROPERTY)) == {
        "train": {"2": 3, "3": 3}, "eval": {"3": 2}}


def test_a_requested_span_and_every_span_up_to_it(data_root, tmp_path):
    examples = run_executor(tmp_path / "run", data_root, input_config=SPLITS,
                            requested_span=2, training_spans=0)
    assert _spans_read(examples, "train") == {"s1", "s2"}
    assert _spans_read(examples, "eval") == {"s2"}
    assert examples.get_int_custom_property("span") == 2


def test_the_default_reads_the_latest_span_only(data_root, tmp_path):
    examples = run_executor(tmp_path / "run", data_root, input_config=SPLITS)
    assert _spans_read(examples, "train") == {"s3"}
    assert examples.get_int_custom_property("span") == 3


def test_a_missing_span_is_named_with_the_spans_that_exist(data_root, tmp_path):
    with pytest.raises(spans.SpanNotFoundError) as error:
        run_executor(tmp_path / "run", data_root, input_config=SPLITS, requested_span=7)
    message = str(error.value)
    assert "Span 7" in message and "span-{SPAN}/train/*.json" in message
    assert "[1, 2, 3]" in message


def test_the_data_fingerprint_follows_the_files_contents(data_root, tmp_path):
    def fingerprint(name: str) -> str:
        examples = run_executor(tmp_path / name, data_root, input_config=SPLITS)
        return examples.get_string_custom_property(contracts.DATA_FINGERPRINT_PROPERTY)

    first = fingerprint("a")
    assert first and fingerprint("b") == first
    _write(data_root / "span-3" / "train" / "q.json", ["s3-t0", "s3-t1", "s3-changed"])
    assert fingerprint("c") != first
