"""SquadTransform's Beam work, without TensorFlow: question tf.Examples in, window tf.Examples out.

This module is what a Beam worker process unpickles and runs, so it must not import
TensorFlow or TFX: with them, each worker spends longer importing before its first question
than windowing SQuAD's dev set takes (README, Benchmarks, "The SquadTransform on Beam").
The tf.Examples are decoded and encoded in batches by `tfx_bsl.coders.example_coder` (C++
over Arrow record batches; it imports pyarrow, not TensorFlow), which also encodes windows
faster than TensorFlow's proto classes (same section): filling a window's five 384-int lists
through `tf.train.Int64List` one window at a time costs more than cutting the window.

`questions_from_tf_examples` reads what `components.qa.squad.to_tf_example` writes, like
`squad.from_tf_example`; the windows are written by `components.qa.windows.
windows_to_tf_examples` (tests/squad_transform/test_windowing.py checks both against
TensorFlow's proto classes on real questions and windows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from absl import logging
from tfx_bsl.coders import example_coder

from components.qa import progress, squad
from components.qa import windows as windows_lib

METRICS_NAMESPACE = "SquadTransform"
# Counters, per split: f"{split}/{name}".
COUNTERS = ("questions", "windows", "skipped", "no_windows")
# What a reviewer reads of a split's questions (`qa_statistics`), per split: counters of
# unanswerable questions and of answers past the first window, distributions of lengths.
QA_COUNTERS = ("unanswerable", "beyond_first_window")
QA_DISTRIBUTIONS = ("passage_tokens", "question_tokens")
SKIPPED_TAG = "skipped"
# The windows' lengths (real tokens), as Arrow record batches of this column.
LENGTHS_TAG = "lengths"
WINDOW_LENGTH = "window_length"
# Questions decoded, windowed and encoded together (`beam.BatchElements`).
BATCH_SIZE = 64


def questions_from_tf_examples(
    records: Sequence[bytes], decoder: example_coder.ExamplesToRecordBatchDecoder | None = None
) -> list[squad.SquadExample]:
    """Decodes serialized question tf.Examples (`squad.to_tf_example`), like
    `squad.from_tf_example` does one by one."""
    if not records:
        return []
    decoder = decoder or example_coder.ExamplesToRecordBatchDecoder()
    batch = decoder.DecodeBatch(list(records))
    return [
        squad.SquadExample(
            id=id_[0], title=title[0], context=context[0], question=question[0],
            answer_texts=answer_texts, answer_starts=answer_starts,
            is_impossible=bool(is_impossible[0]), plausible_answer_texts=plausible_texts,
            plausible_answer_starts=plausible_starts,
        )
        for (id_, title, context, question, answer_texts, answer_starts, is_impossible,
             plausible_texts, plausible_starts) in zip(
            _values(batch, squad.ID, text=True), _values(batch, squad.TITLE, text=True),
            _values(batch, squad.CONTEXT, text=True), _values(batch, squad.QUESTION, text=True),
            _values(batch, squad.ANSWER_TEXTS, text=True),
            _values(batch, squad.ANSWER_STARTS, text=False),
            _values(batch, squad.IS_IMPOSSIBLE, text=False),
            _values(batch, squad.PLAUSIBLE_ANSWER_TEXTS, text=True),
            _values(batch, squad.PLAUSIBLE_ANSWER_STARTS, text=False),
            strict=True,
        )
    ]


def _values(batch: pa.RecordBatch, name: str, text: bool) -> list[tuple]:
    """A feature's values per record (UTF-8 decoded if `text`); () where it is absent."""
    if name not in batch.schema.names:
        return [()] * batch.num_rows
    column = batch.column(batch.schema.get_field_index(name))
    values = column.flatten()
    if text:
        values = values.cast(pa.large_string())  # checks the UTF-8
    flat = values.to_pylist()
    offsets = column.offsets.to_numpy()
    offsets = offsets - offsets[0]
    if len(flat) == batch.num_rows and (np.diff(offsets) == 1).all():  # one value each
        return [(value,) for value in flat]
    bounds = offsets.tolist()
    return [tuple(flat[bounds[i]:bounds[i + 1]]) for i in range(batch.num_rows)]


def window_lengths_batch(lengths: Sequence[int]) -> pa.RecordBatch:
    """Window lengths as an Arrow record batch of one `WINDOW_LENGTH` (int64 list) column."""
    return pa.RecordBatch.from_arrays(
        [pa.array([[n] for n in lengths], pa.large_list(pa.int64()))], [WINDOW_LENGTH])


class MakeWindows(beam.DoFn):
    """A batch of serialized question tf.Examples -> serialized window tf.Examples
    (training mode). Input: lists of records (`beam.BatchElements`).

    Skipped questions go to the `SKIPPED_TAG` output as JSON lines, the windows' lengths
    (`sum(input_mask)`) to `LENGTHS_TAG` as a record batch of `WINDOW_LENGTH`. Each instance (a Beam
    worker may run several, in other processes) shows its own progress: a bar on a
    terminal, else a log line every `progress.LOG_EVERY_S`; the split's totals are the Beam
    counters.
    """

    def __init__(self, vocab_path: str, config: windows_lib.WindowConfig, split: str):
        self._vocab_path = vocab_path
        self._config = config
        self._split = split
        self._counters = {
            name: beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{split}/{name}")
            for name in COUNTERS + QA_COUNTERS
        }
        self._distributions = {
            name: beam.metrics.Metrics.distribution(METRICS_NAMESPACE, f"{split}/{name}")
            for name in QA_DISTRIBUTIONS
        }
        self._maker = None
        self._decoder = None
        self._encoder = None
        self._progress = None

    def setup(self):
        self._maker = windows_lib.WindowMaker(self._vocab_path, self._config)
        self._decoder = example_coder.ExamplesToRecordBatchDecoder()
        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def start_bundle(self):
        if self._progress is None:  # From the first bundle, not from the worker's start.
            self._progress = progress.progress(desc=f"SquadTransform [{self._split}]",
                                               unit="questions")

    def teardown(self):
        if self._progress is not None:
            self._progress.close()

    def process(self, records: Sequence[bytes]) -> Iterable:
        questions = questions_from_tf_examples(records, self._decoder)
        self._counters["questions"].inc(len(questions))
        self._progress.update(len(questions))
        self._maker.tokenize_ahead(questions)
        windows = []
        for question in questions:
            try:
                question_windows = self._maker.make_windows(question, training=True)
            except windows_lib.AnswerNotFoundError as error:
                logging.warning("SquadTransform: split %s: skipped: %s", self._split, error)
                self._counters["skipped"].inc()
                yield beam.pvalue.TaggedOutput(
                    SKIPPED_TAG, json.dumps({"id": question.id, "reason": str(error)},
                                            ensure_ascii=False)
                )
                continue
            if not question_windows:
                self._counters["no_windows"].inc()
            self._count_question(question, question_windows)
            windows.extend(question_windows)
        self._counters["windows"].inc(len(windows))
        if windows:
            yield beam.pvalue.TaggedOutput(
                LENGTHS_TAG, window_lengths_batch([sum(w.input_mask) for w in windows]))
        yield from windows_lib.windows_to_tf_examples(windows, self._encoder)

    def _count_question(self, question: squad.SquadExample,
                        question_windows: Sequence[windows_lib.Window]) -> None:
        """The question's share of the split's QA statistics."""
        self._distributions["passage_tokens"].update(self._maker.passage_length(question.context))
        self._distributions["question_tokens"].update(
            len(self._maker.tokenizer.encode(question.question)[0]))
        if question.is_impossible:
            self._counters["unanswerable"].inc()
        elif question_windows and question_windows[0].start_position == 0:
            self._counters["beyond_first_window"].inc()


@beam.ptransform_fn
def WindowQuestions(  # noqa: N802 (a PTransform)
    records: beam.PCollection, vocab_path: str, config: windows_lib.WindowConfig, split: str
) -> beam.pvalue.DoOutputsTuple:
    """Serialized questions -> `.windows` (serialized windows), `[SKIPPED_TAG]` (JSON) and
    `[LENGTHS_TAG]` (record batches of window lengths).

    The batches of questions are reshuffled: the input is usually one gzipped TFRecord file,
    which a runner cannot split, so without it one worker would window every question.
    Reshuffling batches rather than questions makes that step 64 times fewer elements.
    """
    return (
        records
        | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE,
                                        record_metrics=False)
        | "Reshuffle" >> beam.Reshuffle()
        | "MakeWindows" >> beam.ParDo(MakeWindows(vocab_path, config, split)).with_outputs(
            SKIPPED_TAG, LENGTHS_TAG, main="windows")
    )
