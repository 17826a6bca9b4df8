"""The official SQuAD v1.1 and v2.0 evaluation metrics (exact match and token F1).

The numbers are those of the official scripts (`evaluate-v1.1.py`, `evaluate-v2.0.py`):
the same answer normalization (lower case, ASCII punctuation removed, articles a/an/the
removed, whitespace collapsed; Unicode punctuation is kept, as `string.punctuation` is
ASCII only), the same maxima over gold answers, the same no-answer rules and threshold
search, the same keys, values in percent.
"""

from __future__ import annotations

import collections
import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from components.qa.squad import SquadExample

if TYPE_CHECKING:
    from components.qa.postprocess import Answers

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> int:
    """1 if the normalized texts are equal, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_v1(prediction: str, gold: str) -> float:
    """Token F1 as SQuAD v1.1 defines it (0 when either side has no tokens)."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def f1_v2(prediction: str, gold: str) -> float:
    """Token F1 as SQuAD v2.0 defines it: two empty answers agree (F1 = 1)."""
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    gold_tokens = normalize_answer(gold).split() if gold else []
    if not pred_tokens or not gold_tokens:
        return int(pred_tokens == gold_tokens)
    return _token_f1(pred_tokens, gold_tokens)


def _token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    num_same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _questions(dataset: Sequence[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for article in dataset:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def _prediction(predictions: Mapping[str, Any], qid: str) -> str:
    value = predictions[qid]
    if not isinstance(value, str):
        raise ValueError(
            f"predictions[{qid!r}] must be the answer text (a string), got {type(value).__name__}"
        )
    return value


def evaluate_v1(dataset: Sequence[Mapping[str, Any]], predictions: Mapping[str, str]) -> dict:
    """SQuAD v1.1: `{"exact_match", "f1"}` in percent over every question of `dataset`.

    `dataset` is the `data` list of a SQuAD JSON file. A question without a prediction
    scores 0 (and is logged), as in the official script.
    """
    em_sum = f1_sum = total = 0
    missing = []
    for qa in _questions(dataset):
        total += 1
        if qa["id"] not in predictions:
            missing.append(qa["id"])
            continue
        prediction = _prediction(predictions, qa["id"])
        golds = [answer["text"] for answer in qa["answers"]]
        if not golds:
            raise ValueError(
                f"Question {qa['id']!r} has no answers: SQuAD 1.1 needs at least one "
                "(unanswerable questions need the SQuAD 2.0 evaluation)"
            )
        em_sum += max(exact_match(prediction, gold) for gold in golds)
        f1_sum += max(f1_v1(prediction, gold) for gold in golds)
    _log_missing(missing, total)
    _log_unknown(predictions, {qa["id"] for qa in _questions(dataset)})
    return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total}


def evaluate_v2(
    dataset: Sequence[Mapping[str, Any]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict:
    """SQuAD v2.0: the official keys, in percent.

    Unanswerable questions (no gold answer) are right only when the prediction is "".
    A question whose `na_probs` value exceeds `na_prob_thresh` counts as predicted
    unanswerable. `HasAns_*`/`NoAns_*` appear when such questions exist, and
    `best_exact`/`best_f1` with their thresholds only when `na_probs` is given.
    Every question needs a prediction (and a `na_probs` value, when given).
    """
    has_answer = {qa["id"]: bool(qa["answers"]) for qa in _questions(dataset)}
    missing = [qid for qid in has_answer if qid not in predictions]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(has_answer)} questions have no prediction "
            f"(SQuAD 2.0 needs one for each; use \"\" for no answer), e.g. {missing[:5]}"
        )
    if na_probs is not None:
        missing = [qid for qid in has_answer if qid not in na_probs]
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(has_answer)} questions have no na_probs value, "
                f"e.g. {missing[:5]}"
            )
    _log_unknown(predictions, has_answer)
    exact_raw, f1_raw = {}, {}
    for qa in _questions(dataset):
        qid = qa["id"]
        golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
        prediction = _prediction(predictions, qid)
        exact_raw[qid] = max(exact_match(prediction, gold) for gold in golds)
        f1_raw[qid] = max(f1_v2(prediction, gold) for gold in golds)

    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    exact = _apply_no_answer_threshold(exact_raw, probs, has_answer, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, probs, has_answer, na_prob_thresh)
    result = _summary(exact, f1, list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid, has in has_answer.items() if has is wanted]
        if qids:
            result.update({f"{prefix}_{k}": v for k, v in _summary(exact, f1, qids).items()})
    if na_probs is not None:
        result["best_exact"], result["best_exact_thresh"] = _best_threshold(
            predictions, exact_raw, na_probs, has_answer
        )
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(
            predictions, f1_raw, na_probs, has_answer
        )
    return result


def _apply_no_answer_threshold(
    scores: dict[str, float],
    na_probs: Mapping[str, float],
    has_answer: dict[str, bool],
    na_prob_thresh: float,
) -> dict[str, float]:
    return {
        qid: float(not has_answer[qid]) if na_probs[qid] > na_prob_thresh else score
        for qid, score in scores.items()
    }


def _summary(exact: dict[str, float], f1: dict[str, float], qids: list[str]) -> dict:
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[qid] for qid in qids) / total,
        "f1": 100.0 * sum(f1[qid] for qid in qids) / total,
        "total": total,
    }


def _best_threshold(
    predictions: Mapping[str, str],
    scores: dict[str, float],
    na_probs: Mapping[str, float],
    has_answer: dict[str, bool],
) -> tuple[float, float]:
    """The best score over no-answer thresholds, and that threshold (official search)."""
    score = best_score = sum(1 for has in has_answer.values() if not has)
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            score += scores[qid]
        elif predictions[qid]:
            score -= 1
        if score > best_score:
            best_score = score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def _log_missing(missing: list[str], total: int) -> None:
    if missing:
        logging.warning(
            "%d of %d questions have no prediction and score 0, e.g. %s",
            len(missing), total, missing[:5],
        )


def _log_unknown(predictions: Mapping[str, str], qids) -> None:
    unknown = [qid for qid in predictions if qid not in qids]
    if unknown:
        logging.warning(
            "%d predictions are for questions not in the data set and are ignored, e.g. %s",
            len(unknown), unknown[:5],
        )


def examples_to_dataset(examples: Sequence[SquadExample]) -> list[dict]:
    """SQuAD JSON `data` (one article and paragraph per question) for the evaluators."""
    return [
        {
            "title": example.title,
            "paragraphs": [{
                "context": example.context,
                "qas": [{
                    "id": example.id,
                    "question": example.question,
                    "answers": [{"text": text} for text in example.answer_texts],
                    "is_impossible": example.is_impossible,
                }],
            }],
        }
        for example in examples
    ]


def evaluate_examples(
    examples: Sequence[SquadExample],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    version_2: bool | None = None,
) -> dict:
    """The official metrics of `predictions` for `examples`.

    `version_2=None` picks SQuAD 2.0 when any example is unanswerable; pass it
    explicitly when a 2.0 subset may hold only answerable questions.
    """
    if not examples:
        raise ValueError("No examples to evaluate")
    if version_2 is None:
        version_2 = any(example.is_impossible for example in examples)
    dataset = examples_to_dataset(examples)
    if version_2:
        return evaluate_v2(dataset, predictions, na_probs)
    if na_probs is not None:
        raise ValueError("na_probs only applies to SQuAD 2.0 (version_2=True)")
    for example in examples:
        if not example.answer_texts:
            raise ValueError(
                f"Question {example.id!r} has no answer_texts: SQuAD 1.1 needs at least one "
                "(use version_2=True for unanswerable questions)"
            )
    return evaluate_v1(dataset, predictions)


_BEST_KEYS = ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")


def evaluate_v2_at_threshold(
    examples: Sequence[SquadExample], answers: Answers, threshold: float
) -> dict:
    """The official SQuAD 2.0 keys for `answers` (`postprocess.Answers`) at a null threshold.

    `exact`, `f1`, `total` and the `HasAns_*`/`NoAns_*` keys score
    `answers.at_threshold(threshold).predictions`, the predictions file written at that
    `null_score_diff_threshold`. `best_exact`, `best_f1` and their `*_thresh` are the
    official search over `na_probs = answers.null_odds` on the best non-null predictions:
    scoring again at `threshold=best_f1_thresh` gives `f1 == best_f1`, unless null odds tie
    there, no threshold beats predicting "" everywhere (`best_f1_thresh` is then 0.0) or a
    non-null text normalizes to nothing (the search counts it wrong, the scoring may not).
    """
    if not examples:
        raise ValueError("No examples to evaluate")
    dataset = examples_to_dataset(examples)
    result = evaluate_v2(dataset, answers.at_threshold(threshold).predictions)
    search = evaluate_v2(dataset, answers.non_null_predictions, answers.null_odds)
    result.update((key, search[key]) for key in _BEST_KEYS)
    return result
