"""The learning proof: the Trainer code learns synthetic SQuAD to F1 >= 80 on held-out data.

A tiny MobileBERT (the package's tiny config, random weights) is trained through the
Trainer's `train_and_export` on windows cut by `WindowMaker` at the demo's settings (the
Task Library's 384/64 windows, short passages, batches of one length bucket: the
SquadTransform's tf.Transform analysis of the training windows' lengths); the exported
SavedModel answers the held-out questions through `answering` and the official
metrics, and its dynamic-range TFLite file answers them in the Task Library's
`BertQuestionAnswerer`. Its full-integer 'int8' file, calibrated on 100 training windows
drawn as the evaluator draws them, answers the held-out questions within
`MAX_INT8_F1_DROP` F1 points of the SavedModel and answers in the Task Library too.
About 2 minutes on 2 CPU cores (1.5 to 2 measured on 2026-12-05).
"""

from __future__ import annotations

import os
import time

import pytest
import tensorflow as tf
from absl import logging

from components.qa import (
    answering,
    encoders,
    inference,
    metrics,
    squad_json,
    synth,
    task_library,
    tflite,
    windows,
)
from components.qa import spec as spec_lib
from components.squad_transform import length_buckets
from components.trainer import run_fn
from pipelines import demo
from pipelines.config import PipelineConfig

# The demo's settings, with 650 training steps instead of 800.
QUESTIONS = 2000
TRAIN_STEPS = 650
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
TASK_LIBRARY_QUESTIONS = 40
# The int8 file's F1 may be this much below the SavedModel's (the MobileBERT-EdgeTPU README
# reports 89.02 float vs 87.95 int8 for baseline MobileBERT on SQuAD 1.1).
MAX_INT8_F1_DROP = 1.1


def write_windows(examples, maker: windows.WindowMaker, path: str, training: bool) -> list[int]:
    """Writes the examples' windows as a GZIP TFRecord file; returns their lengths."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lengths = []
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for example in examples:
            cut = maker.make_windows(example, training=training)
            for record in windows.windows_to_tf_examples(cut):
                writer.write(record)
            lengths.extend(sum(w.input_mask) for w in cut)
    return lengths


def train_and_score(root: str, questions: int, train_steps: int, batch_size: int,
                    learning_rate: float) -> dict:
    """Trains on synthetic SQuAD under `root`; returns EM, F1, the loss and timings."""
    started = time.time()
    hub = encoders.make_encoder(os.path.join(root, "hub"), tf_format=encoders.TF1)
    files = synth.make_synthetic_squad(os.path.join(root, "squad"), n=questions, seed=0,
                                       facts_per_passage=demo.DEMO_FACTS_PER_PASSAGE)
    spec = spec_lib.MobileBertQaSpec(
        uri=hub, seq_len=demo.DEMO_SPEC["seq_len"], query_len=demo.DEMO_SPEC["query_len"],
        doc_stride=demo.DEMO_SPEC["doc_stride"], learning_rate=learning_rate,
        default_batch_size=batch_size,
    )
    maker = windows.WindowMaker(
        encoders.module_vocab_path(hub), windows.WindowConfig.from_spec(spec)
    )
    train_examples, _ = squad_json.read_squad_examples(files["train"])
    eval_examples, _ = squad_json.read_squad_examples(files["eval"])
    # Laid out as a TFX Examples artifact (Split-<name>/), as the SquadTransform writes them.
    train_lengths = write_windows(
        train_examples, maker, os.path.join(root, "windows", "Split-train", "data.gz"), True
    )
    num_eval = len(write_windows(
        eval_examples, maker, os.path.join(root, "windows", "Split-eval", "data.gz"), False
    ))
    transform_graph = os.path.join(root, "transform_graph")
    padded_lengths = length_buckets.analyze_lengths(
        train_lengths, PipelineConfig.length_buckets, spec.seq_len, transform_graph)
    logging.info("%d train windows (length buckets %s), %d eval windows", len(train_lengths),
                 sorted(set(padded_lengths)), num_eval)
    train_start = time.time()
    serving = run_fn.train_and_export(
        spec, os.path.join(root, "windows", "Split-train", "*"),
        os.path.join(root, "windows", "Split-eval", "*"), os.path.join(root, "serving"),
        os.path.join(root, "model"), train_steps=train_steps, eval_steps=0,
        transform_graph=transform_graph,
    )
    train_s = time.time() - train_start
    predictor = inference.load_predictor(serving)
    answers = answering.answer_questions(predictor, eval_examples, maker,
                                         answering.AnswerSettings(batch_size=64))
    scores = metrics.evaluate_examples(eval_examples, answers.predictions)
    lite = tflite.export_tflite(serving, os.path.join(root, "model.tflite"), spec,
                                encoders.module_vocab_path(hub))
    asked = eval_examples[:TASK_LIBRARY_QUESTIONS]
    library = {e.id: task_library.answer(lite, e.context, e.question) for e in asked}
    int8_started = time.time()
    int8 = tflite.export_tflite(
        serving, os.path.join(root, "model_int8.tflite"), spec, encoders.module_vocab_path(hub),
        "int8", int8_calibration_windows(os.path.join(root, "windows"), spec.seq_len))
    int8_answers = answering.answer_questions(inference.load_predictor(int8), eval_examples,
                                              maker, answering.AnswerSettings(batch_size=64))
    int8_library = {e.id: task_library.answer(int8, e.context, e.question) for e in asked}
    with open(int8, "rb") as f:
        int8_float_ops = tflite.float_ops(f.read())
    scores.update(train_seconds=train_s, total_seconds=time.time() - started,
                  train_windows=len(train_lengths), eval_questions=len(eval_examples),
                  task_library=metrics.evaluate_examples(asked, library),
                  int8=metrics.evaluate_examples(eval_examples, int8_answers.predictions),
                  int8_task_library=metrics.evaluate_examples(asked, int8_library),
                  int8_answered=sum(bool(a) for a in int8_library.values()),
                  int8_float_ops=int8_float_ops, int8_seconds=time.time() - int8_started)
    return scores


def int8_calibration_windows(windows_uri: str, seq_len: int) -> dict:
    """100 training windows drawn as the evaluator draws them to calibrate integer files."""
    from tfx.types import artifact_utils, standard_artifacts

    from components.evaluator import inputs

    transformed = standard_artifacts.Examples()
    transformed.uri = windows_uri
    transformed.split_names = artifact_utils.encode_split_names(["train", "eval"])
    return inputs.sample_windows(transformed, "train", seq_len)


@pytest.mark.slow
def test_tiny_mobilebert_learns_synthetic_squad(tmp_path):
    scores = train_and_score(str(tmp_path), QUESTIONS, TRAIN_STEPS, BATCH_SIZE, LEARNING_RATE)
    logging.info("Learning proof: %s", scores)
    assert scores["f1"] >= 80.0, scores
    assert scores["exact_match"] >= 70.0, scores
    assert scores["task_library"]["exact_match"] >= 70.0, scores
    assert scores["f1"] - scores["int8"]["f1"] <= MAX_INT8_F1_DROP, scores
    assert scores["int8_answered"] == TASK_LIBRARY_QUESTIONS, scores
    assert scores["int8_task_library"]["exact_match"] >= 70.0, scores
