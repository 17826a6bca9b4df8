"""Which data trained and which evaluated the model, and the training questions' QA
statistics beside those of the previous model (the baseline): metrics.json's `data`, shown
by the model card and report.html.

- `training_spans`: the spans each split of the Trainer's windows came from, with their
  questions (SquadExampleGen's `spans`, carried on by SquadTransform into
  `window_stats.json`); None when the input patterns have no `{SPAN}`.
- `evaluation_set`: the evaluator's Examples (the span's eval split, or the fixed set), its
  split and questions.
- `qa_statistics`: `this_run` (SquadTransform's, per split) and `previous` (those the
  baseline was trained on, from its `training.json`; None without a baseline or record).

`describe` (no TensorFlow) turns it into sentences and a table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.qa import contracts

if TYPE_CHECKING:
    from tfx import types

# The statistics shown, in order, with their labels.
STATISTICS = (("questions", "questions"), ("unanswerable_share", "unanswerable share"),
              ("passage_tokens", "passage tokens (mean, max)"),
              ("question_tokens", "question tokens (mean, max)"),
              ("windows_per_question", "windows per question"),
              ("beyond_first_window_share", "answer beyond the first window (share)"))


def summarize(examples: types.Artifact, split: str, num_questions: int,
              transformed: types.Artifact | None,
              baseline: types.Artifact | None) -> dict[str, Any]:
    """metrics.json's `data` (see the module docstring)."""
    stats = (contracts.read_artifact_json(os.path.join(transformed.uri,
                                                       contracts.WINDOW_STATS_FILE))
             if transformed is not None else None) or {}
    record = (contracts.read_training_record(baseline) if baseline is not None else None) or {}
    previous = (record.get("training_data") or {}).get("qa_statistics")
    return {
        "training_spans": (stats.get("source") or {}).get(contracts.SPANS_PROPERTY),
        "evaluation_set": {"uri": examples.uri, "split": split, "questions": num_questions,
                           "spans": contracts.spans_read(examples)},
        "qa_statistics": {"this_run": stats.get("qa_statistics"), "previous": previous},
    }


def _spans(spans: Mapping[str, Mapping[str, int]] | str | None) -> str:
    if isinstance(spans, str):  # the model card's "not recorded"
        return f"spans {spans}"
    if not spans:
        return "no spans (input patterns without {SPAN})"
    return "; ".join(f"{split}: " + ", ".join(f"span {s} ({n} questions)"
                                              for s, n in sorted(counts.items(), key=lambda x:
                                                                 int(x[0])))
                     for split, counts in sorted(spans.items()))


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return f"{value['mean']}, {value['max']}"
    return str(value)


def describe(data: Mapping[str, Any]) -> tuple[list[str], list[str], list[list[str]]]:
    """(sentences, table header, table rows): which spans trained and evaluated, and the QA
    statistics of this run's training questions per split beside the previous model's."""
    evaluation = data["evaluation_set"]
    sentences = [
        f"Trained on {_spans(data['training_spans'])}.",
        f"Evaluated on the {evaluation['split']!r} split of {evaluation['uri']} "
        f"({evaluation['questions']} questions"
        + (f"; {_spans(evaluation['spans'])})." if isinstance(evaluation["spans"], Mapping)
           else f", a fixed set or no spans: spans {evaluation['spans']})."),
    ]
    statistics = data["qa_statistics"]
    for key, whose in (("this_run", "this run's training questions"),
                       ("previous", "the previous model's training questions")):
        if not isinstance(statistics[key], Mapping):
            sentences.append(f"QA statistics of {whose}: {statistics[key]}.")
    this_run = statistics["this_run"] if isinstance(statistics["this_run"], Mapping) else {}
    previous = statistics["previous"] if isinstance(statistics["previous"], Mapping) else {}
    columns = [(f"this run: {split}", this_run[split]) for split in sorted(this_run)]
    columns += [(f"previous model: {split}", previous[split]) for split in sorted(previous)]
    header = ["statistic", *(name for name, _ in columns)]
    rows = [[label, *(_value(stats.get(key)) for _, stats in columns)]
            for key, label in STATISTICS]
    return sentences, header, rows
