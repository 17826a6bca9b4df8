"""The evaluator's answering on Beam: workers load each model once and answer batches of
questions, as many at once as the runner has workers.

At the published size a window's TFLite invoke takes a large fraction of a second on one
CPU thread (README, Benchmarks), so one process needs hours for SQuAD's dev set. Here the eval
split's question records are read, batched (`QUESTIONS_PER_BATCH`), reshuffled (the
DirectRunner hands the batches to its workers in turn; Dataflow balances them) and answered
by one `AnswerQuestions` per model, each worker loading the model once. The answers come back
through files (JSON lines under `work_dir`), so the same code runs on the DirectRunner's
`multi_processing` workers and on Dataflow. Each worker answers with
`components.qa.answering.answer_batch`, the code `answer_questions` runs in one process, and
decodes the records with `squad.from_tf_example`, as the executor reads them. `Scorer`
answers one set of questions so and scores the answers with the official metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from apache_beam.metrics.metric import MetricsFilter

from components.evaluator import gate
from components.qa import (
    answering,
    inference,
    metrics,
    postprocess,
    progress,
    squad,
    task_library,
    tflite,
)
from components.qa import windows as windows_lib

METRICS_NAMESPACE = "QaEvaluator"
# Questions answered together: a worker's unit of work (about 4 windows), small enough that
# the DirectRunner's turn-by-turn split stays even.
QUESTIONS_PER_BATCH = 4
ANSWERS_FILE_PREFIX = "answers"
# Counted once per model load: `<model>/loads/<process id>`.
LOADS_METRIC = "loads"
# metrics.json's key of the SQuAD 2.0 null threshold a model was scored at.
NULL_THRESHOLD_RESULT = "null_score_diff_threshold"
# Eval windows on which each TFLite file is compared with the SavedModel.
AGREEMENT_WINDOWS = 200


@dataclasses.dataclass
class ScoredModel:
    """One model's answers and what answering them took on the workers."""

    answers: postprocess.Answers
    windows: int
    # From the first batch's start to the last batch's end, over all workers (model loading
    # and worker start-up excluded).
    seconds: float
    # The batches' times added up: one worker's time for all windows (at the speed it had
    # beside the others).
    batch_seconds: float
    # How many times each worker process (by process id) loaded the model.
    loads_by_process: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def windows_per_second(self) -> float:
        """All workers together, from the first batch's start to the last one's end."""
        return self.windows / max(self.seconds, 1e-9)

    @property
    def windows_per_worker_second(self) -> float:
        """One worker's speed while answering."""
        return self.windows / max(self.batch_seconds, 1e-9)


class AnswerQuestions(beam.DoFn):
    """Batches of serialized question tf.Examples -> one JSON line per question answered
    by the model at `model_path`: a SavedModel or a .tflite file over sliding windows
    (`answering.answer_batch`), or, with `task_library`, a .tflite file in the TFLite Task
    Library's `BertQuestionAnswerer` (its first window only: `components.qa.task_library`;
    its best answer is the prediction, its answers the n-best).

    Records whose id is not in `question_ids` are passed over (the executor's
    `max_eval_examples`). The windows are cut with `config` at the model's own `seq_len`.
    """

    def __init__(self, name: str, model_path: str, vocab_path: str,
                 config: windows_lib.WindowConfig, question_ids: frozenset[str],
                 settings: answering.AnswerSettings, threads: int | None,
                 task_library: bool = False):
        self._name = name
        self._threads = threads
        self._model_path = model_path
        self._vocab_path = vocab_path
        self._config = config
        self._question_ids = question_ids
        self._settings = settings
        self._task_library = task_library
        self._questions = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{name}/questions")
        self._windows = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{name}/windows")
        self._first_start = beam.metrics.Metrics.distribution(
            METRICS_NAMESPACE, f"{name}/batch_start_ms")
        self._last_end = beam.metrics.Metrics.distribution(
            METRICS_NAMESPACE, f"{name}/batch_end_ms")
        self._batch_ms = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, f"{name}/batch_ms")
        self._predictor = None
        self._maker = None
        self._progress = None
        self._load_to_count = False

    def setup(self):
        self._load_to_count = True
        if self._task_library:
            self._predictor = task_library.load(self._model_path, self._threads)
            return
        if self._threads:
            _limit_tensorflow_threads(self._threads)
        self._predictor = inference.load_predictor(self._model_path, self._threads)
        seq_len = self._predictor.seq_len or self._config.seq_len
        if seq_len != self._config.seq_len:
            logging.info("%s takes seq_len=%d (spec: %d)", self._name, seq_len,
                         self._config.seq_len)
        self._maker = windows_lib.WindowMaker(
            self._vocab_path, dataclasses.replace(self._config, seq_len=seq_len))

    def start_bundle(self):
        if self._load_to_count:  # Beam counts metrics within bundles only, not in setup().
            beam.metrics.Metrics.counter(
                METRICS_NAMESPACE, f"{self._name}/{LOADS_METRIC}/{os.getpid()}").inc()
            self._load_to_count = False
        if self._progress is None:  # From the first bundle, not from the worker's start.
            self._progress = progress.progress(desc=f"QaEvaluator [{self._name}]",
                                               unit="questions")

    def teardown(self):
        if self._progress is not None:
            self._progress.close()
        if self._predictor is not None and not self._task_library:
            self._predictor.close()

    def _answer(self, questions: Sequence[squad.SquadExample]) -> tuple[postprocess.Answers, int]:
        """The questions' answers and the windows read."""
        if not self._task_library:
            return answering.answer_batch(self._predictor, questions, self._maker,
                                          self._settings)
        answers = postprocess.Answers()
        for question in questions:
            best = task_library.answers(self._predictor, question.context, question.question)
            answers.predictions[question.id] = best[0]["text"] if best else ""
            answers.nbest[question.id] = best
        return answers, len(questions)

    def process(self, records: Sequence[bytes]) -> Iterable[str]:
        started_ms = int(time.time() * 1000)
        questions = [q for q in map(squad.from_tf_example, records)
                     if q.id in self._question_ids]
        answers, num_windows = self._answer(questions)
        self._questions.inc(len(questions))
        self._windows.inc(num_windows)
        ended_ms = int(time.time() * 1000)
        self._first_start.update(started_ms)
        self._last_end.update(ended_ms)
        self._batch_ms.update(ended_ms - started_ms)
        self._progress.update(len(questions))
        for question in questions:
            yield json.dumps({"id": question.id,
                              "prediction": answers.predictions[question.id],
                              "nbest": answers.nbest[question.id],
                              "null_odds": answers.null_odds.get(question.id)},
                             ensure_ascii=False)


def answer_on_beam(
    pipeline: beam.Pipeline,
    records_pattern: str,
    models: Mapping[str, str],
    questions: Sequence[squad.SquadExample],
    vocab_path: str,
    config: windows_lib.WindowConfig,
    settings: answering.AnswerSettings,
    work_dir: str,
    threads: int | None = None,
    task_library_models: Mapping[str, str] | None = None,
) -> dict[str, ScoredModel]:
    """Answers `questions` (read from `records_pattern`) with each model (name -> path)
    and each .tflite file of `task_library_models` (name -> path) in the Task Library, in
    one Beam pipeline; the answers by name. `work_dir` (emptied before, removed after)
    holds the answers between the workers and this process. `threads`: each worker's CPU
    threads (`beam_executor.threads_per_worker`; None: the runtimes' defaults)."""
    if tf.io.gfile.exists(work_dir):  # an interrupted attempt's answers
        tf.io.gfile.rmtree(work_dir)
    question_ids = frozenset(q.id for q in questions)
    batches = (
        pipeline
        | "ReadQuestions" >> beam.io.ReadFromTFRecord(records_pattern)
        | "Batch" >> beam.BatchElements(min_batch_size=QUESTIONS_PER_BATCH,
                                        max_batch_size=QUESTIONS_PER_BATCH,
                                        record_metrics=False)
        | "Reshuffle" >> beam.Reshuffle()
    )
    answerers = {name: (path, False) for name, path in models.items()}
    answerers.update((name, (path, True)) for name, path in (task_library_models or {}).items())
    if len(answerers) != len(models) + len(task_library_models or {}):
        raise ValueError(f"The models {list(models)} and the Task Library's "
                         f"{list(task_library_models or {})} need distinct names")
    prefixes = {}
    for number, (name, (path, in_task_library)) in enumerate(answerers.items()):
        prefixes[name] = os.path.join(work_dir, str(number), ANSWERS_FILE_PREFIX)
        _ = (
            batches
            | f"Answer[{name}]" >> beam.ParDo(AnswerQuestions(
                name, path, vocab_path, config, question_ids, settings, threads,
                in_task_library))
            | f"Write[{name}]" >> beam.io.WriteToText(prefixes[name], file_name_suffix=".jsonl")
        )
    logging.info("Answering %d questions with %s on Beam", len(questions), list(answerers))
    try:
        result = pipeline.run()
        result.wait_until_finish()
        answers = {name: _read_answers(prefix, [q.id for q in questions], name)
                   for name, prefix in prefixes.items()}
    finally:
        if tf.io.gfile.exists(work_dir):
            tf.io.gfile.rmtree(work_dir)
    metrics = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    counters = {c.key.metric.name: c.committed or 0 for c in metrics["counters"]}
    spans = {d.key.metric.name: d.committed for d in metrics["distributions"]}
    scored = {}
    for name in answerers:
        start, end = spans.get(f"{name}/batch_start_ms"), spans.get(f"{name}/batch_end_ms")
        batch_ms = spans.get(f"{name}/batch_ms")
        seconds = (end.max - start.min) / 1000 if start and end and start.count else 0.0
        loads_prefix = f"{name}/{LOADS_METRIC}/"
        loads = {int(key[len(loads_prefix):]): count for key, count in counters.items()
                 if key.startswith(loads_prefix)}
        scored[name] = ScoredModel(answers[name], counters.get(f"{name}/windows", 0), seconds,
                                   batch_ms.sum / 1000 if batch_ms else 0.0, loads)
        logging.info("%s: %d questions, %d windows in %.1f s on %d worker processes "
                     "(%.2f windows/s; one worker %.2f windows/s)", name, len(questions),
                     scored[name].windows, seconds, len(loads),
                     scored[name].windows_per_second, scored[name].windows_per_worker_second)
    return scored


def _limit_tensorflow_threads(threads: int) -> None:
    """Runs this process's TensorFlow ops on `threads` threads, if TensorFlow has not
    started yet (a worker process; the in-memory runner shares the executor's)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        logging.info("TensorFlow already runs here; its thread counts stay as they are")


def _read_answers(prefix: str, question_ids: Sequence[str], name: str) -> postprocess.Answers:
    """The answers the workers wrote, in `question_ids`' order; each question answered."""
    by_id = {}
    for path in sorted(tf.io.gfile.glob(prefix + "*")):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                answer = json.loads(line)
                by_id[answer["id"]] = answer
    missing = [qid for qid in question_ids if qid not in by_id]
    if missing:
        raise RuntimeError(f"{name}: the Beam workers answered {len(by_id)} of "
                           f"{len(set(question_ids))} questions; none for {missing[:5]}")
    answers = postprocess.Answers()
    for qid in question_ids:
        answers.predictions[qid] = by_id[qid]["prediction"]
        answers.nbest[qid] = by_id[qid]["nbest"]
        if by_id[qid]["null_odds"] is not None:
            answers.null_odds[qid] = by_id[qid]["null_odds"]
    return answers


def headline(official: Mapping[str, Any]) -> dict[str, Any]:
    """EM/F1 under one pair of names (v1.1 says 'exact_match', v2.0 'exact')."""
    em = official["exact_match"] if "exact_match" in official else official["exact"]
    return {"exact_match": float(em), "f1": float(official["f1"]), "official": dict(official)}


class Scorer:
    """Answers (on Beam, `answer_on_beam`) and scores one set of questions with any number of
    models, at one SQuAD 2.0 null threshold."""

    def __init__(self, examples, spec, vocab_path, version_2, null_threshold, records_pattern,
                 make_pipeline, work_dir, threads):
        self.examples = examples
        self.spec = spec
        self.vocab_path = vocab_path
        self.version_2 = version_2
        self.null_threshold = null_threshold
        self.records_pattern = records_pattern
        self.make_pipeline = make_pipeline
        self.work_dir = work_dir
        self.threads = threads
        self.config = windows_lib.WindowConfig.from_spec(spec)

    def score(self, paths: Mapping[str, str], task_library_paths: Mapping[str, str] | None = None
              ) -> dict[str, tuple[dict, postprocess.Answers]]:
        """Each model's (official metrics at `null_threshold`, answers at it), by name; and
        each file of `task_library_paths` answered in the Task Library (no null threshold:
        the official metrics of its best answers)."""
        settings = answering.AnswerSettings(
            batch_size=self.spec.predict_batch_size, version_2_with_negative=self.version_2,
            null_score_diff_threshold=self.null_threshold)
        scored = answer_on_beam(
            self.make_pipeline(), self.records_pattern, paths, self.examples, self.vocab_path,
            self.config, settings, self.work_dir, self.threads, task_library_paths)
        results = {}
        for name, model in scored.items():
            if name in (task_library_paths or {}):
                official = metrics.evaluate_examples(
                    self.examples, model.answers.predictions, version_2=self.version_2)
                results[name] = headline(official), model.answers
            else:
                results[name] = self.metrics(model.answers)
            logging.info("%s: EM %.2f, F1 %.2f", name, results[name][0]["exact_match"],
                         results[name][0]["f1"])
        return results

    def metrics(self, answers: postprocess.Answers):
        """(official metrics, answers) at `null_threshold`, as predictions.json says."""
        if not self.version_2:
            return headline(metrics.evaluate_examples(self.examples, answers.predictions)), answers
        answers = answers.at_threshold(self.null_threshold)
        official = metrics.evaluate_v2_at_threshold(self.examples, answers, self.null_threshold)
        return {**headline(official), NULL_THRESHOLD_RESULT: self.null_threshold}, answers

    def tune_null_threshold(self, answers: postprocess.Answers, result: dict):
        """Adopts the official best-F1 threshold of these answers; their metrics at it."""
        self.null_threshold = float(result["official"]["best_f1_thresh"])
        logging.info("SQuAD 2.0: the best-F1 null threshold on this split is %.4f (F1 %.2f)",
                     self.null_threshold, result["official"]["best_f1"])
        return self.metrics(answers)

    def question_scores(self, answers: postprocess.Answers) -> gate.QuestionScores:
        return gate.question_scores(self.examples, answers.predictions, self.version_2)

    def agreement_windows(self) -> dict[str, np.ndarray]:
        """Up to `AGREEMENT_WINDOWS` eval windows, in question order."""
        chosen = []
        maker = windows_lib.WindowMaker(self.vocab_path, self.config)
        for example in self.examples:
            chosen.extend(maker.make_windows(example, training=False))
            if len(chosen) >= AGREEMENT_WINDOWS:
                break
        chosen = chosen[:AGREEMENT_WINDOWS]
        return {name: np.array([getattr(w, name) for w in chosen], np.int32)
                for name in tflite.WINDOW_INPUTS}
