"""Answering questions with a model: sliding windows → batched logits → answer texts.

Used by the evaluator component and by `mbqa predict` / `mbqa answer`. Every passage is
read whole: each question gets all its eval-mode windows (`WindowMaker.make_windows`),
so long passages are not truncated as in the TFLite Task Library.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np

from components.qa import postprocess, progress
from components.qa.squad import SquadExample

# Windows predicted and postprocessed together, in batches (bounds the memory held).
_WINDOWS_PER_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
    """How windows are predicted (`batch_size` at a time) and turned into answers."""

    batch_size: int = 8
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    n_best_size: int = 20
    max_answer_length: int = 30

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")


def answer_questions(
    predictor,
    examples: Sequence[SquadExample],
    maker,
    settings: AnswerSettings | None = None,
) -> postprocess.Answers:
    """Answers `examples` with `predictor` (`inference.Predictor`) over `maker`'s windows
    (`settings`: `AnswerSettings()` if None).

    Shows the questions answered (`progress.progress`) and logs the windows per second.
    """
    settings = settings or AnswerSettings()
    answers = postprocess.Answers()
    started = time.monotonic()
    num_windows = 0
    pending_examples, pending_windows = [], []

    def flush() -> int:
        """Answers the pending questions; how many there were."""
        answers.update(_answer(predictor, pending_examples, pending_windows, maker, settings))
        flushed = len(pending_examples)
        pending_examples.clear()
        pending_windows.clear()
        return flushed

    logging.info("Answering %d questions (batch size %d)", len(examples), settings.batch_size)
    maker.tokenize_ahead(examples)
    with progress.progress(total=len(examples), desc="Answering", unit="questions") as bar:
        for example in examples:
            windows = maker.make_windows(example, training=False)
            pending_examples.append(example)
            pending_windows.extend(windows)
            num_windows += len(windows)
            if len(pending_windows) >= _WINDOWS_PER_CHUNK:
                bar.update(flush())
        if pending_examples:
            bar.update(flush())
    logging.info(
        "Answered %d questions (%d windows, %.1f windows/s)",
        len(examples), num_windows, num_windows / max(time.monotonic() - started, 1e-9),
    )
    return answers


def answer_batch(predictor, examples: Sequence[SquadExample], maker,
                 settings: AnswerSettings) -> tuple[postprocess.Answers, int]:
    """(answers, windows predicted) of a batch of questions, as `answer_questions` answers
    them, without progress or logging: a Beam worker's unit of work (the evaluator)."""
    maker.tokenize_ahead(examples)
    windows = [w for example in examples for w in maker.make_windows(example, training=False)]
    return _answer(predictor, examples, windows, maker, settings), len(windows)


def _answer(predictor, examples: Sequence[SquadExample], windows: Sequence, maker,
            settings: AnswerSettings) -> postprocess.Answers:
    """The answers to `examples` from their eval `windows`."""
    start_logits, end_logits = _predict(predictor, windows, settings.batch_size)
    return postprocess.predict_answers(
        examples, windows, start_logits, end_logits, doc_words=maker.doc_words,
        n_best_size=settings.n_best_size, max_answer_length=settings.max_answer_length,
        version_2_with_negative=settings.version_2_with_negative,
        null_score_diff_threshold=settings.null_score_diff_threshold,
        do_lower_case=maker.config.do_lower_case,
    )


def _predict(predictor, windows: Sequence, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits `[len(windows), seq_len]`, predicted `batch_size` at a time."""
    if not windows:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    starts, ends = [], []
    for begin in range(0, len(windows), batch_size):
        batch = windows[begin : begin + batch_size]
        start, end = predictor.predict(
            np.array([w.input_ids for w in batch], np.int32),
            np.array([w.input_mask for w in batch], np.int32),
            np.array([w.segment_ids for w in batch], np.int32),
        )
        starts.append(start)
        ends.append(end)
    return np.concatenate(starts), np.concatenate(ends)
