"""Windows equal Model Maker's, field by field, on a slice of the real SQuAD dev sets.

The oracle is the INSTALLED tf-models-official `official.nlp.data.squad_lib`
(`read_squad_examples` + `convert_examples_to_features` with `tokenization.FullTokenizer`),
the preprocessing Model Maker's `MobileBertQaSpec` runs; it is imported, never copied. The
package's side is `squad_json.read_squad_examples` + `WindowMaker.make_windows`, and the
tf.Examples the SquadTransform stores (`windows_to_tf_examples`, decoded again).

Settings are the published ones: seq_len 384, query_len 64, doc_stride 128, lower-case, the
BERT uncased vocab. SQuAD v1.1 is read by squad_lib with version_2_with_negative=False,
v2.0 with True. Training mode gives squad_lib each question's first answer (its training
reader takes exactly one, as Model Maker's training files have), and the package reads the
file with all answers and uses the first one; squad_lib keeps a window without the answer
with positions (0, 0), as `make_windows` documents, and a question whose answer cannot be
found is skipped by squad_lib and raises `AnswerNotFoundError` in the package.

The slice (`SLICE`, about 400 questions) is chosen paragraph by paragraph from
tests/data/squad/dev-v1.1.json.gz and dev-v2.0.json.gz; `test_the_slice_covers_the_hard_cases`
checks, on squad_lib's own output, that it holds passages of several windows, answers in
more than one window (where max-context decides) and across a window edge, unanswerable
questions in long passages, and CJK, accented, Greek/Cyrillic/Arabic and zero-width text.
The v1.1 slice is also compared in training mode with small windows (64/16/32), where
answers end exactly one token past a window (no dev question does at the published
settings), and a made-up passage checks that the questions squad_lib skips are the ones
`make_windows` raises `AnswerNotFoundError` for (no dev question is skipped).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import unicodedata

import pytest

from components.qa import squad_json
from components.qa.squad import SquadExample
from components.qa.windows import (
    AnswerNotFoundError,
    WindowConfig,
    WindowMaker,
    window_from_tf_example,
    windows_to_tf_examples,
)

squad_lib = pytest.importorskip("official.nlp.data.squad_lib")
tokenization = pytest.importorskip("official.nlp.tools.tokenization")

# The published settings, and small windows (as test_windows.py's "small") under which a
# passage has ~10 windows, so answers meet window edges far more often.
PUBLISHED = WindowConfig(seq_len=384, query_len=64, doc_stride=128, do_lower_case=True)
SMALL = WindowConfig(seq_len=64, query_len=16, doc_stride=32, do_lower_case=True)
# BERT-Base uncased vocab.txt (uncased_L-12_H-768_A-12): 30,522 lines.
BERT_UNCASED_VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"

# file -> article title -> paragraph indices within the article. Comments: what each adds.
SLICE = {
    "dev-v1.1": {
        "Super_Bowl_50": (2, 12),  # vulgar fractions; 414 tokens, answers in 2 windows
        "Normans": (15,),  # 378 tokens: 2 windows
        "Nikola_Tesla": (0,),  # Cyrillic
        "Teacher": (52, 53),  # 2 windows
        "Martin_Luther": (0,),  # combining marks, Greek, accents
        "Harvard_University": (4,),  # U+200B zero-width space
        "Economic_inequality": (0,),  # 458 tokens
        "Doctor_Who": (23,),  # 384 passage tokens
        "Victoria_and_Albert_Museum": (8, 15),  # accents, 2 windows
        "Genghis_Khan": (52, 53),  # CJK, Cyrillic
        "Pharmacy": (5,),  # 505 tokens, accents
        "Packet_switching": (7,),  # 733 tokens: 5 windows
        "United_Methodist_Church": (43,),  # every answer in 2 windows
        "Rhine": (6,),  # U+FEFF byte-order mark inside the text
        "Islamism": (0,),  # Arabic, U+200E left-to-right mark
    },
    "dev-v2.0": {
        "Normans": (11,),
        "European_Union_law": (11, 12, 14, 16, 30, 31, 32, 34, 38, 39),  # 402-789 tokens
        "Ctenophora": (0, 14, 24),  # Greek, accents; 433 and 376 tokens, answers across edges
        "Fresno,_California": (17, 21),  # 394 tokens; superscripts
        "Packet_switching": (7,),  # 733 tokens, 10 of 14 questions unanswerable
        "Harvard_University": (4,),  # U+200B
        "Economic_inequality": (0,),
        "Yuan_dynasty": (0, 1, 9, 31),  # CJK; 388 tokens
        "Rhine": (6,),  # U+FEFF
        "Islamism": (0,),  # Arabic, U+200E
        "Warsaw": (0, 4),  # Polish diacritics, modifier letters
    },
}
# squad_lib's features, as the package's windows, field by field.
FIELDS = (
    "example_id", "window_index", "tokens", "input_ids", "input_mask", "segment_ids",
    "start_position", "end_position", "is_impossible", "token_to_orig_map",
    "token_is_max_context",
)
# The tf.Example features the SquadTransform stores (docs/architecture.md, "Windows").
STORED_FIELDS = (
    "example_id", "window_index", "input_ids", "input_mask", "segment_ids",
    "start_position", "end_position", "word_of_position", "max_context_of_position",
)


@dataclasses.dataclass
class Oracle:
    """squad_lib's output for one file and mode."""

    question_ids: list[str]  # the questions it read, in order (training: skips removed)
    windows: list[dict]  # one per feature, FIELDS and STORED_FIELDS
    contexts: dict[str, str]  # question id -> passage
    unanswerable: set[str]  # training mode: the ids of unanswerable questions


@pytest.fixture(scope="module")
def vocab_path(data_dir) -> str:
    return str(data_dir / "vocab" / "vocab.txt")


@pytest.fixture(scope="module")
def slice_files(data_dir, tmp_path_factory) -> dict[str, dict]:
    """file -> {"all": the slice with every answer, "first": with first answers only,
    "version_2": bool}."""
    work = tmp_path_factory.mktemp("squad_slice")
    files = {}
    for name, articles in SLICE.items():
        with gzip.open(data_dir / "squad" / f"{name}.json.gz", "rt", encoding="utf-8") as f:
            data = json.load(f)
        by_title = {article["title"]: article for article in data["data"]}
        chosen = [{"title": title,
                   "paragraphs": [by_title[title]["paragraphs"][i] for i in indices]}
                  for title, indices in articles.items()]
        first = json.loads(json.dumps(chosen))
        for article in first:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    qa["answers"] = qa["answers"][:1]
        paths = {}
        for kind, articles_json in (("all", chosen), ("first", first)):
            paths[kind] = work / f"{name}-{kind}.json"
            paths[kind].write_text(
                json.dumps({"version": data["version"], "data": articles_json}),
                encoding="utf-8")
        files[name] = {**paths, "version_2": data["version"].startswith("v2")}
    return files


def oracle_windows(path, training: bool, version_2: bool, vocab_path: str,
                   config: WindowConfig = PUBLISHED) -> Oracle:
    """The installed squad_lib over one SQuAD file, as Model Maker runs it."""
    examples = squad_lib.read_squad_examples(str(path), training, version_2)
    features = []

    def collect(feature, is_padding: bool = False) -> None:  # eval mode passes is_padding
        if not is_padding:
            features.append(feature)

    tokenizer = tokenization.FullTokenizer(vocab_path, do_lower_case=config.do_lower_case)
    squad_lib.convert_examples_to_features(
        examples, tokenizer, config.seq_len, config.doc_stride, config.query_len, training,
        collect, batch_size=1)
    windows = []
    for f in features:
        word_of_position = [-1] * config.seq_len
        max_context_of_position = [0] * config.seq_len
        for position, word in f.token_to_orig_map.items():
            word_of_position[position] = word
            max_context_of_position[position] = int(f.token_is_max_context[position])
        windows.append({
            "example_id": examples[f.example_index].qas_id,
            "window_index": f.doc_span_index,
            "tokens": f.tokens,
            "input_ids": f.input_ids,
            "input_mask": f.input_mask,
            "segment_ids": f.segment_ids,
            "start_position": f.start_position,
            "end_position": f.end_position,
            "is_impossible": f.is_impossible,
            "token_to_orig_map": f.token_to_orig_map,
            "token_is_max_context": f.token_is_max_context,
            "word_of_position": word_of_position,
            "max_context_of_position": max_context_of_position,
        })
    contexts = {e.qas_id: " ".join(e.doc_tokens) for e in examples}
    unanswerable = {e.qas_id for e in examples if e.is_impossible}
    return Oracle([e.qas_id for e in examples], windows, contexts, unanswerable)


def package_windows(path, training: bool, vocab_path: str,
                    config: WindowConfig = PUBLISHED) -> tuple[list[str], list[dict]]:
    """(the questions windowed, in order, and their windows: FIELDS from `make_windows`,
    STORED_FIELDS from the tf.Examples the SquadTransform writes)."""
    examples, invalid = squad_json.read_squad_examples(str(path))
    assert not invalid
    maker = WindowMaker(vocab_path, config)
    maker.tokenize_ahead(examples)
    windows, question_ids = [], []
    for example in examples:
        try:
            windows.extend(maker.make_windows(example, training))
        except AnswerNotFoundError:
            continue
        question_ids.append(example.id)
    stored = [window_from_tf_example(record) for record in windows_to_tf_examples(windows)]
    return question_ids, [{
        "example_id": w.example_id,
        "window_index": w.window_index,
        "tokens": w.tokens,
        "input_ids": w.input_ids,
        "input_mask": w.input_mask,
        "segment_ids": w.segment_ids,
        "start_position": w.start_position,
        "end_position": w.end_position,
        # docs/architecture.md: start/end 0/0 = no answer in this window.
        "is_impossible": (w.start_position, w.end_position) == (0, 0),
        "token_to_orig_map": w.token_to_orig_map,
        "token_is_max_context": w.token_is_max_context,
        **{f"tf.Example {field}": getattr(s, field) for field in STORED_FIELDS},
    } for w, s in zip(windows, stored, strict=True)]


def describe(ours, theirs) -> str:
    """Where two values of a field differ."""
    if isinstance(ours, list) and isinstance(theirs, list):
        i = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
        lengths = (f" (lengths: package {len(ours)}, squad_lib {len(theirs)})"
                   if len(ours) != len(theirs) else "")
        if i is None:
            return f"one is a prefix of the other{lengths}"
        return (f"first at position {i}: package {ours[i]!r}, squad_lib {theirs[i]!r}"
                f"{lengths}")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if ours.keys() != theirs.keys():
            return (f"positions only in the package {sorted(ours.keys() - theirs.keys())}, "
                    f"only in squad_lib {sorted(theirs.keys() - ours.keys())}")
        k = next(k for k in sorted(ours) if ours[k] != theirs[k])
        return f"first at position {k}: package {ours[k]!r}, squad_lib {theirs[k]!r}"
    return f"package {ours!r}, squad_lib {theirs!r}"


def differences(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Every difference, one line each, naming the question, the window and the field."""
    problems = []
    order = [w["example_id"] for w in ours], [w["example_id"] for w in theirs]
    ours_by, theirs_by = by_question(ours), by_question(theirs)
    for qid in dict.fromkeys(order[1] + order[0]):
        mine, expected = ours_by.get(qid, []), theirs_by.get(qid, [])
        if len(mine) != len(expected):
            problems.append(f"question {qid}: the package gives {len(mine)} windows, "
                            f"squad_lib {len(expected)}")
            continue
        for index, (a, b) in enumerate(zip(mine, expected, strict=True)):
            for field in FIELDS + tuple(f"tf.Example {f}" for f in STORED_FIELDS):
                oracle_field = field.removeprefix("tf.Example ")
                if a[field] != b[oracle_field]:
                    problems.append(f"question {qid} window {index} field {field}: "
                                    f"{describe(a[field], b[oracle_field])}")
    if not problems and order[0] != order[1]:
        problems.append("the windows are in another order than squad_lib's")
    return problems


def answer_cases(windows: list[dict], doc_stride: int) -> set[str]:
    """The window-edge cases one answerable question's training windows (squad_lib's) show."""
    with_answer = [w for w in windows if not w["is_impossible"]]
    if not with_answer:
        return {"answers in no window whole"}
    # The answer's passage tokens: window k's span starts at token k * doc_stride.
    first = with_answer[0]
    offset = first["segment_ids"].index(1)
    start = first["window_index"] * doc_stride + first["start_position"] - offset
    end = first["window_index"] * doc_stride + first["end_position"] - offset
    cases = set()
    if len(with_answer) > 1:
        cases.add("answers in several windows")
        if not first["token_is_max_context"][first["start_position"]]:
            cases.add("answers with max context in a later window")
    for w in windows:
        span_start = w["window_index"] * doc_stride
        span_end = span_start + sum(w["segment_ids"]) - 2  # the last passage token
        if (span_start <= start <= span_end) != (span_start <= end <= span_end):
            cases.add("answers across a window edge")
        if span_start <= start <= span_end and end == span_end + 1:
            cases.add("answers ending one token after a window")
        if span_start <= end <= span_end and start == span_start - 1:
            cases.add("answers starting one token before a window")
        if w["window_index"] and 0 <= start - span_start < 10:
            cases.add("answers starting < 10 tokens after a window starts")
        if w is not windows[-1] and 0 <= span_end - end < 10:
            cases.add("answers ending < 10 tokens before a window ends")
    return cases


def by_question(windows: list[dict]) -> dict[str, list[dict]]:
    grouped = collections.defaultdict(list)
    for w in windows:
        grouped[w["example_id"]].append(w)
    return grouped


@pytest.fixture(scope="module")
def oracle(slice_files, vocab_path):
    """(file, training) -> squad_lib's output, computed once."""
    cache = {}

    def get(name: str, training: bool) -> Oracle:
        if (name, training) not in cache:
            files = slice_files[name]
            cache[name, training] = oracle_windows(
                files["first" if training else "all"], training, files["version_2"],
                vocab_path)
        return cache[name, training]

    return get


def test_vocab_is_bert_uncased(vocab_path):
    import hashlib

    with open(vocab_path, "rb") as f:
        content = f.read()
    assert hashlib.md5(content).hexdigest() == BERT_UNCASED_VOCAB_MD5
    lines = content.decode("utf-8").splitlines()
    assert len(lines) == 30522
    assert lines[:1] + lines[100:104] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("name", sorted(SLICE))
def test_every_window_equals_squad_libs(name, training, slice_files, oracle, vocab_path):
    expected = oracle(name, training)
    question_ids, windows = package_windows(slice_files[name]["all"], training, vocab_path)
    assert question_ids == expected.question_ids, (
        f"questions windowed: only by the package "
        f"{sorted(set(question_ids) - set(expected.question_ids))}, only by squad_lib "
        f"{sorted(set(expected.question_ids) - set(question_ids))}")
    assert_same_windows(f"{name} {'training' if training else 'eval'}", windows,
                        expected.windows)
    assert len(windows) == len(expected.windows) > len(question_ids) > 0


def assert_same_windows(label: str, windows, expected) -> None:
    """Fails listing the first differences (question id, window, field) from squad_lib's."""
    problems = differences(windows, expected)
    if problems:
        pytest.fail(
            f"{label}: {len(problems)} differences from squad_lib (windows: {len(windows)} "
            f"here, {len(expected)} in squad_lib); the first ones:\n" + "\n".join(problems[:10]))


def test_small_windows_training_equals_squad_libs(slice_files, vocab_path):
    """SQuAD v1.1 slice, training, small windows: answers at every kind of window edge (the
    dev sets at the published settings hold no answer ending one token after a window)."""
    files = slice_files["dev-v1.1"]
    expected = oracle_windows(files["first"], True, files["version_2"], vocab_path, SMALL)
    cases = collections.Counter()
    for windows in by_question(expected.windows).values():
        cases.update(answer_cases(windows, SMALL.doc_stride) if len(windows) > 1 else ())
    for case, at_least in [
        ("answers across a window edge", 5), ("answers ending one token after a window", 1),
        ("answers starting one token before a window", 1),
        ("answers with max context in a later window", 10), ("answers in no window whole", 1),
    ]:
        assert cases[case] >= at_least, (case, dict(cases))
    question_ids, windows = package_windows(files["all"], True, vocab_path, SMALL)
    assert question_ids == expected.question_ids
    assert_same_windows(f"dev-v1.1 training, {SMALL}", windows, expected.windows)


def test_the_slice_covers_the_hard_cases(oracle):
    """Counted on squad_lib's own output (training mode: answer positions)."""
    counts = collections.Counter()
    for name in SLICE:
        training, evaluation = oracle(name, True), oracle(name, False)
        assert len(training.question_ids) == len(evaluation.question_ids)  # none skipped
        counts["questions"] += len(evaluation.question_ids)
        for qid, windows in by_question(training.windows).items():
            if len(windows) < 2:
                continue
            counts["questions with several windows"] += 1
            counts["windows of those"] += len(windows)
            if qid in training.unanswerable:
                counts["unanswerable questions with several windows"] += 1
            else:
                counts.update(answer_cases(windows, PUBLISHED.doc_stride))
        for context in evaluation.contexts.values():
            characters = {unicodedata.name(c, "").split(" ")[0] for c in context if c > "\x7f"}
            categories = {unicodedata.category(c) for c in context}
            counts["passages with CJK"] += "CJK" in characters
            counts["passages with Greek, Cyrillic or Arabic"] += bool(
                characters & {"GREEK", "CYRILLIC", "ARABIC"})
            counts["passages with accents"] += any(
                unicodedata.category(c) == "Mn" for c in unicodedata.normalize("NFD", context))
            counts["passages with format characters"] += "Cf" in categories
        counts["unanswerable questions"] += len(training.unanswerable)
    assert 300 <= counts["questions"] <= 500, counts
    for case, at_least in [
        ("questions with several windows", 150), ("answers in several windows", 30),
        ("answers with max context in a later window", 20),
        ("answers across a window edge", 5),
        ("answers starting < 10 tokens after a window starts", 3),
        ("answers ending < 10 tokens before a window ends", 1),
        ("unanswerable questions with several windows", 50), ("unanswerable questions", 100),
        ("passages with CJK", 20), ("passages with Greek, Cyrillic or Arabic", 20),
        ("passages with accents", 50), ("passages with format characters", 20),
    ]:
        assert counts[case] >= at_least, (case, dict(counts))


def test_questions_squad_lib_skips_are_skipped(vocab_path, tmp_path):
    """Training: an answer that is not in the passage's words (here because of a no-break
    space, which splits the answer but not the passage) is skipped by squad_lib and raises
    `AnswerNotFoundError` here; the other questions' windows stay equal."""
    context = "Paris is the capital of France; 12\u00a0km\u00b2 of it lie within the walls."
    qas = [
        {"id": "nbsp", "question": "How much?", "answers": [
            {"text": "12\u00a0km\u00b2", "answer_start": context.index("12")}]},
        {"id": "subword", "question": "Which country?", "answers": [
            {"text": "Fran", "answer_start": context.index("Fran")}]},
        {"id": "last", "question": "Where?", "answers": [
            {"text": "walls.", "answer_start": context.index("walls.")}]},
    ]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": [
        {"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}))
    expected = oracle_windows(path, True, False, vocab_path)
    assert expected.question_ids == ["subword", "last"]
    question_ids, windows = package_windows(path, True, vocab_path)
    assert question_ids == expected.question_ids
    assert not differences(windows, expected.windows)
    maker = WindowMaker(vocab_path)
    with pytest.raises(AnswerNotFoundError, match="nbsp"):
        maker.make_windows(SquadExample("nbsp", "t", context, "How much?", ("12\u00a0km\u00b2",),
                                        (context.index("12"),)), training=True)
