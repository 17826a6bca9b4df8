"""Reading and validating SQuAD v1.1 / v2.0 files into `SquadExample`s.

Three formats, chosen by file name (`parse_squad_file`):
- SQuAD's nested JSON (any other name, e.g. `.json`, `.json.gz`): `{"data": [{"title",
  "paragraphs": [{"context", "qas": [...]}]}]}`;
- JSON lines (`*.jsonl`, `*.jsonl.gz`): one question per line, blank lines ignored;
- Parquet (`*.parquet`): one question per row, read with pyarrow a batch of rows at a time
  (`components.qa.squad_flat`; Parquet compresses its columns itself, snappy, gzip,
  zstd..., so a gzip-compressed `*.parquet.gz` file is not read as Parquet).

A flat record (JSON line, Parquet row) holds one question with its passage: `id`,
`question`, `context`, optional `title` ('' when absent), `answers`, optional
`is_impossible` and `plausible_answers` (other fields or columns are ignored). That is the
Hugging Face `datasets` SQuAD / SQuAD v2 layout (Parquet: `answers` a struct of two list
columns), and also SQuAD's own question fields. In Parquet a null value counts as a
missing field. Where a record is: 'line N' counted from 1 as editors count lines, 'row N'
counted from 0 as `datasets` (`dataset[N]`), pandas (`iloc`) and pyarrow index rows.

A JSON file is read whole (local paths with `open`, others such as gs:// through
`tf.io.gfile`, so reading a local file does not import TensorFlow); gzip-compressed files
are recognised by their magic bytes and decompressed transparently, and a UTF-8
byte-order mark is accepted. Offsets (`answer_start`) count Unicode code points, as
Python's `str` does.

A question's `answers` (and `plausible_answers`) are SQuAD's list
`[{"text", "answer_start"}, ...]` or, in any format, the `datasets` layout: an object of
two parallel lists `{"text": [...], "answer_start": [...]}`. In that layout an empty pair
of lists without an `is_impossible` field means an unanswerable question (SQuAD v2 as
`datasets` writes it: it has no `is_impossible`), i.e. `is_impossible` is then true.

Labelled reading (training, evaluation) needs every question's answers, or
`is_impossible: true`. Unlabelled reading (`labelled=False`, for prediction) also takes
questions without an `answers` field or with an empty list; answers that are given are
still checked.

Two kinds of problems:
- a whole-file problem (unreadable, empty, not JSON, not SQuAD's layout; Parquet: not
  Parquet, no rows, a required column missing: `id`, `question`, `context`, and in
  labelled reading `answers`) raises `SquadFileError` naming the file and, where
  it applies, the JSON location or the column;
- a problem with one question (missing or wrongly typed field, empty text, an
  `answer_start` that does not point at the answer text, parallel answer lists of
  different lengths, text that is not valid Unicode, a repeated id; a JSON line that is
  not a JSON object) gives an `InvalidRecord` naming the file, the question id (JSON
  lines: the line; Parquet: the row) and the field. `read_squad_examples` raises it as
  `InvalidQuestionError` or, with `skip_invalid=True`, returns it next to the valid
  questions.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from components.qa.squad import SquadExample

_GZIP_MAGIC = b"\x1f\x8b"
_JSON_LINES_SUFFIXES = (".jsonl", ".jsonl.gz")
_PARQUET_SUFFIX = ".parquet"
# A lone surrogate: what json.loads makes of an escaped byte that is not UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
# The location of a JSON line's question: 'line 3' (1-based); of a Parquet row's: 'row 0'
# (0-based).
_LINE = "line "
_ROW = "row "
# The fields of a flat record: the Parquet columns read (those the file has).
_FLAT_FIELDS = ("id", "title", "context", "question", "answers", "is_impossible",
                "plausible_answers")


class SquadFileError(ValueError):
    """A whole SQuAD file cannot be read; the message names the file."""


@dataclasses.dataclass(frozen=True)
class InvalidRecord:
    """Why one question of a SQuAD file is not valid.

    Attributes:
      file: the file's path, as given.
      question_id: the question's `id` ('' when the question has no usable id).
      location: where the question is in the JSON, e.g. 'data[0].paragraphs[3].qas[1]',
        in a JSON-lines file, e.g. 'line 3' (1-based), in a Parquet file 'row 0' (0-based).
      field: the offending field, relative to the question, e.g. 'answers[0].answer_start'
        or, `datasets` layout, 'answers.answer_start[0]' ('' when the whole JSON line is
        wrong).
      reason: what is wrong with it.
    """

    file: str
    question_id: str
    location: str
    field: str
    reason: str

    def message(self) -> str:
        """One line naming the file, the question (id, or location; JSON lines and Parquet:
        the line or row and the id) and the field."""
        if self.location.startswith((_LINE, _ROW)):
            question = self.location + (f" (question {self.question_id})"
                                        if self.question_id else "")
        else:
            question = f"question {self.question_id or f'at {self.location}'}"
        field = f"field {self.field!r} " if self.field else ""
        return f"{self.file}: {question}: {field}{self.reason}"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


class InvalidQuestionError(ValueError):
    """A question is not valid (raised, with `InvalidRecord.message()`, when invalid
    questions are not skipped)."""


@dataclasses.dataclass(frozen=True)
class ParsedQuestion:
    """One question of a file, in file order: an example, or why it is invalid."""

    file: str
    index: int
    location: str
    example: SquadExample | None = None
    invalid: InvalidRecord | None = None


def read_json(path: str) -> tuple[Any, str | None]:
    """Loads a JSON file (a SQuAD file, predictions...; gzip and BOM handled).

    Returns the decoded JSON and, if the bytes are not valid UTF-8, where the first bad
    byte is (else None); undecodable bytes are kept as lone surrogates
    ('surrogateescape') so that the questions holding them can be named.

    Raises:
      SquadFileError: the file cannot be read, is empty, or is not JSON.
    """
    text, bad_byte = _read_text(path)
    try:
        return json.loads(text), bad_byte
    except json.JSONDecodeError as e:
        raise SquadFileError(
            f"{path}: is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e


def _read_bytes(path: str) -> bytes:
    """The file's bytes: local paths through `open`, others (gs://...) `tf.io.gfile`."""
    if "://" not in path:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise SquadFileError(f"{path}: cannot be read: {e}") from e
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except (tf.errors.OpError, OSError) as e:
        raise SquadFileError(f"{path}: cannot be read: {e}") from e


def _read_text(path: str) -> tuple[str, str | None]:
    """The file's text (gunzipped, without BOM; bytes that are not UTF-8 as lone
    surrogates) and where its first non-UTF-8 byte is (else None)."""
    raw = _read_bytes(path)
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise SquadFileError(f"{path}: is not a valid gzip file: {e}") from e
    try:
        text, bad_byte = raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        text = raw.decode("utf-8-sig", errors="surrogateescape")
        bad_byte = f"byte {e.start} (0x{raw[e.start]:02x})"
    if not text.strip():
        raise SquadFileError(f"{path}: is empty")
    return text, bad_byte


def parse_squad_file(path: str, labelled: bool = True) -> Iterator[ParsedQuestion]:
    """Every question of one SQuAD file, in file order, valid or not.

    Args:
      path: the file: nested SQuAD JSON, or by its name JSON lines or Parquet (see the
        module docstring).
      labelled: if False, questions may have no answers (see the module docstring).

    Raises:
      SquadFileError: a whole-file problem (see the module docstring), including bytes
        that are not UTF-8 outside any question's text.
    """
    if path.endswith(_JSON_LINES_SUFFIXES):
        yield from _parse_json_lines(path, labelled)
        return
    if path.endswith(_PARQUET_SUFFIX):
        yield from _parse_parquet(path, labelled)
        return
    data, bad_byte = read_json(path)
    articles = _get_list(path, data, "data", "")
    index = 0
    non_utf8_found = False
    for a, article in enumerate(articles):
        article_loc = f"data[{a}]"
        _require_object(path, article, article_loc)
        for p, paragraph in enumerate(_get_list(path, article, "paragraphs", article_loc)):
            paragraph_loc = f"{article_loc}.paragraphs[{p}]"
            _require_object(path, paragraph, paragraph_loc)
            for q, qa in enumerate(_get_list(path, paragraph, "qas", paragraph_loc)):
                location = f"{paragraph_loc}.qas[{q}]"
                _require_object(path, qa, location)
                parsed = _parse_question(path, index, location, article, paragraph, qa,
                                         labelled)
                non_utf8_found |= bool(parsed.invalid and _NOT_UNICODE in parsed.invalid.reason)
                yield parsed
                index += 1
    if bad_byte and not non_utf8_found:
        raise SquadFileError(f"{path}: is not valid UTF-8: {bad_byte}, outside the questions")


def read_squad_examples(
    paths: str | Sequence[str], skip_invalid: bool = False, labelled: bool = True
) -> tuple[list[SquadExample], list[InvalidRecord]]:
    """Reads SQuAD files into examples, in file order, checking ids are unique across them.

    Args:
      paths: one path or several (gzip-compressed files are read transparently).
      skip_invalid: if False, the first invalid question raises `InvalidQuestionError`;
        if True, invalid questions are returned in the second list instead.
      labelled: if False, questions may have no answers (prediction).

    Returns:
      (examples, invalid records); every question read is in exactly one of them.
    """
    examples: list[SquadExample] = []
    invalid: list[InvalidRecord] = []
    seen: dict[str, ParsedQuestion] = {}
    for path in [paths] if isinstance(paths, str) else paths:
        for parsed in parse_squad_file(path, labelled):
            record = parsed.invalid
            if record is None:
                first = seen.setdefault(parsed.example.id, parsed)
                if first is not parsed:
                    record = duplicate_record(parsed, first)
            if record is None:
                examples.append(parsed.example)
            elif skip_invalid:
                invalid.append(record)
            else:
                raise InvalidQuestionError(record.message())
    return examples, invalid


def first_and_duplicates(
    occurrences: Iterable[ParsedQuestion],
) -> tuple[ParsedQuestion, list[InvalidRecord]]:
    """Of valid questions sharing an id: the first (by file, then position) and the rest
    as invalid records."""
    first, *rest = sorted(occurrences, key=lambda o: (o.file, o.index))
    return first, [duplicate_record(o, first) for o in rest]


def duplicate_record(duplicate: ParsedQuestion, first: ParsedQuestion) -> InvalidRecord:
    """The invalid record of a question whose id an earlier question already has."""
    where = first.location if first.file == duplicate.file else f"{first.location} of {first.file}"
    return InvalidRecord(
        duplicate.file, duplicate.example.id, duplicate.location, "id",
        f"= {duplicate.example.id!r} at {duplicate.location} repeats the id of the question "
        f"at {where}",
    )


_NOT_UNICODE = "is not valid Unicode"


class _Invalid(Exception):
    """Internal: one field of a question is invalid."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _parse_json_lines(path: str, labelled: bool) -> Iterator[ParsedQuestion]:
    """The questions of a JSON-lines file, blank lines skipped."""
    text, _ = _read_text(path)
    # Not str.splitlines: a JSON string may hold U+2028 and other separators unescaped.
    lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1)
             if line.strip()]
    for index, (number, line) in enumerate(lines):
        yield _parse_json_line(path, index, f"{_LINE}{number}", line, labelled)


def _parse_json_line(
    path: str, index: int, location: str, line: str, labelled: bool
) -> ParsedQuestion:
    """One JSON line: a flat record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        reason = f"is not valid JSON: {e.msg} at column {e.colno}"
    else:
        if isinstance(record, dict):
            return _parse_flat_record(path, index, location, record, labelled)
        reason = f"must be a JSON object, not {_json_type(record)}"
    invalid = InvalidRecord(path, "", location, "", reason)
    return ParsedQuestion(path, index, location, invalid=invalid)


def _parse_parquet(path: str, labelled: bool) -> Iterator[ParsedQuestion]:
    """The questions of a Parquet file, one per row (nulls left out of the records)."""
    from components.qa import squad_flat  # pyarrow only where Parquet is read

    required = ("id", "question", "context") + (("answers",) if labelled else ())
    try:
        for index, record in squad_flat.parquet_records(path, _FLAT_FIELDS, required):
            yield _parse_flat_record(path, index, f"{_ROW}{index}", record, labelled)
    except squad_flat.ParquetError as e:
        raise SquadFileError(f"{path}: {e}") from e


def _parse_flat_record(
    path: str, index: int, location: str, record: dict, labelled: bool
) -> ParsedQuestion:
    """One flat record: the article's, the paragraph's and the question's fields."""
    article = record if "title" in record else {"title": ""}
    return _parse_question(path, index, location, article, record, record, labelled)


def _parse_question(
    path: str, index: int, location: str, article: dict, paragraph: dict, qa: dict,
    labelled: bool,
) -> ParsedQuestion:
    question_id = qa.get("id") if isinstance(qa.get("id"), str) else ""
    try:
        example = _to_example(article, paragraph, qa, labelled)
    except _Invalid as e:
        record = InvalidRecord(path, _printable(question_id), location, e.field, e.reason)
        return ParsedQuestion(path, index, location, invalid=record)
    return ParsedQuestion(path, index, location, example=example)


def _to_example(article: dict, paragraph: dict, qa: dict, labelled: bool) -> SquadExample:
    question_id = _text(qa, "id")
    title = _text(article, "title", allow_empty=True)
    context = _text(paragraph, "context")
    question = _text(qa, "question")
    # `datasets` layout: no is_impossible field, an unanswerable question has no answers.
    is_impossible = qa.get("is_impossible", qa.get("answers") == _NO_ANSWERS)
    if not isinstance(is_impossible, bool):
        raise _Invalid("is_impossible", f"= {is_impossible!r} must be true or false")
    answers = _answers(qa, "answers", context) if labelled or "answers" in qa else []
    plausible = _answers(qa, "plausible_answers", context) if "plausible_answers" in qa else []
    if is_impossible and answers:
        raise _Invalid("answers", f"has {len(answers)} answer(s) but is_impossible is true")
    if labelled and not is_impossible and not answers:
        raise _Invalid("answers", "is empty but is_impossible is not true")
    return SquadExample(
        id=question_id,
        title=title,
        context=context,
        question=question,
        answer_texts=tuple(t for t, _ in answers),
        answer_starts=tuple(s for _, s in answers),
        is_impossible=is_impossible,
        plausible_answer_texts=tuple(t for t, _ in plausible),
        plausible_answer_starts=tuple(s for _, s in plausible),
    )


# The `datasets` layout's answers of an unanswerable question.
_NO_ANSWERS = {"text": [], "answer_start": []}


def _answers(qa: dict, key: str, context: str) -> list[tuple[str, int]]:
    """`qa[key]` as (text, start) pairs: SQuAD's list of {"text", "answer_start"} objects
    or the `datasets` layout {"text": [...], "answer_start": [...]}."""
    if key not in qa:
        raise _Invalid(key, "is missing")
    answers = qa[key]
    if isinstance(answers, dict):
        return _parallel_answers(answers, key, context)
    if not isinstance(answers, list):
        raise _Invalid(key, f"must be a list, not {_json_type(answers)}")
    result = []
    for i, answer in enumerate(answers):
        field = f"{key}[{i}]"
        if not isinstance(answer, dict):
            raise _Invalid(field, f"must be an object, not {_json_type(answer)}")
        text = _text(answer, "text", field_prefix=f"{field}.")
        start_field = f"{field}.answer_start"
        if "answer_start" not in answer:
            raise _Invalid(start_field, "is missing")
        result.append((text, _start(start_field, answer["answer_start"], text, context)))
    return result


def _parallel_answers(answers: dict, key: str, context: str) -> list[tuple[str, int]]:
    """The `datasets` layout: two parallel lists; fields are named e.g. 'answers.text[1]'."""
    for part in ("text", "answer_start"):
        if part not in answers:
            raise _Invalid(f"{key}.{part}", "is missing")
        if not isinstance(answers[part], list):
            raise _Invalid(f"{key}.{part}",
                           f"must be a list, not {_json_type(answers[part])}")
    texts, starts = answers["text"], answers["answer_start"]
    if len(texts) != len(starts):
        raise _Invalid(key, f"has {len(texts)} text(s) but {len(starts)} answer_start(s): "
                            "the two lists must be parallel")
    result = []
    for i, (text, start) in enumerate(zip(texts, starts, strict=True)):
        text = _checked_text(f"{key}.text[{i}]", text)
        result.append((text, _start(f"{key}.answer_start[{i}]", start, text, context)))
    return result


def _start(field: str, start: Any, text: str, context: str) -> int:
    """`start`, checked to be an integer pointing at `text` in `context`."""
    if isinstance(start, bool) or not isinstance(start, int):
        raise _Invalid(field, f"= {start!r} must be an integer")
    if start < 0 or start + len(text) > len(context):
        raise _Invalid(
            field,
            f"= {start} is out of range for a context of {len(context)} characters "
            f"(answer of {len(text)} characters)",
        )
    found = context[start:start + len(text)]
    if found != text:
        raise _Invalid(
            field,
            f"= {start} does not point at the answer text {_clip(text)!r}: the context "
            f"has {_clip(found)!r} there",
        )
    return start


def _text(obj: dict, key: str, allow_empty: bool = False, field_prefix: str = "") -> str:
    field = field_prefix + key
    if key not in obj:
        raise _Invalid(field, "is missing")
    return _checked_text(field, obj[key], allow_empty)


def _checked_text(field: str, value: Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid(field, f"must be a string, not {_json_type(value)}")
    if not allow_empty and not value.strip():
        raise _Invalid(field, "is empty")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        bad = surrogate.start()
        raise _Invalid(
            field,
            f"{_NOT_UNICODE} text: character {bad} is a byte that is not UTF-8 or a lone "
            f"surrogate, in {ascii(value[max(bad - 20, 0):bad + 20])}",
        )
    return value


def _get_list(path: str, obj: dict, key: str, location: str) -> list:
    where = f"{location}.{key}" if location else key
    if not isinstance(obj, dict) or key not in obj:
        raise SquadFileError(
            f"{path}: is not a SQuAD file: {where!r} is missing"
            + ("" if location else " (expected a JSON object with a 'data' list of articles)")
        )
    if not isinstance(obj[key], list):
        raise SquadFileError(
            f"{path}: is not a SQuAD file: {where!r} must be a list, not {_json_type(obj[key])}"
        )
    return obj[key]


def _require_object(path: str, value: Any, location: str) -> None:
    if not isinstance(value, dict):
        raise SquadFileError(
            f"{path}: is not a SQuAD file: {location!r} must be an object, "
            f"not {_json_type(value)}"
        )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _printable(text: str) -> str:
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
