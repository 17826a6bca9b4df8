"""Answering questions with a model: sliding windows → batched logits → answer texts.

Used by the evaluator component and by `mbqa predict` / `mbqa answer`. Every passage is
read whole: each question gets all its eval-mode windows (`WindowMaker.make_windows`),
so long passages are not truncated as in the TFLite Task Library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from components.qa import postprocess
from components.qa.squad import SquadExample

# Windows predicted and postprocessed together, in batches (bounds the memory held).
_WINDOWS_PER_CHUNK = 256
_LOG_EVERY_S = 10.0


def answer_questions(
    predictor,
    examples: Sequence[SquadExample],
    maker,
    *,
    batch_size: int = 8,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> postprocess.Answers:
    """Answers `examples` with `predictor` (`inference.Predictor`) over `maker`'s windows.

    Logs progress (questions done / total, windows per second).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    answers = postprocess.Answers()
    total = len(examples)
    started = last_log = time.monotonic()
    done = num_windows = 0
    pending_examples, pending_windows = [], []

    def flush() -> None:
        start_logits, end_logits = _predict(predictor, pending_windows, batch_size)
        chunk = postprocess.predict_answers(
            pending_examples,
            pending_windows,
            start_logits,
            end_logits,
            doc_words=maker.doc_words,
            n_best_size=n_best_size,
            max_answer_length=max_answer_length,
            version_2_with_negative=version_2_with_negative,
            null_score_diff_threshold=null_score_diff_threshold,
            do_lower_case=maker.config.do_lower_case,
        )
        answers.predictions.update(chunk.predictions)
        answers.nbest.update(chunk.nbest)
        answers.null_odds.update(chunk.null_odds)
        pending_examples.clear()
        pending_windows.clear()

    logging.info("Answering %d questions (batch size %d)", total, batch_size)
    for example in examples:
        windows = maker.make_windows(example, training=False)
        pending_examples.append(example)
        pending_windows.extend(windows)
        num_windows += len(windows)
        if len(pending_windows) >= _WINDOWS_PER_CHUNK:
            done += len(pending_examples)
            flush()
            if time.monotonic() - last_log >= _LOG_EVERY_S:
                last_log = time.monotonic()
                _log_progress(done, total, num_windows, last_log - started)
    if pending_examples:
        done += len(pending_examples)
        flush()
    _log_progress(done, total, num_windows, time.monotonic() - started)
    return answers


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


def _log_progress(done: int, total: int, num_windows: int, seconds: float) -> None:
    logging.info(
        "Answered %d/%d questions (%d windows, %.1f windows/s)",
        done, total, num_windows, num_windows / max(seconds, 1e-9),
    )
