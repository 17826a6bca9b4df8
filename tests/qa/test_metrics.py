"""The SQuAD metrics against an independent transcription of the official scripts."""

from __future__ import annotations

import gzip
import json
import logging
import random

import pytest

from components.qa import metrics
from components.qa.squad import SquadExample
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
