"""Logits → answers: hand-set logits over real windows of real tokenization."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from components.qa import postprocess
from components.qa.squad import SquadExample
from components.qa.windows import WindowConfig, WindowMaker

LOW = -10.0


@pytest.fixture(scope="module")
def maker(data_dir) -> WindowMaker:
    return WindowMaker(str(data_dir / "vocab" / "vocab.txt"), WindowConfig(64, 16, 32))


@pytest.fixture(scope="module")
def small_maker(data_dir) -> WindowMaker:
    """Windows of 12 passage tokens every 4: most tokens are in several windows."""
    return WindowMaker(str(data_dir / "vocab" / "vocab.txt"), WindowConfig(20, 5, 4))


def _example(context: str, question: str = "What?", qid: str = "q1") -> SquadExample:
    return SquadExample(id=qid, title="t", context=context, question=question)


def _position(window, tokens: list[str], after: int = 0) -> int:
    """The position of the first run of `tokens` in the window's passage part."""
    first_passage = min(window.token_to_orig_map)
    for start in range(max(first_passage, after), len(window.tokens) - len(tokens) + 1):
        if window.tokens[start : start + len(tokens)] == tokens:
            return start
    raise AssertionError(f"{tokens} not in {window.tokens}")


def _logits(windows, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.full((len(windows), seq_len), LOW, np.float32),
            np.full((len(windows), seq_len), LOW, np.float32))


def _predict(example, windows, start, end, maker, **kwargs) -> postprocess.Answers:
    return postprocess.predict_answers(
        [example], windows, start, end, doc_words=maker.doc_words,
        do_lower_case=maker.config.do_lower_case, **kwargs,
    )


def _answer_span(maker, context: str, first: list[str], last: list[str]) -> str:
    """The answer text when the logits pick the span from token run `first` to `last`."""
    example = _example(context)
    windows = maker.make_windows(example, training=False)
    assert len(windows) == 1
    start, end = _logits(windows, maker.config.seq_len)
    s = _position(windows[0], first)
    e = _position(windows[0], last, after=s) + len(last) - 1
    start[0, s] = end[0, e] = 5.0
    return _predict(example, windows, start, end, maker).predictions[example.id]


@pytest.mark.parametrize(
    "context, first, last, expected",
    [
        ("Steve Smith's team won.", ["steve"], ["smith"], "Steve Smith"),
        ("Steve Smith's team won.", ["steve"], ["s"], "Steve Smith's"),
        ("Le café Zürich ouvre.", ["cafe"], ["zurich"], "café Zürich"),
        ("He lived (1895–1943) in Paris.", ["1895"], ["1895"], "1895"),
        ("He lived (1895–1943) in Paris.", ["1895"], ["1943"], "1895–1943"),
        ("首都は東京です。", ["東"], ["京"], "東京"),
        ("Die STRASSE heißt Ölweg!", ["st"], ["##g"], "STRASSE heißt Ölweg"),
        ("I  paid $1,000\tfor   it", ["$"], ["000"], "$1,000"),
        # A no-break space is not run_squad's whitespace but is the tokenizer's: the
        # alignment fails and, as in the classic code, the whole word is returned.
        ("I paid \u00a0$1,000 for it", ["$"], ["000"], "\u00a0$1,000"),
    ],
)
def test_answer_is_the_original_passage_text(maker, context, first, last, expected):
    assert _answer_span(maker, context, first, last) == expected


def test_spans_outside_the_passage_are_excluded(maker):
    example = _example("Paris is the capital of France.", "What is the capital of France?")
    windows = maker.make_windows(example, training=False)
    window = windows[0]
    start, end = _logits(windows, maker.config.seq_len)
    query = [i for i, t in enumerate(window.tokens) if i not in window.token_to_orig_map]
    padding = list(range(len(window.tokens), len(window.tokens) + 5))
    assert len(query + padding) < 20  # the n-best positions also hold valid ones
    for i in query + padding:  # [CLS], the question, both [SEP]s, padding: all preferred
        start[0, i] = end[0, i] = 9.0
    paris = _position(window, ["paris"])
    start[0, paris] = end[0, paris] = 1.0
    answers = _predict(example, windows, start, end, maker)
    assert answers.predictions == {"q1": "Paris"}
    assert all(e["start_logit"] != 9.0 and e["end_logit"] != 9.0 for e in answers.nbest["q1"])


def test_end_before_start_is_no_span(maker):
    example = _example("one two three four five six seven eight")
    windows = maker.make_windows(example, training=False)
    start, end = _logits(windows, maker.config.seq_len)
    start[0, _position(windows[0], ["six"])] = 8.0
    end[0, _position(windows[0], ["two"])] = 8.0
    nbest = _predict(example, windows, start, end, maker).nbest["q1"]
    assert all(e["start_logit"] + e["end_logit"] < 0 for e in nbest)


def test_max_answer_length(maker):
    example = _example("one two three four five six seven eight")
    windows = maker.make_windows(example, training=False)
    start, end = _logits(windows, maker.config.seq_len)
    two, six, seven, eight = (_position(windows[0], [w]) for w in "two six seven eight".split())
    start[0, two], end[0, six] = 4.0, 4.0  # "two ... six": 5 tokens, score 8
    start[0, seven], end[0, eight] = 2.0, 2.0  # "seven eight": 2 tokens, score 4
    long = _predict(example, windows, start, end, maker, max_answer_length=5)
    assert long.predictions["q1"] == "two three four five six"
    assert "two three four five six seven eight" not in {e["text"] for e in long.nbest["q1"]}
    short = _predict(example, windows, start, end, maker, max_answer_length=4)
    assert short.predictions["q1"] == "seven eight"
    assert all(len(e["text"].split()) <= 4 for e in short.nbest["q1"])


def test_only_max_context_starts_count_across_overlapping_windows(small_maker):
    context = " ".join(f"w{i}" for i in range(40))
    example = _example(context)
    windows = small_maker.make_windows(example, training=False)
    assert len(windows) > 3
    # A word seen by two windows; which of them gives it the most context.
    word = 20
    holders = [
        (w, pos) for w in windows for pos, idx in w.token_to_orig_map.items()
        if idx == word and w.tokens[pos] == "w"
    ]
    assert len(holders) >= 2
    best = [(w, p) for w, p in holders if w.token_is_max_context[p]]
    other = [(w, p) for w, p in holders if not w.token_is_max_context[p]]
    assert len(best) == 1 and other
    start, end = _logits(windows, small_maker.config.seq_len)
    for w, p in other:  # very likely, but not max-context: must be ignored
        start[w.window_index, p] = end[w.window_index, p + 1] = 9.0
    w, p = best[0]
    start[w.window_index, p] = end[w.window_index, p + 1] = 2.0
    answers = _predict(example, windows, start, end, small_maker)
    assert answers.predictions["q1"] == "w20"
    top = answers.nbest["q1"][0]
    assert (top["start_logit"], top["end_logit"]) == (2.0, 2.0)
    assert all(e["start_logit"] != 9.0 for e in answers.nbest["q1"])


def _two_window_null_case(small_maker):
    example = _example(" ".join(f"w{i}" for i in range(20)))
    windows = small_maker.make_windows(example, training=False)
    start, end = _logits(windows, small_maker.config.seq_len)
    start[:, 0] = end[:, 0] = 3.0  # null score 6 in every window ...
    start[1, 0] = end[1, 0] = 1.0  # ... but 2 in window 1: the minimum counts
    w = windows[1]
    p = next(p for p, on in w.token_is_max_context.items() if on and w.tokens[p] == "w")
    start[1, p] = end[1, p + 1] = 1.5  # best span: 3
    return example, windows, start, end, w.tokens[p] + w.tokens[p + 1].lstrip("#")


def test_null_score_against_the_threshold(small_maker):
    example, windows, start, end, span_text = _two_window_null_case(small_maker)
    answers = _predict(example, windows, start, end, small_maker, version_2_with_negative=True)
    assert answers.null_odds == {"q1": pytest.approx(2.0 - 3.0)}
    assert answers.predictions["q1"] == span_text
    null_entry = next(e for e in answers.nbest["q1"] if e["text"] == "")
    assert (null_entry["start_logit"], null_entry["end_logit"]) == (1.0, 1.0)
    strict = _predict(example, windows, start, end, small_maker, version_2_with_negative=True,
                      null_score_diff_threshold=-1.5)
    assert strict.predictions["q1"] == ""
    v1 = _predict(example, windows, start, end, small_maker)
    assert v1.predictions["q1"] == span_text and v1.null_odds == {}
    assert all(e["text"] for e in v1.nbest["q1"])


def test_nbest_is_sorted_unique_and_probabilities_sum_to_one(maker):
    example = _example("Alpha beta gamma delta epsilon zeta eta theta.")
    windows = maker.make_windows(example, training=False)
    rng = np.random.default_rng(0)
    start = rng.normal(size=(1, maker.config.seq_len)).astype(np.float32)
    end = rng.normal(size=(1, maker.config.seq_len)).astype(np.float32)
    nbest = _predict(example, windows, start, end, maker, n_best_size=5).nbest["q1"]
    assert 1 <= len(nbest) <= 5
    scores = [e["start_logit"] + e["end_logit"] for e in nbest]
    assert scores == sorted(scores, reverse=True)
    assert len({e["text"] for e in nbest}) == len(nbest)
    assert sum(e["probability"] for e in nbest) == pytest.approx(1.0)
    assert all(isinstance(e["start_logit"], float) for e in nbest)


def test_no_valid_span_gives_the_classic_fallbacks(maker):
    example = _example("Nothing to see here.")
    windows = maker.make_windows(example, training=False)
    start, end = _logits(windows, maker.config.seq_len)
    start[0, 0] = end[0, 0] = 5.0  # only [CLS] in the top-1
    v1 = _predict(example, windows, start, end, maker, n_best_size=1)
    assert v1.predictions["q1"] == "empty"
    assert v1.nbest["q1"] == [
        {"text": "empty", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}
    ]
    v2 = _predict(example, windows, start, end, maker, n_best_size=1,
                  version_2_with_negative=True)
    assert v2.predictions["q1"] == ""
    assert v2.null_odds["q1"] == 10.0


def test_question_without_windows_is_reported(maker, caplog):
    with_windows, without = _example("Paris.", qid="a"), _example("Rome.", qid="b")
    windows = maker.make_windows(with_windows, training=False)
    start, end = _logits(windows, maker.config.seq_len)
    with caplog.at_level(logging.WARNING):
        answers = postprocess.predict_answers(
            [with_windows, without], windows, start, end, doc_words=maker.doc_words
        )
    assert answers.predictions["b"] == "empty"
    assert "1 questions have no window" in caplog.text and "'b'" in caplog.text


def test_bad_inputs_are_named(maker):
    example = _example("Paris.")
    windows = maker.make_windows(example, training=False)
    start, end = _logits(windows, maker.config.seq_len)
    with pytest.raises(ValueError, match="2 rows of logits for 1 windows"):
        postprocess.predict_answers([example], windows, np.vstack([start, start]),
                                    np.vstack([end, end]), doc_words=maker.doc_words)
    with pytest.raises(ValueError, match="must both be"):
        postprocess.predict_answers([example], windows, start, end[:, :5],
                                    doc_words=maker.doc_words)
    with pytest.raises(ValueError, match="logits cover 3"):
        postprocess.predict_answers([example], windows, start[:, :3], end[:, :3],
                                    doc_words=maker.doc_words)
    with pytest.raises(ValueError, match="question 'q1' belongs to no given example"):
        postprocess.predict_answers([], windows, start, end, doc_words=maker.doc_words)
    with pytest.raises(ValueError, match="'q1' appears twice"):
        postprocess.predict_answers([example, example], windows, start, end,
                                    doc_words=maker.doc_words)


def test_write_answers_as_run_squad_does(tmp_path):
    answers = postprocess.Answers(
        predictions={"q1": "東京", "q2": ""},
        nbest={"q1": [{"text": "東京", "probability": 1.0, "start_logit": 2.0,
                       "end_logit": 1.0}]},
        null_odds={"q1": -3.0, "q2": 1.5},
    )
    out = tmp_path / "new" / "dir" / "preds.json"
    paths = postprocess.write_answers(answers, str(out), version_2=True)
    assert paths == {"predictions": str(out),
                     "nbest": str(out.parent / "nbest_predictions.json"),
                     "null_odds": str(out.parent / "null_odds.json")}
    for field, path in paths.items():
        assert json.loads(open(path, encoding="utf-8").read()) == getattr(answers, field)
    assert "東京" in out.read_text("utf-8")  # readable UTF-8, not \u escapes
    v1 = postprocess.write_answers(answers, str(tmp_path / "v1.json"), version_2=False)
    assert set(v1) == {"predictions", "nbest"}
    assert not (tmp_path / "null_odds.json").exists()


def _v2_questions(small_maker, seed: int):
    """Questions of 3 to 40 words over 1 to 9 windows, random logits with null scores
    spread around the spans' scores; in the last question's windows [CLS] and the first
    question token are the top two starts and ends."""
    rng = np.random.default_rng(seed)
    words = "Paris river old city bank north 1889 tower Zürich café".split()
    examples = [
        _example(" ".join(rng.choice(words, size=n)), qid=f"q{i}")
        for i, n in enumerate(rng.integers(3, 41, size=24))
    ]
    windows = [w for e in examples for w in small_maker.make_windows(e, training=False)]
    shape = (len(windows), small_maker.config.seq_len)
    start = rng.normal(0.0, 2.0, shape).astype(np.float32)
    end = rng.normal(0.0, 2.0, shape).astype(np.float32)
    start[:, 0] += rng.normal(8.0, 4.0, len(windows)).astype(np.float32)
    last = [row for row, w in enumerate(windows) if w.example_id == examples[-1].id]
    start[last, :2] = end[last, :2] = 9.0
    return examples, windows, start, end


@pytest.mark.parametrize("n_best_size", [2, 20])
def test_at_threshold_is_postprocessing_at_that_threshold(small_maker, n_best_size):
    examples, windows, start, end = _v2_questions(small_maker, n_best_size)

    def predict(threshold: float) -> postprocess.Answers:
        return postprocess.predict_answers(
            examples, windows, start, end, doc_words=small_maker.doc_words,
            n_best_size=n_best_size, version_2_with_negative=True,
            null_score_diff_threshold=threshold,
        )

    bases = [predict(t0) for t0 in (-3.0, 0.0, 4.0)]
    odds = sorted(set(bases[0].null_odds.values()))
    assert len(odds) == len(examples)
    below = [float(np.nextafter(o, -np.inf)) for o in odds]
    for threshold in [-np.inf, np.inf, 0.0, *odds, *below]:
        expected = predict(threshold)
        for base in bases:
            got = base.at_threshold(threshold)
            assert list(got.predictions.items()) == list(expected.predictions.items())
            assert (got.nbest, got.null_odds) == (expected.nbest, expected.null_odds)
    non_null = bases[1].non_null_predictions
    assert non_null == predict(np.inf).predictions
    assert 5 < sum(1 for text in bases[1].predictions.values() if not text) < len(examples) - 5
    assert (non_null[examples[-1].id] == "") is (n_best_size == 2)


def test_at_threshold_tie_is_answered(small_maker):
    example, windows, start, end, span_text = _two_window_null_case(small_maker)
    answers = _predict(example, windows, start, end, small_maker, version_2_with_negative=True,
                       null_score_diff_threshold=5.0)
    assert answers.predictions == {"q1": span_text} and answers.null_odds == {"q1": -1.0}
    just_below = float(np.nextafter(-1.0, -np.inf))
    for threshold, expected in ((-1.0, span_text), (just_below, "")):
        assert answers.at_threshold(threshold).predictions == {"q1": expected}
        direct = _predict(example, windows, start, end, small_maker,
                          version_2_with_negative=True, null_score_diff_threshold=threshold)
        assert direct.predictions == {"q1": expected}


def test_at_threshold_needs_squad_v2_answers(maker):
    example = _example("Paris is nice.")
    windows = maker.make_windows(example, training=False)
    start, end = _logits(windows, maker.config.seq_len)
    v1 = _predict(example, windows, start, end, maker)
    with pytest.raises(ValueError, match="1 questions have no null odds or n-best.*'q1'"):
        v1.at_threshold(0.0)
