"""An independent transcription of the official SQuAD evaluation scripts, for the tests.

Follows the logic of `evaluate-v1.1.py` and `evaluate-v2.0.py` (Rajpurkar et al.) step by
step, kept apart from `components.qa.metrics` (it must not import it) so the two can be
compared number for number.
"""

from __future__ import annotations

import re
import string
from collections import Counter


def normalize(s: str) -> str:
    # Order of the official script: lower, remove punctuation, remove articles, fix spaces.
    lowered = s.lower()
    no_punct = "".join(c for c in lowered if c not in set(string.punctuation))
    no_articles = re.sub(r"\b(a|an|the)\b", " ", no_punct, flags=re.UNICODE)
    return " ".join(no_articles.split())


# ------------------------------------------------------------------------ v1.1


def _v1_f1(prediction: str, ground_truth: str) -> float:
    p = normalize(prediction).split()
    g = normalize(ground_truth).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0
    precision = 1.0 * same / len(p)
    recall = 1.0 * same / len(g)
    return (2 * precision * recall) / (precision + recall)


def _v1_em(prediction: str, ground_truth: str) -> bool:
    return normalize(prediction) == normalize(ground_truth)


def evaluate_v1(dataset: list, predictions: dict) -> dict:
    f1 = em = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                truths = [a["text"] for a in qa["answers"]]
                pred = predictions[qa["id"]]
                em += max(_v1_em(pred, t) for t in truths)
                f1 += max(_v1_f1(pred, t) for t in truths)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total}


# ------------------------------------------------------------------------ v2.0


def _tokens(s: str) -> list[str]:
    return normalize(s).split() if s else []


def _v2_exact(gold: str, pred: str) -> int:
    return int(normalize(gold) == normalize(pred))


def _v2_f1(gold: str, pred: str) -> float:
    g, p = _tokens(gold), _tokens(pred)
    same = sum((Counter(g) & Counter(p)).values())
    if len(g) == 0 or len(p) == 0:
        return int(g == p)
    if same == 0:
        return 0
    precision = 1.0 * same / len(p)
    recall = 1.0 * same / len(g)
    return (2 * precision * recall) / (precision + recall)


def evaluate_v2(dataset: list, preds: dict, na_probs: dict | None = None,
                na_prob_thresh: float = 1.0) -> dict:
    has_ans = {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                has_ans[qa["id"]] = bool(qa["answers"])
    has_ans_ids = [k for k, v in has_ans.items() if v]
    no_ans_ids = [k for k, v in has_ans.items() if not v]

    exact_raw, f1_raw = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                golds = [a["text"] for a in qa["answers"] if normalize(a["text"])]
                if not golds:
                    golds = [""]
                if qid not in preds:
                    continue
                exact_raw[qid] = max(_v2_exact(a, preds[qid]) for a in golds)
                f1_raw[qid] = max(_v2_f1(a, preds[qid]) for a in golds)

    probs = na_probs if na_probs is not None else {k: 0.0 for k in preds}

    def threshold(scores: dict) -> dict:
        out = {}
        for qid, s in scores.items():
            out[qid] = float(not has_ans[qid]) if probs[qid] > na_prob_thresh else s
        return out

    exact_t, f1_t = threshold(exact_raw), threshold(f1_raw)

    def summary(qids: list | None = None) -> dict:
        if not qids:
            n = len(exact_t)
            return {"exact": 100.0 * sum(exact_t.values()) / n,
                    "f1": 100.0 * sum(f1_t.values()) / n, "total": n}
        n = len(qids)
        return {"exact": 100.0 * sum(exact_t[k] for k in qids) / n,
                "f1": 100.0 * sum(f1_t[k] for k in qids) / n, "total": n}

    out = summary()
    if has_ans_ids:
        for k, v in summary(has_ans_ids).items():
            out["HasAns_" + k] = v
    if no_ans_ids:
        for k, v in summary(no_ans_ids).items():
            out["NoAns_" + k] = v
    if na_probs is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best, thresh = _find_best_thresh(preds, raw, na_probs, has_ans)
            out["best_" + name] = best
            out["best_" + name + "_thresh"] = thresh
    return out


def _find_best_thresh(preds: dict, scores: dict, na_probs: dict, has_ans: dict):
    num_no_ans = sum(1 for k in has_ans if not has_ans[k])
    cur = best = num_no_ans
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_ans[qid]:
            diff = scores[qid]
        elif preds[qid]:
            diff = -1
        else:
            diff = 0
        cur += diff
        if cur > best:
            best = cur
            best_thresh = na_probs[qid]
    return 100.0 * best / len(scores), best_thresh
