"""SquadExampleGen's executor on real data, real artifacts, real Beam pipelines."""

import gzip
import json
import pathlib
import shutil

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2

from components.qa import squad_json
from components.squad_example_gen import executor
from tests.squad_example_gen.example_gen_runs import read_report, read_split, run_executor

BAD_DIR = pathlib.Path(__file__).parents[1] / "data" / "bad"
OUTCOMES = json.loads((BAD_DIR / "outcomes.json").read_text())["files"]


def _splits(**patterns: str) -> example_gen_pb2.Input:
    return example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in patterns.items()]
    )


def test_reads_every_question_of_the_v1_1_and_v2_0_dev_sets(data_dir, tmp_path):
    squad_dir = data_dir / "squad"
    examples = run_executor(
        tmp_path, squad_dir, input_config=_splits(train="dev-v1.1.json.gz", eval="dev-v2.0.json.gz")
    )
    assert json.loads(examples.split_names) == ["train", "eval"]
    for split, name, count in (("train", "dev-v1.1.json.gz", 10570),
                               ("eval", "dev-v2.0.json.gz", 11873)):
        written = read_split(examples, split)
        expected, _ = squad_json.read_squad_examples(str(squad_dir / name))
        assert len(written) == len(expected) == count
        assert sorted(e.id for e in written) == sorted(e.id for e in expected)
        assert set(written) == set(expected)  # every field of every question
    assert sum(e.is_impossible for e in read_split(examples, "eval")) == 5945
    assert examples.get_int_custom_property("num_questions") == 22443
    assert examples.get_int_custom_property("num_examples") == 22443
    assert examples.get_int_custom_property("num_skipped") == 0
    assert read_report(examples)["skipped"] == []


def test_hash_split_keeps_each_passage_in_one_split(data_dir, tmp_path):
    input_base = tmp_path / "input"
    input_base.mkdir()
    fixture = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    shutil.copy(fixture, input_base)
    examples = run_executor(tmp_path, input_base)  # default: one input split, train:eval = 2:1

    train, eval_ = read_split(examples, "train"), read_split(examples, "eval")
    assert json.loads(examples.split_names) == ["train", "eval"]
    expected, _ = squad_json.read_squad_examples(str(fixture))
    assert sorted(e.id for e in train + eval_) == sorted(e.id for e in expected)
    assert not {e.context for e in train} & {e.context for e in eval_}
    assert 0.2 < len(eval_) / len(expected) < 0.45


def test_reads_through_tf_io_gfile_from_a_non_local_file_system(data_dir, tmp_path):
    # TensorFlow's in-memory file system stands in for gs:// (both go through tf.io.gfile).
    input_base = f"ram://{tmp_path.name}/squad"
    tf.io.gfile.makedirs(input_base)
    fixture = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    with tf.io.gfile.GFile(f"{input_base}/dev.json.gz", "wb") as f:
        f.write(gzip.compress(fixture.read_bytes()))

    examples = run_executor(tmp_path, input_base, skip_invalid=True)

    written = read_split(examples, "train") + read_split(examples, "eval")
    assert sorted(e.id for e in written) == sorted(
        e.id for e in squad_json.read_squad_examples(str(fixture))[0])
    assert read_report(examples)["inputs"][0]["files"] == [f"{input_base}/dev.json.gz"]


def _copy_corpus(destination: pathlib.Path) -> list[str]:
    """Copies every per-question case of the corpus into one directory (one split)."""
    destination.mkdir()
    for name, outcome in OUTCOMES.items():
        case = BAD_DIR / name
        if not outcome.get("whole_file"):
            for path in case.iterdir() if case.is_dir() else [case]:
                shutil.copy(path, destination)
    return sorted(str(p) for p in destination.iterdir())


def test_skip_invalid_counts_and_reports_every_bad_record(tmp_path):
    input_base = tmp_path / "input"
    paths = _copy_corpus(input_base)
    context = "word " * 40_000 + "Normandy."
    long_passage = {"data": [{"title": "Long", "paragraphs": [{"context": context, "qas": [
        {"id": "long-passage", "question": "Where?",
         "answers": [{"text": "Normandy", "answer_start": context.index("Normandy")}]}]}]}]}
    (input_base / "long_passage.json").write_text(json.dumps(long_passage))
    paths = sorted(paths + [str(input_base / "long_passage.json")])

    examples = run_executor(tmp_path, input_base, skip_invalid=True)

    written = read_split(examples, "train") + read_split(examples, "eval")
    expected, expected_invalid = squad_json.read_squad_examples(paths, skip_invalid=True)
    assert sorted(e.id for e in written) == sorted(e.id for e in expected)
    assert {e.id: e.context for e in written}["long-passage"] == context
    report = read_report(examples)
    skipped = sorted([r["question_id"], r["field"]] for r in report["skipped"])
    documented = sorted(record for outcome in OUTCOMES.values() if not outcome.get("whole_file")
                        for record in outcome["skipped"])
    assert skipped == documented
    assert {r["file"] for r in report["skipped"]} <= set(paths)
    assert [r.to_dict() for r in expected_invalid] == sorted(
        report["skipped"], key=lambda r: (r["file"], r["location"]))
    assert all(r["reason"] and r["location"] for r in report["skipped"])
    num_examples = 1 + sum(o.get("num_examples", 0) for o in OUTCOMES.values()
                           if not o.get("whole_file"))
    assert (report["num_examples"], report["num_skipped"]) == (num_examples, len(documented))
    assert report["num_questions"] == len(written) + len(documented)
    for key in ("num_questions", "num_examples", "num_skipped"):
        assert examples.get_int_custom_property(key) == report[key]


def test_invalid_question_fails_fast_naming_file_question_and_field(tmp_path):
    with pytest.raises(ValueError, match=(
        r"answer_start_out_of_range.json: question start-out-of-range: field "
        r"'answers\[0\].answer_start' = 9999 is out of range for a context of 60 characters"
    )):
        run_executor(tmp_path, BAD_DIR, input_config=_splits(all="answer_start_out_of_range.json"))


def test_duplicate_id_across_files_of_a_split_fails(tmp_path):
    with pytest.raises(ValueError, match=(
        r"part-2.json: question duplicate-across-files: field 'id' .* repeats the id of the "
        r"question at data\[0\]\.paragraphs\[0\]\.qas\[0\] of .*part-1.json"
    )):
        run_executor(tmp_path, BAD_DIR / "duplicate_ids_across_files")


def test_whole_file_errors_fail_even_when_skipping_invalid_records(tmp_path):
    input_base = tmp_path / "input"
    input_base.mkdir()
    shutil.copy(BAD_DIR / "truncated.json", input_base)
    shutil.copy(BAD_DIR / "bom.json", input_base)
    with pytest.raises(ValueError, match=r"truncated.json: is not valid JSON: .* line 11 col"):
        run_executor(tmp_path, input_base, skip_invalid=True)


def test_a_split_whose_pattern_matches_no_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=(
        r"Input split pattern 'train-\*.json' matches no file: nothing found at .*/train-\*.json"
    )):
        run_executor(tmp_path, BAD_DIR, input_config=_splits(train="train-*.json", eval="bom.json"))


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), (False, False), (True, True), (0, False), (1, True),
    ("false", False), ("true", True), ("True", True),
])
def test_skip_invalid_setting_accepts_what_runners_pass(value, expected):
    assert executor.skip_invalid_setting({"skip_invalid": value}) is expected


def test_skip_invalid_setting_rejects_anything_else():
    with pytest.raises(ValueError, match="'skip_invalid' = 'yes' must be true or false"):
        executor.skip_invalid_setting({"skip_invalid": "yes"})


def test_a_span_pattern_no_driver_resolved_reads_the_latest_span_and_records_it(
    data_dir, tmp_path
):
    """On Vertex AI the driver's output may not reach the executor: the executor then
    resolves `{SPAN}` with TFX's input processor and sets the span, as the driver would."""
    fixture = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    for span in (1, 2, 10):
        for split in ("train", "eval"):
            target = tmp_path / "input" / f"span-{span}" / split
            target.mkdir(parents=True)
            shutil.copy(fixture, target / f"part-{span}.json")
    examples = run_executor(tmp_path, tmp_path / "input", input_config=_splits(
        train="span-{SPAN}/train/*.json", eval="span-{SPAN}/eval/*.json"))
    assert examples.get_int_custom_property("span") == 10
    assert sorted(f for p in read_report(examples)["inputs"] for f in p["files"]) == [
        str(tmp_path / "input" / "span-10" / s / "part-10.json") for s in ("eval", "train")]
    assert examples.get_string_custom_property("input_fingerprint").startswith(
        "split:train,num_files:1,")
