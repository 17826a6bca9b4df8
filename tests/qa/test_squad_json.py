"""Reading and validating SQuAD files (components/qa/squad_json.py, squad_flat.py)."""

import gzip
import json
import pathlib
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.qa import squad, squad_json

BAD_DIR = pathlib.Path(__file__).parents[1] / "data" / "bad"
# The documented outcome of each file of the bad-input corpus (README.md there).
OUTCOMES = json.loads((BAD_DIR / "outcomes.json").read_text())["files"]


def _paths(name):
    path = BAD_DIR / name
    return sorted(str(p) for p in path.glob("*.json")) if path.is_dir() else [str(path)]


def _squad_file(tmp_path, paragraphs, name="squad.json"):
    data = {"version": "v2.0", "data": [{"title": "T", "paragraphs": paragraphs}]}
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _one_question_file(tmp_path, context, answers, name="squad.json"):
    """A file of one question 'q' about `context`, with answers [(text, start)]."""
    qa = {"id": "q", "question": "Where?",
          "answers": [{"text": text, "answer_start": start} for text, start in answers]}
    return _squad_file(tmp_path, [{"context": context, "qas": [qa]}], name)


def test_reads_v1_1_dev_gzipped(data_dir):
    examples, invalid = squad_json.read_squad_examples(str(data_dir / "squad/dev-v1.1.json.gz"))
    assert (len(examples), invalid) == (10570, [])
    first = examples[0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.title == "Super_Bowl_50"
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answer_texts == ("Denver Broncos",) * 3
    assert first.answer_starts == (177,) * 3
    assert first.context[177:177 + len("Denver Broncos")] == "Denver Broncos"
    assert not first.is_impossible and first.plausible_answer_texts == ()
    assert not any(e.is_impossible for e in examples)
    assert len({e.id for e in examples}) == 10570


def test_reads_v2_0_with_unanswerable_and_plausible_answers(data_dir):
    path = str(data_dir / "squad/dev-v2.0-first5articles.official.json")
    examples, invalid = squad_json.read_squad_examples(path)
    assert (len(examples), invalid) == (1407, [])
    by_id = {e.id: e for e in examples}
    answerable = by_id["56ddde6b9a695914005b9628"]
    assert answerable.title == "Normans"
    assert answerable.answer_texts == ("France",) * 4 and answerable.answer_starts == (159,) * 4
    assert answerable.context[159:165] == "France" and not answerable.is_impossible
    unanswerable = [e for e in examples if e.is_impossible]
    assert len(unanswerable) == 702
    assert all(e.answer_texts == () and e.answer_starts == () for e in unanswerable)
    assert all(e.plausible_answer_texts for e in unanswerable)
    for e in unanswerable:
        for text, start in zip(e.plausible_answer_texts, e.plausible_answer_starts, strict=True):
            assert e.context[start:start + len(text)] == text


def test_gzip_is_read_transparently_whatever_the_name(data_dir, tmp_path):
    plain = data_dir / "squad/dev-v2.0-first5articles.official.json"
    renamed = tmp_path / "compressed-but-named.json"
    renamed.write_bytes(gzip.compress(plain.read_bytes()))
    assert squad_json.read_squad_examples(str(renamed)) == squad_json.read_squad_examples(
        str(plain)
    )


def test_every_field_round_trips_through_tf_example(data_dir):
    examples = []
    for name in ("squad/dev-v2.0-first5articles.official.json", "bad/unicode.json"):
        examples += squad_json.read_squad_examples(str(data_dir / name))[0]
    for example in examples:
        serialized = squad.to_tf_example(example).SerializeToString()
        assert squad.from_tf_example(serialized) == example


def test_unicode_offsets_count_code_points_and_text_is_kept_exactly(data_dir):
    examples, _ = squad_json.read_squad_examples(str(data_dir / "bad/unicode.json"))
    escaped, _ = squad_json.read_squad_examples(str(data_dir / "bad/unicode_escaped.json"))
    by_id = {e.id: e for e in examples + escaped}
    assert by_id["unicode-cjk"].answer_starts == (0,)
    emoji = by_id["unicode-emoji"]
    assert emoji.answer_texts == ("🎉🎉 time",) and emoji.question.endswith("🎉")
    assert by_id["unicode-escaped-emoji"].answer_starts == emoji.answer_starts
    assert by_id["unicode-escaped-emoji"].context == emoji.context
    assert "\u200b" in by_id["unicode-zero-width"].answer_texts[0]
    assert by_id["unicode-accents"].title == "Ünïcödé 東京"


def test_200k_character_passage_is_kept_whole(tmp_path):
    context = "word " * 39_998 + "The answer is Normandy."
    assert len(context) > 200_000
    start = context.index("Normandy")
    path = _one_question_file(tmp_path, context, [("Normandy", start)])
    [example], _ = squad_json.read_squad_examples(path)
    assert example.context == context and example.answer_starts == (start,)


def test_answer_start_at_another_occurrence_of_the_text_is_valid(tmp_path):
    context = "France is big. Normandy is in France."
    second = context.rindex("France")
    path = _one_question_file(tmp_path, context, [("France", 0), ("France", second)])
    [example], _ = squad_json.read_squad_examples(path)
    assert example.answer_starts == (0, second)


def test_answer_ending_exactly_at_the_end_of_the_context_is_valid_one_past_is_not(tmp_path):
    context = "It is in France"
    start = len(context) - len("France")
    ok = _one_question_file(tmp_path, context, [("France", start)])
    assert squad_json.read_squad_examples(ok)[0][0].answer_starts == (start,)
    bad = _one_question_file(tmp_path, context, [("France", start + 1)], name="bad.json")
    with pytest.raises(squad_json.InvalidQuestionError, match="out of range for a context of 15"):
        squad_json.read_squad_examples(bad)


def test_bad_corpus_is_fully_documented():
    on_disk = {p.name for p in BAD_DIR.iterdir()} - {"README.md", "outcomes.json"}
    assert on_disk == set(OUTCOMES)
    readme = (BAD_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+?)/?` \|", readme, flags=re.MULTILINE))
    assert documented == on_disk


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_bad_corpus_outcome(name):
    expected = OUTCOMES[name]
    paths = _paths(name)
    if expected["error"] is None:
        examples, invalid = squad_json.read_squad_examples(paths)
        assert (len(examples), invalid) == (expected["num_examples"], [])
        return
    with pytest.raises(ValueError) as raised:
        squad_json.read_squad_examples(paths)
    for part in expected["error"]:
        assert part in str(raised.value)
    if expected.get("whole_file"):
        assert isinstance(raised.value, squad_json.SquadFileError)
        with pytest.raises(squad_json.SquadFileError):
            squad_json.read_squad_examples(paths, skip_invalid=True)
        return
    assert isinstance(raised.value, squad_json.InvalidQuestionError)
    examples, invalid = squad_json.read_squad_examples(paths, skip_invalid=True)
    assert len(examples) == expected["num_examples"]
    assert [[r.question_id, r.field] for r in invalid] == expected["skipped"]
    assert all(r.file in paths and r.reason and r.location.startswith("data[") for r in invalid)
    kept_ids = {e.id for e in examples}
    assert not kept_ids & {r.question_id for r in invalid if r.field != "id"}


def test_non_utf8_bytes_outside_any_question_fail_the_whole_file(tmp_path):
    path = tmp_path / "latin1-title.json"
    text = json.dumps({"data": [{"title": "Caf\u00e9", "paragraphs": []}]}, ensure_ascii=False)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(squad_json.SquadFileError,
                       match=r"latin1-title.json: is not valid UTF-8: byte 24 \(0xe9\)"):
        squad_json.read_squad_examples(str(path), skip_invalid=True)


def test_structure_errors_name_the_json_location(tmp_path):
    path = _squad_file(tmp_path, [{"context": "c", "qas": {"id": "not a list"}}])
    with pytest.raises(squad_json.SquadFileError,
                       match=r"squad.json: is not a SQuAD file: 'data\[0\]\.paragraphs\[0\]\.qas' "
                             "must be a list, not an object"):
        squad_json.read_squad_examples(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(squad_json.SquadFileError, match="nope.json: cannot be read"):
        squad_json.read_squad_examples(str(tmp_path / "nope.json"))


def test_unlabelled_reading_takes_questions_without_answers(tmp_path):
    context = "Normandy is in France."
    qas = [{"id": "no-field", "question": "Where?"},
           {"id": "empty", "question": "Where?", "answers": [], "is_impossible": False},
           {"id": "given", "question": "Where?",
            "answers": [{"text": "France", "answer_start": 15}]}]
    path = _squad_file(tmp_path, [{"context": context, "qas": qas}])
    examples, invalid = squad_json.read_squad_examples(path, labelled=False)
    assert invalid == [] and [e.id for e in examples] == ["no-field", "empty", "given"]
    assert [e.answer_texts for e in examples] == [(), (), ("France",)]
    _, invalid = squad_json.read_squad_examples(path, skip_invalid=True)
    assert [(r.question_id, r.field, r.reason) for r in invalid] == [
        ("no-field", "answers", "is missing"),
        ("empty", "answers", "is empty but is_impossible is not true")]
    # Answers that are given are still checked.
    qas[2]["answers"][0]["answer_start"] = 0
    path = _squad_file(tmp_path, [{"context": context, "qas": qas}])
    with pytest.raises(squad_json.InvalidQuestionError,
                       match="question given: field 'answers.0..answer_start' = 0 does not"):
        squad_json.read_squad_examples(path, labelled=False)


def test_json_lines_one_question_per_line(tmp_path):
    lines = [{"id": "q1", "question": "Where?", "context": "Normandy is in France.",
              "title": "Normandy"},
             {"id": "q2", "question": "Who?", "context": "The Normans, in 東京\u2028."}]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n"
    path = tmp_path / "questions.jsonl"
    path.write_text(text, encoding="utf-8")
    compressed = tmp_path / "questions.jsonl.gz"
    compressed.write_bytes(gzip.compress(text.encode("utf-8")))
    for source in (path, compressed):
        examples, _ = squad_json.read_squad_examples(str(source), labelled=False)
        assert examples == [
            squad.SquadExample(id="q1", title="Normandy", context=lines[0]["context"],
                               question="Where?"),
            squad.SquadExample(id="q2", title="", context=lines[1]["context"],
                               question="Who?")]
    with pytest.raises(squad_json.InvalidQuestionError,
                       match=r"questions.jsonl: line 1 \(question q1\): field 'answers' is "
                             "missing"):
        squad_json.read_squad_examples(str(path))


def test_json_lines_errors_name_the_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "q1", "question": "Where?", "context": ""}\n\n'
                    '["not", "an", "object"]\n'
                    '{"question": "Who?", "context": "c", "title": 3}\n'
                    '{"id": "q1", "question": "Where?", "context": "c"}\n'
                    '{"id": "q1", "question": "Where?", "context": "c"}\n'
                    'not json\n', encoding="utf-8")
    examples, invalid = squad_json.read_squad_examples(str(path), skip_invalid=True,
                                                       labelled=False)
    assert [e.id for e in examples] == ["q1"]
    assert [r.message() for r in invalid] == [
        f"{path}: line 1 (question q1): field 'context' is empty",
        f"{path}: line 3: must be a JSON object, not a list",
        f"{path}: line 4: field 'id' is missing",
        f"{path}: line 6 (question q1): field 'id' = 'q1' at line 6 repeats the id of the "
        "question at line 5",
        f"{path}: line 7: is not valid JSON: Expecting value at column 1",
    ]
    with pytest.raises(squad_json.InvalidQuestionError) as raised:
        squad_json.read_squad_examples(str(path), labelled=False)
    assert str(raised.value) == invalid[0].message()
    path.write_text("\n \n", encoding="utf-8")
    with pytest.raises(squad_json.SquadFileError, match="bad.jsonl: is empty"):
        squad_json.read_squad_examples(str(path), labelled=False)


# The Hugging Face `datasets` SQuAD layout: flat records, answers as two parallel lists.
_ANSWERS_TYPE = pa.struct([("text", pa.list_(pa.string())),
                           ("answer_start", pa.list_(pa.int32()))])
_DATASETS_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()),
                              ("context", pa.string()), ("question", pa.string()),
                              ("answers", _ANSWERS_TYPE)])


def _datasets_record(question_id, context, texts, starts, **fields):
    return {"id": question_id, "title": "Tōkyō", "context": context, "question": "Where?",
            "answers": {"text": texts, "answer_start": starts}, **fields}


def test_datasets_layout_offsets_count_code_points_in_json_lines_and_parquet(tmp_path):
    # "🗼" is one code point (2 UTF-16 units, 4 UTF-8 bytes); "é" is written decomposed.
    context = "Le 🗼 de Tōkyō, cafe\u0301 compris, est au Japon."
    start = context.index("Japon")
    assert (start, context.encode("utf-8").index(b"Japon")) == (37, 43)  # not bytes
    records = [_datasets_record("answerable", context, ["Japon", "cafe\u0301"],
                                [start, context.index("cafe")]),
               _datasets_record("unanswerable", context, [], [])]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    parquet = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=_DATASETS_SCHEMA), parquet)
    expected = [
        squad.SquadExample(id="answerable", title="Tōkyō", context=context, question="Where?",
                           answer_texts=("Japon", "cafe\u0301"), answer_starts=(37, 15)),
        squad.SquadExample(id="unanswerable", title="Tōkyō", context=context,
                           question="Where?", is_impossible=True)]
    for path in (jsonl, parquet):
        assert squad_json.read_squad_examples(str(path)) == (expected, []), path


def test_parquet_is_read_through_tf_io_gfile_from_other_file_systems(tmp_path):
    import tensorflow as tf

    records = [_datasets_record("q", "Normandy is in France.", ["France"], [15])]
    local = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=_DATASETS_SCHEMA), local)
    remote = f"ram://{tmp_path.name}/q.parquet"
    with tf.io.gfile.GFile(remote, "wb") as f:
        f.write(local.read_bytes())
    examples, _ = squad_json.read_squad_examples(remote)
    assert examples == squad_json.read_squad_examples(str(local))[0] and len(examples) == 1
    with pytest.raises(squad_json.SquadFileError, match="/missing.parquet: cannot be read as "
                                                        "Parquet: NotFoundError"):
        squad_json.read_squad_examples(f"ram://{tmp_path.name}/missing.parquet")


def test_datasets_layout_errors_name_the_field(tmp_path):
    context = "Normandy is in France."
    lines = [
        _datasets_record("no-start", context, ["France"], [15]),
        _datasets_record("text-not-list", context, "France", [15]),
        _datasets_record("text-not-string", context, [15], [15]),
        _datasets_record("empty-but-possible", context, [], [], is_impossible=False),
        _datasets_record("impossible-with-answer", context, ["France"], [15],
                         is_impossible=True),
        _datasets_record("plausible", context, [], [],
                         plausible_answers={"text": ["France"], "answer_start": [14]}),
    ]
    del lines[0]["answers"]["answer_start"]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    _, invalid = squad_json.read_squad_examples(str(path), skip_invalid=True)
    assert [(r.location, r.question_id, r.field, r.reason) for r in invalid] == [
        ("line 1", "no-start", "answers.answer_start", "is missing"),
        ("line 2", "text-not-list", "answers.text", "must be a list, not a string"),
        ("line 3", "text-not-string", "answers.text[0]", "must be a string, not a number"),
        ("line 4", "empty-but-possible", "answers", "is empty but is_impossible is not true"),
        ("line 5", "impossible-with-answer", "answers",
         "has 1 answer(s) but is_impossible is true"),
        ("line 6", "plausible", "plausible_answers.answer_start[0]",
         "= 14 does not point at the answer text 'France': the context has ' Franc' there"),
    ]
    # Unlabelled reading: an empty pair is still read as unanswerable.
    path.write_text(json.dumps(_datasets_record("q", context, [], [])), encoding="utf-8")
    assert squad_json.read_squad_examples(str(path), labelled=False)[0][0].is_impossible


def test_parquet_rows_nulls_extra_columns_and_squad_answer_lists(tmp_path):
    answers = pa.list_(pa.struct([("text", pa.string()), ("answer_start", pa.int64())]))
    schema = pa.schema([("id", pa.string()), ("context", pa.string()),
                        ("question", pa.string()), ("answers", answers),
                        ("is_impossible", pa.bool_()), ("source", pa.string())])
    context = "Normandy is in France."
    rows = [{"id": "q0", "context": context, "question": "Where?", "source": "x",
             "answers": [{"text": "France", "answer_start": 15}], "is_impossible": None},
            {"id": "q1", "context": None, "question": "Where?", "answers": []},
            {"id": "q0", "context": context, "question": "Where?", "answers": [],
             "is_impossible": True}]
    path = tmp_path / "squad-fields.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=1)
    examples, invalid = squad_json.read_squad_examples(str(path), skip_invalid=True)
    assert examples == [squad.SquadExample(id="q0", title="", context=context,
                                           question="Where?", answer_texts=("France",),
                                           answer_starts=(15,))]
    assert [r.message() for r in invalid] == [
        f"{path}: row 1 (question q1): field 'context' is missing",
        f"{path}: row 2 (question q0): field 'id' = 'q0' at row 2 repeats the id of the "
        "question at row 0"]


def test_parquet_whole_file_errors(tmp_path):
    table = pa.Table.from_pylist(
        [_datasets_record("q", "Normandy is in France.", ["France"], [15])],
        schema=_DATASETS_SCHEMA)
    no_answers = tmp_path / "no-answers.parquet"
    pq.write_table(table.drop(["answers"]), no_answers)
    with pytest.raises(squad_json.SquadFileError, match=(
            r"no-answers.parquet: is not a SQuAD Parquet file: column 'answers' is missing "
            r"\(columns: id, title, context, question\)")):
        squad_json.read_squad_examples(str(no_answers))
    assert len(squad_json.read_squad_examples(str(no_answers), labelled=False)[0]) == 1
    empty = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), empty)
    with pytest.raises(squad_json.SquadFileError, match=r"empty.parquet: is empty \(no rows\)"):
        squad_json.read_squad_examples(str(empty))
    not_parquet = tmp_path / "text.parquet"
    not_parquet.write_text('{"id": "q"}\n', encoding="utf-8")
    with pytest.raises(squad_json.SquadFileError,
                       match="text.parquet: cannot be read as Parquet: "):
        squad_json.read_squad_examples(str(not_parquet))
    # Damaged data pages (the footer intact) fail once the reader reaches them.
    many = pa.table({"id": [str(i) for i in range(5000)], "question": ["Who?"] * 5000,
                     "context": [f"passage {i} " * 5 for i in range(5000)]})
    damaged = tmp_path / "damaged.parquet"
    pq.write_table(many, damaged, row_group_size=1000, compression="snappy")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2:len(data) // 2 + 2000] = b"\xff" * 2000
    damaged.write_bytes(bytes(data))
    with pytest.raises(squad_json.SquadFileError,
                       match="damaged.parquet: cannot be read as Parquet: Corrupt snappy"):
        squad_json.read_squad_examples(str(damaged), labelled=False)
