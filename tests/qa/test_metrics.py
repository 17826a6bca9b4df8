"""The SQuAD metrics against an independent transcription of the official scripts."""

from __future__ import annotations

import gzip
import json
import logging
import random

import numpy as np
import pytest

from components.qa import metrics
from components.qa.postprocess import Answers
from components.qa.squad import SquadExample
from components.qa.squad_json import read_squad_examples
from tests.qa import official_squad_eval as official


def _load(path) -> list:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)["data"]


@pytest.fixture(scope="module")
def dev_v1(data_dir) -> list:
    return _load(data_dir / "squad" / "dev-v1.1.json.gz")


@pytest.fixture(scope="module")
def dev_v2(data_dir) -> list:
    return _load(data_dir / "squad" / "dev-v2.0.json.gz")


def _qas(dataset: list) -> list[dict]:
    return [qa for article in dataset for p in article["paragraphs"] for qa in p["qas"]]


# Each perturbation maps (gold answer, a wrong answer, rng) to a prediction.
_PERTURBATIONS = [
    lambda g, w, r: g,
    lambda g, w, r: g.upper(),
    lambda g, w, r: f'"{g}."',
    lambda g, w, r: f"The {g}",
    lambda g, w, r: f"  {g}\t\n an ",
    lambda g, w, r: g.replace("e", "é"),
    lambda g, w, r: f"{g}，",  # full-width comma: not ASCII punctuation, not removed
    lambda g, w, r: f"「{g}」",
    lambda g, w, r: f"{g} 東京",
    lambda g, w, r: g.replace(" ", "\u00a0"),
    lambda g, w, r: g.split()[0] if g.split() else g,
    lambda g, w, r: f"{g} {w}",
    lambda g, w, r: w,
    lambda g, w, r: "",
    lambda g, w, r: "a the an",
    lambda g, w, r: "–".join(g.split()),
]


def _perturbed_predictions(dataset: list, seed: int, drop: float = 0.0) -> dict[str, str]:
    rng = random.Random(seed)
    qas = _qas(dataset)
    all_golds = [a["text"] for qa in qas for a in qa["answers"]] or ["nothing"]
    predictions = {}
    for qa in qas:
        if rng.random() < drop:
            continue
        golds = [a["text"] for a in qa["answers"]]
        plausible = [a["text"] for a in qa.get("plausible_answers", [])]
        gold = rng.choice(golds or plausible or [""])
        wrong = rng.choice(all_golds)
        predictions[qa["id"]] = rng.choice(_PERTURBATIONS)(gold, wrong, rng)
    return predictions


def _na_probs(predictions: dict, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    # Rounded so that ties occur, as with real models' calibrated scores.
    return {qid: round(rng.random(), 2) for qid in predictions}


def test_v1_dev_matches_official_with_perturbed_predictions(dev_v1):
    assert len(_qas(dev_v1)) == 10570
    for seed in range(2):
        predictions = _perturbed_predictions(dev_v1, seed, drop=0.02 * seed)
        ours = metrics.evaluate_v1(dev_v1, predictions)
        assert ours == official.evaluate_v1(dev_v1, predictions)
        assert list(ours) == ["exact_match", "f1"]
        assert 0 < ours["exact_match"] < ours["f1"] < 100


def test_v1_gold_predictions_score_100(dev_v1):
    qas = _qas(dev_v1)
    result = metrics.evaluate_v1(dev_v1, {qa["id"]: qa["answers"][-1]["text"] for qa in qas})
    # v1.1 gives F1 0 to a gold answer that normalizes to nothing (e.g. "The").
    empty = sum(1 for qa in qas if not metrics.normalize_answer(qa["answers"][-1]["text"]))
    assert empty > 0
    assert result == {"exact_match": 100.0, "f1": 100.0 * (len(qas) - empty) / len(qas)}


def test_v2_dev_matches_official_with_perturbed_predictions(dev_v2):
    qas = _qas(dev_v2)
    assert len(qas) == 11873
    assert sum(1 for qa in qas if not qa["answers"]) == 5945
    for seed, thresholds in ((0, (None, 1.0, 0.5, 0.0)), (1, (0.3,))):
        predictions = _perturbed_predictions(dev_v2, seed)
        na_probs = _na_probs(predictions, seed)
        for thresh in thresholds:
            args = () if thresh is None else (na_probs, thresh)
            ours = metrics.evaluate_v2(dev_v2, predictions, *args)
            assert ours == official.evaluate_v2(dev_v2, predictions, *args), args
        assert 0 < ours["exact"] < ours["f1"] < 100


def test_v2_dev_matches_the_installed_tf_models_script(dev_v2):
    """tf-models-official's `squad_evaluate_v2_0` (what Model Maker calls): the same scores
    at its fixed na_prob threshold, and its `final_*` are our `best_*`."""
    from official.nlp.tools import squad_evaluate_v2_0

    predictions = _perturbed_predictions(dev_v2, 5)
    na_probs = _na_probs(predictions, 5)
    ours = metrics.evaluate_v2(dev_v2, predictions, na_probs)
    installed = squad_evaluate_v2_0.evaluate(dev_v2, predictions, na_probs)
    for key in ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                "NoAns_exact", "NoAns_f1", "NoAns_total"):
        assert ours[key] == pytest.approx(installed[key]), key
    for best, final in (("best_exact", "final_exact"), ("best_f1", "final_f1")):
        assert ours[best] == pytest.approx(installed[final])
        assert ours[best + "_thresh"] == installed[final + "_thresh"]
    assert 0 < ours["best_f1_thresh"] < 1  # a threshold inside the na_probs' range


def test_v2_keys_are_the_official_ones(dev_v2):
    predictions = _perturbed_predictions(dev_v2, 7)
    without = metrics.evaluate_v2(dev_v2, predictions)
    assert list(without) == [
        "exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
        "NoAns_exact", "NoAns_f1", "NoAns_total",
    ]
    with_probs = metrics.evaluate_v2(dev_v2, predictions, _na_probs(predictions, 7))
    assert list(with_probs) == list(without) + [
        "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh",
    ]
    assert with_probs["total"] == 11873
    assert with_probs["HasAns_total"] + with_probs["NoAns_total"] == 11873


def test_v2_gold_predictions_score_100_and_na_probs_move_scores(dev_v2):
    gold = {qa["id"]: (qa["answers"][0]["text"] if qa["answers"] else "") for qa in _qas(dev_v2)}
    result = metrics.evaluate_v2(dev_v2, gold)
    assert (result["exact"], result["f1"], result["NoAns_exact"]) == (100.0, 100.0, 100.0)
    # Every question predicted unanswerable (na_prob 1 > thresh 0.5): only NoAns is right.
    all_null = metrics.evaluate_v2(dev_v2, gold, {qid: 1.0 for qid in gold}, 0.5)
    assert all_null["HasAns_exact"] == 0.0 and all_null["NoAns_exact"] == 100.0
    assert all_null["exact"] == pytest.approx(100.0 * 5945 / 11873)


def test_v2_answerable_only_subset_has_no_noans_keys(dev_v2):
    article = dev_v2[0]
    subset = [{
        "title": article["title"],
        "paragraphs": [{
            "context": p["context"],
            "qas": [qa for qa in p["qas"] if qa["answers"]],
        } for p in article["paragraphs"]],
    }]
    predictions = _perturbed_predictions(subset, 3)
    ours = metrics.evaluate_v2(subset, predictions)
    assert ours == official.evaluate_v2(subset, predictions)
    assert "NoAns_total" not in ours and "HasAns_total" in ours


def test_official_v2_fixture_with_plausible_answers(data_dir):
    path = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    dataset = json.loads(path.read_text("utf-8"))["data"]
    predictions = _perturbed_predictions(dataset, 11)
    na_probs = _na_probs(predictions, 11)
    assert metrics.evaluate_v2(dataset, predictions, na_probs) == official.evaluate_v2(
        dataset, predictions, na_probs
    )


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The  Eiffel\tTower!", "eiffel tower"),
        ("Steve Smith's", "steve smiths"),
        ("theater an Anne", "theater anne"),
        ("Café, Zürich", "café zürich"),  # accents kept
        ("“quoted” — dash", "“quoted” — dash"),  # Unicode punctuation is kept
        ("東京。", "東京。"),
        ("ＡＢＣ！", "ａｂｃ！"),  # full-width letters lower-cased, full-width "!" kept
        ("a", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert metrics.normalize_answer(text) == normalized
    assert official.normalize(text) == normalized


def test_f1_v1_and_v2_differ_only_on_empty_answers():
    assert metrics.f1_v1("", "") == 0
    assert metrics.f1_v2("", "") == 1
    assert metrics.f1_v2("the", "") == 1  # nothing left after normalization on both sides
    assert metrics.f1_v2("Paris", "") == 0
    assert metrics.f1_v1("in Paris France", "Paris") == metrics.f1_v2("in Paris France", "Paris")
    assert metrics.f1_v1("in Paris France", "Paris") == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))


def _tiny_dataset(answers: dict[str, list[str]]) -> list:
    return [{
        "title": "t",
        "paragraphs": [{
            "context": "c",
            "qas": [{"id": qid, "question": "q?", "answers": [{"text": t} for t in texts]}
                    for qid, texts in answers.items()],
        }],
    }]


def test_missing_and_unknown_predictions_are_reported(caplog):
    dataset = _tiny_dataset({"q1": ["Paris"], "q2": ["London"]})
    with caplog.at_level(logging.WARNING):
        result = metrics.evaluate_v1(dataset, {"q1": "paris", "zz": "Rome"})
    assert result == {"exact_match": 50.0, "f1": 50.0}  # q2 scores 0, zz is ignored
    assert "1 of 2 questions have no prediction" in caplog.text and "'q2'" in caplog.text
    assert "1 predictions are for questions not in the data set" in caplog.text
    assert "'zz'" in caplog.text


def test_v2_missing_prediction_is_an_error_naming_it():
    dataset = _tiny_dataset({"q1": ["Paris"], "q2": []})
    with pytest.raises(ValueError, match="q2"):
        metrics.evaluate_v2(dataset, {"q1": "Paris"})
    with pytest.raises(ValueError, match="na_probs.*q2"):
        metrics.evaluate_v2(dataset, {"q1": "Paris", "q2": ""}, {"q1": 0.3})


def test_non_text_prediction_is_an_error_naming_the_question():
    dataset = _tiny_dataset({"q1": ["Paris"]})
    with pytest.raises(ValueError, match="q1.*string"):
        metrics.evaluate_v1(dataset, {"q1": None})
    with pytest.raises(ValueError, match="q1.*string"):
        metrics.evaluate_v2(dataset, {"q1": 3})


def test_v1_question_without_answers_is_an_error():
    with pytest.raises(ValueError, match="q9.*SQuAD 2.0"):
        metrics.evaluate_v1(_tiny_dataset({"q9": []}), {"q9": ""})


def _example(qid: str, answers: tuple[str, ...], impossible: bool = False) -> SquadExample:
    return SquadExample(
        id=qid, title="t", context="Paris is in France.", question="Where?",
        answer_texts=answers, answer_starts=tuple(0 for _ in answers), is_impossible=impossible,
    )


def test_evaluate_examples_picks_the_version():
    answerable = [_example("a", ("Paris",)), _example("b", ("France", "in France"))]
    v1 = metrics.evaluate_examples(answerable, {"a": "Paris", "b": "Spain"})
    assert v1 == {"exact_match": 50.0, "f1": 50.0}
    with_null = answerable + [_example("c", (), impossible=True)]
    v2 = metrics.evaluate_examples(with_null, {"a": "Paris", "b": "France", "c": ""})
    assert (v2["exact"], v2["NoAns_total"], v2["HasAns_total"]) == (100.0, 1, 2)
    forced = metrics.evaluate_examples(
        answerable, {"a": "Paris", "b": ""}, {"a": 0.1, "b": 0.9}, version_2=True
    )
    assert forced["exact"] == 50.0 and "best_f1_thresh" in forced
    with pytest.raises(ValueError, match="na_probs only applies"):
        metrics.evaluate_examples(answerable, {"a": "", "b": ""}, {"a": 0.0, "b": 0.0},
                                  version_2=False)
    with pytest.raises(ValueError, match="'c' has no answer_texts"):
        metrics.evaluate_examples(with_null, {"a": "", "b": "", "c": ""}, version_2=False)
    with pytest.raises(ValueError, match="No examples"):
        metrics.evaluate_examples([], {})


_BEST_KEYS = ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]


def _answers(non_null: dict[str, str], null_odds: dict[str, float]) -> Answers:
    """SQuAD 2.0 answers with these best non-null texts ("" = none) and null odds, as
    `predict_answers` leaves them (its threshold 0: predictions are not used here)."""
    nbest = {}
    for qid, text in non_null.items():
        null = {"text": "", "probability": 0.5, "start_logit": 1.0, "end_logit": 1.0}
        span = {"text": text, "probability": 0.5, "start_logit": 0.5, "end_logit": 0.5}
        nbest[qid] = [null, span] if null_odds[qid] > 0 or not text else [span, null]
    predictions = {qid: "" if null_odds[qid] > 0 else text for qid, text in non_null.items()}
    return Answers(predictions=predictions, nbest=nbest, null_odds=dict(null_odds))


@pytest.fixture()
def small_case() -> tuple[list[SquadExample], Answers]:
    """Sorted by null odds (all distinct), with the official search's running F1 sum
    (3 = all predicted ""): a1 +1 = 4, n1 -1 = 3, a2 +2/3, a4 +1 = 4.67 (best F1 at 0.8),
    a3 +0, n2 -1, n3 -1. Exact: 4 at -2.0, equalled (not beaten) at 0.8."""
    rows = [  # id, gold answers, best non-null text, null odds
        ("a1", ("Paris",), "Paris", -2.0),
        ("n1", (), "Paris", -1.0),
        ("a2", ("France",), "in France", 0.5),
        ("a4", ("Paris",), "Paris", 0.8),
        ("a3", ("Paris",), "France", 1.5),
        ("n2", (), "France", 2.5),
        ("n3", (), "in", 4.0),
    ]
    examples = [_example(qid, golds, impossible=not golds) for qid, golds, _, _ in rows]
    answers = _answers({r[0]: r[2] for r in rows}, {r[0]: r[3] for r in rows})
    return examples, answers


def test_v2_at_threshold_best_keys_by_hand(small_case):
    examples, answers = small_case
    result = metrics.evaluate_v2_at_threshold(examples, answers, 0.0)
    assert list(result) == list(metrics.evaluate_v2(
        metrics.examples_to_dataset(examples), answers.predictions, answers.null_odds))
    assert result["best_f1"] == pytest.approx(100 * (3 + 1 - 1 + 2 / 3 + 1) / 7)
    assert result["best_f1_thresh"] == 0.8
    assert (result["best_exact"], result["best_exact_thresh"]) == (100 * 4 / 7, -2.0)
    # At 0: a1, n1 answered; a2, a4 and the rest "": 1 + 0 + 0 + 0 + 0 + 1 + 1.
    assert result["exact"] == result["f1"] == pytest.approx(100 * 3 / 7)


def test_v2_at_best_thresholds_scores_the_official_best(small_case):
    examples, answers = small_case
    dataset = metrics.examples_to_dataset(examples)
    official_best = official.evaluate_v2(dataset, answers.non_null_predictions,
                                         answers.null_odds)
    at_best_f1 = metrics.evaluate_v2_at_threshold(
        examples, answers, official_best["best_f1_thresh"])
    assert at_best_f1["f1"] == pytest.approx(official_best["best_f1"])
    assert official_best["best_exact_thresh"] != official_best["best_f1_thresh"]
    at_best_exact = metrics.evaluate_v2_at_threshold(
        examples, answers, official_best["best_exact_thresh"])
    assert at_best_exact["exact"] == pytest.approx(official_best["best_exact"])
    assert {k: at_best_f1[k] for k in _BEST_KEYS} == {k: official_best[k] for k in _BEST_KEYS}


def test_v2_at_threshold_tie_is_answered(small_case):
    examples, answers = small_case
    at = metrics.evaluate_v2_at_threshold(examples, answers, 0.8)  # a4's null odds
    below = metrics.evaluate_v2_at_threshold(examples, answers, np.nextafter(0.8, -np.inf))
    # a1, n1, a2, a4 answered; a3, n2, n3 "": 1 + 0 + 2/3 + 1 + 0 + 1 + 1.
    assert at["f1"] == pytest.approx(100 * (4 + 2 / 3) / 7)
    assert below["f1"] == pytest.approx(at["f1"] - 100 / 7)  # a4 is "" just below
    assert at["HasAns_exact"] == 100 * 2 / 4 and below["HasAns_exact"] == 100 * 1 / 4


@pytest.fixture(scope="module")
def fixture_case(data_dir) -> tuple[list, list[SquadExample], dict, dict, Answers]:
    """The official 5-article fixture with perturbed non-null texts (without the texts
    that normalize to nothing, see `evaluate_v2_at_threshold`) and distinct null odds."""
    path = data_dir / "squad" / "dev-v2.0-first5articles.official.json"
    dataset = json.loads(path.read_text("utf-8"))["data"]
    examples, invalid = read_squad_examples(str(path))
    assert not invalid
    texts = _perturbed_predictions(dataset, 5)
    texts = {qid: t if metrics.normalize_answer(t) else "" for qid, t in texts.items()}
    rng = random.Random(5)  # a model that tends to know: unanswerable ones score higher
    shift = {example.id: 2.0 if example.is_impossible else -2.0 for example in examples}
    null_odds = {qid: rng.uniform(-6.0, 6.0) + shift[qid] for qid in texts}
    assert len(set(null_odds.values())) == len(null_odds)
    return dataset, examples, texts, null_odds, _answers(texts, null_odds)


def test_v2_at_best_f1_thresh_matches_official_best_f1(fixture_case):
    dataset, examples, _, _, answers = fixture_case
    official_best = official.evaluate_v2(dataset, answers.non_null_predictions,
                                         answers.null_odds)
    thresh = official_best["best_f1_thresh"]
    assert sum(odds > thresh for odds in answers.null_odds.values()) > 100  # some ""
    assert sum(odds <= thresh for odds in answers.null_odds.values()) > 100  # some answered
    result = metrics.evaluate_v2_at_threshold(examples, answers, thresh)
    assert result["f1"] == pytest.approx(official_best["best_f1"])
    assert {k: result[k] for k in _BEST_KEYS} == {k: official_best[k] for k in _BEST_KEYS}


# Above and below best_f1_thresh (about -4.0); the old way erred only above 1.0.
@pytest.mark.parametrize("threshold, old_is_wrong", [(3.0, True), (-5.0, False)])
def test_v2_headline_scores_the_predictions_at_the_threshold(
    fixture_case, threshold, old_is_wrong
):
    dataset, examples, texts, null_odds, answers = fixture_case
    predictions = {qid: "" if null_odds[qid] > threshold else t for qid, t in texts.items()}
    assert predictions == answers.at_threshold(threshold).predictions
    expected = official.evaluate_v2(dataset, predictions)  # no na_probs: the file as is
    result = metrics.evaluate_v2_at_threshold(examples, answers, threshold)
    assert {k: v for k, v in result.items() if k not in _BEST_KEYS} == expected
    official_best = official.evaluate_v2(dataset, texts, null_odds)
    assert {k: result[k] for k in _BEST_KEYS} == {k: official_best[k] for k in _BEST_KEYS}
    # The old way, the predictions with na_probs = null odds at the official 1.0, also
    # counts as "" the questions with null odds in (1, threshold].
    old = metrics.evaluate_examples(examples, predictions, null_odds, version_2=True)
    assert (old["f1"] != pytest.approx(result["f1"])) is old_is_wrong


def test_v2_at_threshold_needs_v2_answers():
    examples = [_example("a", ("Paris",))]
    v1 = Answers(predictions={"a": "Paris"},
                 nbest={"a": [{"text": "Paris", "probability": 1.0,
                               "start_logit": 1.0, "end_logit": 1.0}]})
    with pytest.raises(ValueError, match="1 questions have no null odds"):
        metrics.evaluate_v2_at_threshold(examples, v1, 0.0)
    with pytest.raises(ValueError, match="No examples"):
        metrics.evaluate_v2_at_threshold([], v1, 0.0)
