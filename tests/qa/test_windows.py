"""WindowMaker gives exactly the features of BERT's classic run_squad.py (classic_squad.py)."""

import dataclasses
import json

import pytest
import tensorflow as tf

from components.qa import spec as spec_lib
from components.qa import squad_json
from components.qa.squad import SquadExample
from components.qa.windows import (
    AnswerNotFoundError,
    WindowConfig,
    WindowMaker,
    window_from_tf_example,
    windows_to_tf_examples,
)
from tests.qa import classic_squad

VOCAB = "tests/data/vocab/vocab.txt"
SQUAD = "tests/data/squad/dev-v2.0-first5articles.official.json"
FIELDS = (
    "example_id", "window_index", "tokens", "input_ids", "input_mask", "segment_ids",
    "start_position", "end_position", "token_to_orig_map", "token_is_max_context",
)
SETTINGS = {"default": WindowConfig(), "small": WindowConfig(64, 16, 32)}


@pytest.fixture(scope="module")
def classic_tokenizer():
    return classic_squad.ClassicTokenizer(VOCAB)


@pytest.fixture(scope="module")
def squad_examples():
    examples, invalid = squad_json.read_squad_examples(SQUAD)
    assert not invalid
    return examples


def classic_windows(example: SquadExample, config: WindowConfig, training: bool, tokenizer):
    answers = [
        {"text": t, "answer_start": s}
        for t, s in zip(example.answer_texts, example.answer_starts, strict=True)
    ]
    classic = classic_squad.make_example(
        example.id, classic_squad.split_doc(example.context), example.question, answers,
        example.is_impossible, training,
    )
    if classic is None:
        return None
    return classic_squad.convert_examples_to_features(
        [classic], tokenizer, config.seq_len, config.doc_stride, config.query_len, training
    )


def as_dicts(windows):
    return [{f: getattr(w, f) for f in FIELDS} for w in windows]


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_window_of_squad_matches_classic(setting, training, squad_examples,
                                               classic_tokenizer):
    config = SETTINGS[setting]
    classic_examples, skipped = classic_squad.read_squad_examples(SQUAD, training)
    expected = classic_squad.convert_examples_to_features(
        classic_examples, classic_tokenizer, config.seq_len, config.doc_stride,
        config.query_len, training,
    )
    maker = WindowMaker(VOCAB, config)
    windows = []
    for example in squad_examples:
        windows.extend(maker.make_windows(example, training))
    assert skipped == []
    ahead = WindowMaker(VOCAB, config)  # every word tokenized in one call first
    ahead.tokenize_ahead(squad_examples)
    assert ahead.tokenizer._word_cache.keys() >= maker.tokenizer._word_cache.keys()
    assert [w for e in squad_examples for w in ahead.make_windows(e, training)] == windows
    assert len(windows) == len(expected)
    assert as_dicts(windows) == expected
    if setting == "small":
        assert len(windows) > 3 * len(squad_examples)  # many windows per question
    if training:
        answered = sum(w.start_position > 0 for w in windows)
        assert answered > 600
        assert all(w.end_position >= w.start_position for w in windows)


def _example(context, question="what is it?", answer=None, start=None, impossible=False):
    if answer is None:
        return SquadExample("q1", "t", context, question, is_impossible=impossible)
    if start is None:
        start = context.index(answer)
    return SquadExample("q1", "t", context, question, (answer,), (start,))


WORDS = " ".join(f"w{i}" for i in range(60))  # 'w0' .. 'w59': 2 tokens each ('w', '##0')


@pytest.mark.parametrize(
    "example",
    [
        _example(WORDS, answer="w10 w11"),  # inside the first window
        _example(WORDS, answer="w12 w13 w14"),  # straddles the first two windows
        _example(WORDS, answer="w0"),  # the passage's first token
        _example(WORDS, answer="w59"),  # the passage's last token
        _example(WORDS, answer="w13"),  # at a window's last token
        _example(WORDS, answer="w8"),  # at a window's first token
        _example(WORDS, impossible=True),
        _example("(1895-1943) was born", answer="1895"),  # _improve_answer_span
        _example("the year 1895-1943.", answer="1943"),
        _example("Émile Zola wrote Thérèse Raquin. ", answer="Thérèse"),
        _example("北京大学 is in 北京 ok", answer="北京"),
        _example("a\u00a0b c\u200bd e", answer="c\u200bd"),
        _example(WORDS, question=" ".join(["why"] * 40), answer="w30"),  # query truncated
    ],
)
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_targeted_cases_match_classic(example, training, classic_tokenizer):
    config = WindowConfig(seq_len=32, query_len=8, doc_stride=8)
    windows = WindowMaker(VOCAB, config).make_windows(example, training)
    assert as_dicts(windows) == classic_windows(example, config, training, classic_tokenizer)


def test_answer_straddling_windows_is_only_where_whole():
    config = WindowConfig(seq_len=32, query_len=8, doc_stride=8)
    # question 'what is it?' = 4 tokens: passage spans of 32 - 4 - 3 = 25 tokens, every 8.
    windows = WindowMaker(VOCAB, config).make_windows(_example(WORDS, answer="w12 w13"), True)
    positions = [(w.start_position, w.end_position) for w in windows]
    # 'w12 w13' is passage tokens 24..27: window 0 holds 0..24 (cut), window 1 holds 8..32.
    assert positions[0] == (0, 0)
    assert positions[1] == (24 - 8 + 6, 27 - 8 + 6)
    assert windows[1].tokens[positions[1][0]:positions[1][1] + 1] == ["w", "##12", "w", "##13"]


def test_max_context_of_every_passage_token_is_in_exactly_one_window():
    maker = WindowMaker(VOCAB, WindowConfig(seq_len=32, query_len=8, doc_stride=5))
    windows = maker.make_windows(_example(WORDS), training=False)
    assert len(windows) > 5
    owners = {}
    for w in windows:
        start = len(w.tokens) - 1 - len(w.token_to_orig_map)
        for position, is_max in w.token_is_max_context.items():
            if is_max:
                key = w.window_index * 5 + position - start
                assert key not in owners
                owners[key] = w.window_index
    assert sorted(owners) == list(range(120))


def test_unanswerable_and_eval_windows_have_no_positions():
    maker = WindowMaker(VOCAB, WindowConfig(seq_len=32, query_len=8, doc_stride=8))
    for example, training in [
        (_example(WORDS, impossible=True), True),
        (_example(WORDS, answer="w30"), False),
    ]:
        windows = maker.make_windows(example, training)
        assert len(windows) == 13  # 120 passage tokens, spans of 25 every 8
        assert {(w.start_position, w.end_position) for w in windows} == {(0, 0)}


def test_layout_of_a_window():
    config = WindowConfig(seq_len=24, query_len=4, doc_stride=8)
    maker = WindowMaker(VOCAB, config)
    example = _example("Paris is the capital of France.", "Which city is the capital?",
                       answer="Paris")
    (window,) = maker.make_windows(example, training=True)
    assert window.tokens == [
        "[CLS]", "which", "city", "is", "the", "[SEP]",
        "paris", "is", "the", "capital", "of", "france", ".", "[SEP]",
    ]
    vocab = maker.tokenizer.vocab
    assert window.input_ids == [vocab[t] for t in window.tokens] + [0] * 10
    assert window.input_mask == [1] * 14 + [0] * 10
    assert window.segment_ids == [0] * 6 + [1] * 8 + [0] * 10
    assert (window.start_position, window.end_position) == (6, 6)
    assert window.token_to_orig_map == {6: 0, 7: 1, 8: 2, 9: 3, 10: 4, 11: 5, 12: 5}
    assert maker.doc_words(example.context)[5] == "France."
    assert all(window.token_is_max_context.values())


def test_answer_not_found_is_signalled_in_training_only():
    maker = WindowMaker(VOCAB, WindowConfig(seq_len=32, query_len=8, doc_stride=8))
    wrong = _example("the cat sat on the mat", answer="dog", start=4)
    with pytest.raises(AnswerNotFoundError, match="q1.*'dog'") as error:
        maker.make_windows(wrong, training=True)
    assert error.value.example_id == "q1"
    assert classic_windows(wrong, maker.config, True, classic_squad.ClassicTokenizer(VOCAB)) is None
    assert len(maker.make_windows(wrong, training=False)) == 1
    outside = _example("the cat sat", answer="cat", start=40)
    with pytest.raises(AnswerNotFoundError, match="outside the passage"):
        maker.make_windows(outside, training=True)


def test_training_windows_skip_and_count_answers_not_found():
    maker = WindowMaker(VOCAB, WindowConfig(seq_len=32, query_len=8, doc_stride=8))
    good = _example("the cat sat on the mat", answer="cat", start=4)
    wrong = _example("the cat sat on the mat", answer="dog", start=4)
    windows, skipped = maker.training_windows([good, wrong, good])
    assert skipped == 1
    assert windows == maker.make_windows(good, training=True) * 2


def test_passage_without_tokens_has_no_windows():
    maker = WindowMaker(VOCAB, WindowConfig(seq_len=32, query_len=8, doc_stride=8))
    assert maker.make_windows(_example("\x00 \u200b"), training=False) == []


def test_tf_example_round_trip():
    maker = WindowMaker(VOCAB, WindowConfig(seq_len=32, query_len=8, doc_stride=8))
    windows = maker.make_windows(_example(WORDS, answer="w20 w21"), training=True)
    assert len(windows) > 1
    for window, serialized in zip(windows, windows_to_tf_examples(windows), strict=True):
        example = tf.train.Example.FromString(serialized)
        features = example.features.feature
        assert len(features["input_ids"].int64_list.value) == 32
        assert len(features["token_to_orig_map"].int64_list.value) == 32
        assert features["token_to_orig_map"].int64_list.value[0] == -1
        assert window_from_tf_example(serialized, maker.tokenizer.vocab) == window
        assert window_from_tf_example(example) == dataclasses.replace(window, tokens=[])
        parsed = tf.io.parse_single_example(serialized, {
            "input_ids": tf.io.FixedLenFeature([32], tf.int64),
            "start_positions": tf.io.FixedLenFeature([], tf.int64),
        })
        assert int(parsed["start_positions"]) == window.start_position


def test_config():
    spec = spec_lib.MobileBertQaSpec(seq_len=128, query_len=32, doc_stride=64,
                                     do_lower_case=False)
    assert WindowConfig.from_spec(spec) == WindowConfig(128, 32, 64, False)
    with pytest.raises(ValueError, match="query_len"):
        WindowConfig(seq_len=10, query_len=8)
    with pytest.raises(ValueError, match="doc_stride"):
        WindowConfig(doc_stride=0)


def test_mbqa_windows_writes_every_window_in_input_order(tmp_path, capsys, classic_tokenizer):
    from pipelines.cli import main

    with open(SQUAD, encoding="utf-8") as f:
        article = json.load(f)["data"][1]
    article["paragraphs"] = article["paragraphs"][:3] + [{"context": "x a\u00a0b y", "qas": [{
        "id": "nbsp", "question": "Which?", "is_impossible": False,
        "answers": [{"text": "a\u00a0b", "answer_start": 2}],
    }]}]
    squad_path = tmp_path / "squad.json"
    squad_path.write_text(json.dumps({"version": "v2.0", "data": [article]}), encoding="utf-8")
    out = tmp_path / "windows.jsonl"
    args = ["windows", "--squad", str(squad_path), "--vocab", VOCAB, "--seq-len", "64",
            "--query-len", "16", "--doc-stride", "32", "--training", "--out", str(out)]
    assert main(args) == 0
    classic_examples, skipped = classic_squad.read_squad_examples(str(squad_path), True)
    expected = classic_squad.convert_examples_to_features(
        classic_examples, classic_tokenizer, 64, 32, 16, True)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert skipped == ["nbsp"]
    assert lines == [{k: f[k] for k in lines[0]} for f in expected]
    assert set(lines[0]) == {"example_id", "window_index", "input_ids", "segment_ids",
                             "input_mask", "start_position", "end_position"}
    captured = capsys.readouterr()
    assert f"to {out}" in captured.out and "1 skipped" in captured.out
    assert "'nbsp'" in captured.err
    before = out.read_text()
    assert main(args) == 2  # an existing output is not replaced without --overwrite
    assert out.read_text() == before
    assert main([*args, "--overwrite", "--no-lower-case"]) == 0
    assert out.read_text() != before
