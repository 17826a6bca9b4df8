"""Which spans a SquadExampleGen run reads: the span asked for (or the latest) and, for the
training splits, a window of the spans before it.

Input patterns hold TFX's `{SPAN}` (or `{SPAN:width}`) spec. `available_spans` lists the
spans that have files; `choose_spans` picks the target span (`requested`, or the latest)
and the window of spans a split reads: 1 = the target span only (TFX's behaviour), N = the
last N available spans up to the target, 0 = every span up to it. A requested span that has
no files is an error naming the pattern and the spans that exist.
"""

from __future__ import annotations

import dataclasses
import os
import re

import tensorflow as tf
from tfx.components.example_gen import utils

# Names of the span settings (exec properties of SquadExampleGen).
REQUESTED_SPAN_KEY = "requested_span"
TRAINING_SPANS_KEY = "training_spans"
# The input splits' patterns before a driver resolves their span: {split name: pattern}.
SPAN_PATTERNS_KEY = "span_patterns"
# The input splits that read only the target span (the others read the window).
EVAL_SPLIT = "eval"


class SpanNotFoundError(ValueError):
    """A span was asked for that has no files; the message names the pattern and the spans
    that have some."""


@dataclasses.dataclass(frozen=True)
class SpanChoice:
    """The target span and the spans each input split reads, by split name."""

    target: int
    spans_by_split: dict[str, list[int]]

    def patterns(self, split_name: str, pattern: str) -> list[str]:
        """The split's pattern resolved for each span it reads."""
        return [pattern_for_span(pattern, span) for span in self.spans_by_split[split_name]]


def has_span(pattern: str) -> bool:
    return bool(re.search(utils.SPAN_FULL_REGEX, pattern))


def pattern_for_span(pattern: str, span: int) -> str:
    """`pattern` with its `{SPAN}` spec replaced by `span` (zero-padded as the spec says)."""
    return utils.get_pattern_for_span_version(pattern, True, False, False, span, None)


def available_spans(input_base: str, pattern: str) -> list[int]:
    """The spans of `pattern` (relative to `input_base`) that have at least one file."""
    full = os.path.join(input_base, pattern)
    marker = "\0"
    regex = re.escape(re.sub(utils.SPAN_FULL_REGEX, marker, full))
    regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]").replace(
        re.escape(marker), r"(\d+)")
    spans = set()
    for path in tf.io.gfile.glob(re.sub(utils.SPAN_FULL_REGEX, "*", full)):
        match = re.fullmatch(regex, path)
        if match:
            spans.add(int(match.group(1)))
    return sorted(spans)


def choose_spans(input_base: str, patterns: dict[str, str], requested: int,
                 training_spans: int, latest: int | None = None) -> SpanChoice:
    """The target span (`requested` if > 0, else `latest`, else the latest available) and
    the spans of each split: `EVAL_SPLIT` reads the target only, the others the last
    `training_spans` available spans up to the target (0: all of them).

    Raises:
      SpanNotFoundError: the requested span (or any span at all) has no files.
    """
    if training_spans < 0:
        raise ValueError(f"training_spans={training_spans} must be >= 0 (0: every span)")
    available = {name: available_spans(input_base, p) for name, p in patterns.items()}
    everywhere = sorted(set.intersection(*(set(s) for s in available.values())))
    described = "; ".join(f"{name}: {os.path.join(input_base, p)} has spans {available[name]}"
                          for name, p in patterns.items())
    target = requested if requested > 0 else (latest if latest is not None
                                              else max(everywhere, default=None))
    if target is None or target not in everywhere:
        what = f"Span {target}" if target is not None else "No span"
        raise SpanNotFoundError(f"{what} has no files in every input split ({described})")
    spans_by_split = {}
    for name in patterns:
        before = [span for span in available[name] if span <= target]
        if name == EVAL_SPLIT:
            spans_by_split[name] = [target]
        else:
            spans_by_split[name] = before[-training_spans:] if training_spans else before
    return SpanChoice(target, spans_by_split)
