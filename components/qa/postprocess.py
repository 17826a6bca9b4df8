"""From start/end logits over sliding windows to answer texts (BERT's classic algorithm).

This runs tf-models-official's `squad_lib.postprocess_output`, the classic
`run_squad.py` `write_predictions` that Model Maker uses: the `n_best_size` best start
and end positions of every window; only spans inside the passage, starting on a token
whose window has the most context for it, end >= start, at most `max_answer_length`
tokens; the text of a span is the original passage text (casing, accents, punctuation)
recovered by `get_final_text`. For SQuAD 2.0 the null score is the minimum over the
windows of `start_logits[0] + end_logits[0]`; a question is answered "" when the null
score minus the best span's score exceeds `null_score_diff_threshold`. As in the classic
code, a question without any valid span is answered "empty" (SQuAD 1.1) or "" (2.0).
The n-best and null odds do not depend on the threshold: `Answers.at_threshold` gives
the predictions of any other threshold without postprocessing again.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from components.qa.squad import SquadExample

# The files of `write_answers` beside the predictions file: run_squad.py's names (the
# evaluator's and Model Maker's layout), or with `from_stem` `<stem>.nbest.json` and
# `<stem>.null_odds.json` (`mbqa predict`: several predictions can share a folder).
NBEST_FILE_NAME = "nbest_predictions.json"
NULL_ODDS_FILE_NAME = "null_odds.json"
NBEST_SUFFIX = ".nbest.json"
NULL_ODDS_SUFFIX = ".null_odds.json"

_RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])


@dataclasses.dataclass
class Answers:
    """Answers by question id.

    Attributes:
      predictions: the answer text ("" = no answer, SQuAD 2.0 only).
      nbest: the n best candidates, best first: dicts with `text`, `probability`
        (softmax over the candidates' scores), `start_logit`, `end_logit`.
      null_odds: SQuAD 2.0 only: null score minus the best non-null span's score (the null
        score alone when no span is valid).
    """

    predictions: dict[str, str] = dataclasses.field(default_factory=dict)
    nbest: dict[str, list[dict]] = dataclasses.field(default_factory=dict)
    null_odds: dict[str, float] = dataclasses.field(default_factory=dict)

    def update(self, other: Answers) -> None:
        """Adds the answers of other questions."""
        self.predictions.update(other.predictions)
        self.nbest.update(other.nbest)
        self.null_odds.update(other.null_odds)

    @property
    def non_null_predictions(self) -> dict[str, str]:
        """SQuAD 2.0: each question's best non-null answer text, its first non-empty n-best
        text, as squad_lib picks it ("" when the n-best holds none): the predictions with
        an infinite `null_score_diff_threshold`."""
        return {
            qid: next((entry["text"] for entry in entries if entry["text"]), "")
            for qid, entries in self.nbest.items()
        }

    def at_threshold(self, threshold: float) -> Answers:
        """SQuAD 2.0: the answers `predict_answers` gives with `null_score_diff_threshold=
        threshold`: "" where `null_odds > threshold`, else the best non-null text."""
        missing = [
            qid for qid in self.predictions if qid not in self.null_odds or qid not in self.nbest
        ]
        if missing:
            raise ValueError(
                f"{len(missing)} questions have no null odds or n-best (SQuAD 2.0 answers are "
                f"needed), e.g. {missing[:5]}"
            )
        non_null = self.non_null_predictions
        return Answers(
            predictions={
                qid: "" if self.null_odds[qid] > threshold else non_null[qid]
                for qid in self.predictions
            },
            nbest=dict(self.nbest),
            null_odds=dict(self.null_odds),
        )


def predict_answers(
    examples: Sequence[SquadExample],
    windows: Sequence,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    doc_words: Callable[[str], Sequence[str]],
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
    do_lower_case: bool = True,
) -> Answers:
    """The answers to `examples` from the logits of their windows.

    Args:
      examples: the questions.
      windows: the eval-mode windows of those questions (`windows.Window`: `example_id`,
        `window_index`, `tokens`, `token_to_orig_map`, `token_is_max_context`).
      start_logits: float `[len(windows), seq_len]`, row i for `windows[i]`.
      end_logits: float `[len(windows), seq_len]`.
      doc_words: the passage's whitespace-split words, the ones `token_to_orig_map`
        indexes (`WindowMaker.doc_words`).
      n_best_size: candidates kept per question (and start/end positions per window).
      max_answer_length: longest answer, in WordPiece tokens.
      version_2_with_negative: SQuAD 2.0: a question may have no answer.
      null_score_diff_threshold: SQuAD 2.0: predict "" above this null-score margin.
      do_lower_case: how the windows were tokenized (to align the answer with the text).
    """
    from official.nlp.data import squad_lib

    start_logits = np.asarray(start_logits, np.float32)
    end_logits = np.asarray(end_logits, np.float32)
    _check_shapes(windows, start_logits, end_logits)
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(
            f"n_best_size={n_best_size} and max_answer_length={max_answer_length} must be >= 1"
        )
    index_of = {}
    for index, example in enumerate(examples):
        if example.id in index_of:
            raise ValueError(f"Question id {example.id!r} appears twice in the examples")
        index_of[example.id] = index
    by_example = collections.defaultdict(list)
    for row, window in enumerate(windows):
        if window.example_id not in index_of:
            raise ValueError(
                f"Window {window.window_index} of question {window.example_id!r} belongs to "
                "no given example"
            )
        by_example[window.example_id].append(row)
    no_window = [example.id for example in examples if example.id not in by_example]
    if no_window:
        logging.warning(
            "%d questions have no window (a passage without tokens) and get the classic "
            "fallback answer ('empty', or '' for SQuAD 2.0), e.g. %s",
            len(no_window), no_window[:5],
        )
    lib_examples, features, results = [], [], []
    for example_index, example in enumerate(examples):
        rows = sorted(by_example.get(example.id, ()), key=lambda r: windows[r].window_index)
        lib_examples.append(
            squad_lib.SquadExample(
                qas_id=example.id,
                question_text=example.question,
                doc_tokens=list(doc_words(example.context)),
            )
        )
        for row in rows:
            window = windows[row]
            features.append(
                squad_lib.InputFeatures(
                    unique_id=row,
                    example_index=example_index,
                    doc_span_index=window.window_index,
                    tokens=window.tokens,
                    token_to_orig_map=window.token_to_orig_map,
                    token_is_max_context=window.token_is_max_context,
                    input_ids=window.input_ids,
                    input_mask=window.input_mask,
                    segment_ids=window.segment_ids,
                )
            )
            results.append(
                _RawResult(row, start_logits[row].tolist(), end_logits[row].tolist())
            )
    predictions, nbest, null_odds = squad_lib.postprocess_output(
        all_examples=lib_examples,
        all_features=features,
        all_results=results,
        n_best_size=n_best_size,
        max_answer_length=max_answer_length,
        do_lower_case=do_lower_case,
        version_2_with_negative=version_2_with_negative,
        null_score_diff_threshold=null_score_diff_threshold,
    )
    return Answers(
        predictions=dict(predictions),
        nbest={qid: [dict(entry) for entry in entries] for qid, entries in nbest.items()},
        null_odds={qid: float(v) for qid, v in null_odds.items()},
    )


def _check_shapes(windows: Sequence, start_logits: np.ndarray, end_logits: np.ndarray) -> None:
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2:
        raise ValueError(
            f"start_logits {start_logits.shape} and end_logits {end_logits.shape} must both be "
            "[num_windows, seq_len]"
        )
    if start_logits.shape[0] != len(windows):
        raise ValueError(
            f"{start_logits.shape[0]} rows of logits for {len(windows)} windows: "
            "one row per window is needed"
        )
    for window in windows:
        if len(window.tokens) > start_logits.shape[1]:
            raise ValueError(
                f"Window {window.window_index} of question {window.example_id!r} has "
                f"{len(window.tokens)} tokens but the logits cover {start_logits.shape[1]}"
            )


def answer_file_paths(
    predictions_path: str, version_2: bool, from_stem: bool = False
) -> dict[str, str]:
    """Where `write_answers` puts each `Answers` field (null odds only for SQuAD 2.0):
    beside `predictions_path`, named as run_squad.py does or, `from_stem`, after it
    (`dev.json` → `dev.nbest.json`, `dev.null_odds.json`)."""
    if from_stem:
        stem = os.path.splitext(predictions_path)[0]
        nbest, null_odds = stem + NBEST_SUFFIX, stem + NULL_ODDS_SUFFIX
    else:
        directory = os.path.dirname(predictions_path)
        nbest = os.path.join(directory, NBEST_FILE_NAME)
        null_odds = os.path.join(directory, NULL_ODDS_FILE_NAME)
    paths = {"predictions": predictions_path, "nbest": nbest}
    if version_2:
        paths["null_odds"] = null_odds
    return paths


def write_answers(
    answers: Answers, predictions_path: str, version_2: bool, from_stem: bool = False
) -> dict[str, str]:
    """Writes the answers as run_squad.py does: `predictions_path` (id → text), with the
    n-best and, for SQuAD 2.0, the null odds beside it (`answer_file_paths`; local or any
    `tf.io.gfile` path). Returns the paths written, by field."""
    import tensorflow as tf

    paths = answer_file_paths(predictions_path, version_2, from_stem)
    directory = os.path.dirname(predictions_path)
    if directory:
        tf.io.gfile.makedirs(directory)
    for field, path in paths.items():
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(getattr(answers, field), f, indent=2, ensure_ascii=False)
    return paths
