"""The shipped file's scores as the TFLite Task Library answers on the device.

`BertQuestionAnswerer` reads only the first `SEQ_LEN - 3 - query tokens` tokens of a
passage and answers from them (`components.qa.task_library`), where the evaluator's
windowed answering slides windows over the whole passage. The QaEvaluator answers every
eval question both ways with the shipped file and writes `summarize`'s dict as
metrics.json's `task_library`: both scores, and the questions whose every gold answer
starts past what the Task Library reads (their share and both F1s), which the device
cannot answer. SQuAD 2.0: the Task Library has no null threshold and never answers '' while
any span is valid, so it answers nearly every unanswerable question wrongly; it is scored
as it answers, and `unanswerable` counts the questions it left unanswered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from components.evaluator import gate

if TYPE_CHECKING:  # `describe` is read by the run's console without TensorFlow.
    from components.qa.squad import SquadExample

# The Task Library's answers of the shipped file, among the answers scored on Beam.
TASK_LIBRARY_NAME = "task_library"


def beyond_kept_context(examples: Sequence[SquadExample], vocab_path: str,
                        do_lower_case: bool) -> np.ndarray:
    """Per question: whether every gold answer starts past what the Task Library reads."""
    from components.qa import task_library
    from components.qa.tokenization import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(vocab_path, do_lower_case)
    return np.array([task_library.beyond_kept_context(e, tokenizer) for e in examples], bool)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if values.size else None


def summarize(shipped: str, official: Mapping[str, Any], device: gate.QuestionScores,
              windowed: gate.QuestionScores, beyond: np.ndarray,
              examples: Sequence[SquadExample],
              predictions: Mapping[str, str]) -> dict[str, Any]:
    """metrics.json's `task_library` for the shipped file answered in the Task Library
    (`device`, its `official` metrics and `predictions`) and over windows (`windowed`)."""
    unanswerable = [e.id for e in examples if e.is_impossible]
    return {
        "model": shipped,
        "exact_match": device.mean("exact_match"),
        "f1": device.mean("f1"),
        "official": dict(official),
        "windowed_exact_match": windowed.mean("exact_match"),
        "windowed_f1": windowed.mean("f1"),
        "beyond_kept_context": {
            "questions": int(beyond.sum()),
            "share": float(beyond.mean()),
            "windowed_f1": _mean(windowed.f1[beyond]),
            "task_library_f1": _mean(device.f1[beyond]),
        },
        "unanswerable": {"questions": len(unanswerable),
                         "left_unanswered": sum(not predictions[i] for i in unanswerable)},
    }


def not_answered(shipped: str, problems: Sequence[str]) -> dict[str, Any]:
    """metrics.json's `task_library` when the shipped file does not work in the Task Library."""
    return {"model": shipped, "exact_match": None, "f1": None, "problems": list(problems)}


def describe(device: Mapping[str, Any]) -> str:
    """One line: the Task Library's EM/F1 beside the windowed ones, and what it cannot see."""
    if device.get("f1") is None:
        return (f"Task Library ({device['model']}): not answered: "
                + "; ".join(device.get("problems", [])))
    beyond = device["beyond_kept_context"]
    line = (f"Task Library ({device['model']}): EM {device['exact_match']:.2f} F1 "
            f"{device['f1']:.2f} (windowed F1 {device['windowed_f1']:.2f}); answers past "
            f"what it reads: {100 * beyond['share']:.1f}% of questions")
    if beyond["questions"]:
        line += (f" (windowed F1 {beyond['windowed_f1']:.2f}, Task Library F1 "
                 f"{beyond['task_library_f1']:.2f} on them)")
    return line
