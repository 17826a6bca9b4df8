"""A QA model with known logits and questions for it, for the evaluator and pusher tests.

`save_keyword_model` exports, with the Trainer's `export_serving_model`, a SavedModel that
scores one keyword token: its best span is that word wherever it occurs, so the EM/F1 it
gets on questions whose answer is (or is not) the keyword are known exactly.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.evaluator import executor
from components.qa import contracts, squad, windows
from components.qa import model as model_lib
from components.qa import spec as spec_lib

SEQ_LEN = 32
WORDS = ["houston", "texas", "beyonce", "born", "where", "was", "in", "she", "sang", "choirs",
         "the", "a", ".", ",", "?"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def write_vocab(directory) -> str:
    """A small WordPiece vocab (special tokens + `WORDS`) as `directory/vocab.txt`."""
    path = directory / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


def save_keyword_model(
    path, vocab_path: str, seq_len: int = SEQ_LEN, keyword: str = "houston",
    runner_up: tuple[str, float] | None = None,
) -> str:
    """A SavedModel with the Trainer's serving contract whose answer is `keyword`.

    Its logits are known: 5.0 at every `keyword` token, 0.0 at other tokens and at padding
    (mask 0); the start logits add 0.1 × the segment id, so the two outputs differ. A
    `runner_up` (word, score) scores that word too.
    Exported with the Trainer's `export_serving_model`, with the vocab as an asset.
    """
    vocab = open(vocab_path, encoding="utf-8").read().split("\n")
    weights = np.zeros((len(vocab), 1), np.float32)
    weights[vocab.index(keyword)] = 5.0
    if runner_up:
        weights[vocab.index(runner_up[0])] = runner_up[1]
    inputs = {name: tf.keras.Input((seq_len,), dtype=tf.int32, name=name)
              for name in contracts.SERVING_INPUTS}
    score = tf.keras.layers.Embedding(
        len(vocab), 1, embeddings_initializer=tf.keras.initializers.Constant(weights)
    )(inputs["input_ids"])[..., 0]
    mask = tf.cast(inputs["input_mask"], tf.float32)
    segment = tf.cast(inputs["segment_ids"], tf.float32)
    model = tf.keras.Model(inputs, {"start_logits": (score + 0.1 * segment) * mask,
                                    "end_logits": score * mask})
    model.vocab_file = tf.saved_model.Asset(vocab_path)
    spec = spec_lib.MobileBertQaSpec(uri="unused", seq_len=seq_len, query_len=8, doc_stride=8)
    return model_lib.export_serving_model(model, str(path), spec)


def question(qid: str, answer: str | None, context: str = "she was born in houston in texas .",
             text: str = "where was she born ?") -> squad.SquadExample:
    """A question about `context` whose answer is the word `answer` (None: unanswerable)."""
    if answer is None:
        return squad.SquadExample(id=qid, title="t", context=context, question=text,
                                  is_impossible=True)
    return squad.SquadExample(id=qid, title="t", context=context, question=text,
                              answer_texts=(answer,), answer_starts=(context.index(answer),))


def write_records(directory: str, records) -> str:
    """Writes serialized records (or tf.Examples) as one gzipped TFRecord file."""
    tf.io.gfile.makedirs(directory)
    path = f"{directory}/data_tfrecord-00000-of-00001.gz"
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in records:
            writer.write(record if isinstance(record, bytes) else record.SerializeToString())
    return path


SPEC = spec_lib.MobileBertQaSpec(uri="unused", seq_len=SEQ_LEN, query_len=8, doc_stride=8)
# 4 questions answered by "houston", 1 by "texas": the houston model gets EM 80, texas 20.
EVAL_QUESTIONS = [question(f"q{i}", "houston") for i in range(4)] + [question("q4", "texas")]


def examples_artifact(root, questions, train_questions=()) -> standard_artifacts.Examples:
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root / "examples")
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    write_records(os.path.join(artifact.uri, "Split-eval"),
                  [squad.to_tf_example(q) for q in questions])
    write_records(os.path.join(artifact.uri, "Split-train"),
                  [squad.to_tf_example(q) for q in train_questions or questions])
    return artifact


def windows_artifact(root, vocab, questions) -> standard_artifacts.Examples:
    """SquadTransform-like windows (training mode) of `questions` in both splits."""
    maker = windows.WindowMaker(vocab, windows.WindowConfig.from_spec(SPEC))
    records = windows.windows_to_tf_examples(
        [w for q in questions for w in maker.make_windows(q, training=True)])
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root / "windows")
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        write_records(os.path.join(artifact.uri, f"Split-{split}"), records)
    return artifact


def model_artifact(root, vocab, keyword: str, model_id: int, seq_len: int = SEQ_LEN,
                   runner_up: tuple[str, float] | None = None) -> standard_artifacts.Model:
    artifact = standard_artifacts.Model()
    artifact.uri = str(root / f"model_{keyword}_{seq_len}")
    artifact.id = model_id
    save_keyword_model(os.path.join(artifact.uri, "Format-Serving"), vocab, seq_len=seq_len,
                       keyword=keyword, runner_up=runner_up)
    return artifact


def run_evaluator(root, examples, model, baseline=None, transformed=None,
                  beam_pipeline_args=None, **properties):
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(root / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(root / "blessing")
    exec_properties = {
        executor.SPEC_KEY: SPEC.to_json(), executor.EVAL_SPLIT_KEY: "eval",
        executor.MIN_EXACT_MATCH_KEY: 0.0, executor.MIN_F1_KEY: 0.0,
        executor.MAX_REGRESSION_KEY: 0.0, executor.QUANTIZATIONS_KEY: '["dynamic"]',
        executor.VERSION_2_KEY: None, executor.NULL_SCORE_DIFF_THRESHOLD_KEY: 0.0,
        executor.MAX_EVAL_EXAMPLES_KEY: 0,
        # The keyword models take 32 tokens, not the Task Library's 384.
        executor.REQUIRE_TASK_LIBRARY_KEY: False,
    }
    exec_properties.update(properties)
    inputs = {"examples": [examples], "model": [model]}
    if baseline is not None:
        inputs["baseline_model"] = [baseline]
    if transformed is not None:
        inputs["transformed_examples"] = [transformed]
    context = (executor.Executor.Context(beam_pipeline_args=beam_pipeline_args)
               if beam_pipeline_args else None)
    executor.Executor(context).Do(
        inputs, {"evaluation": [evaluation], "blessing": [blessing]}, exec_properties)
    with open(os.path.join(evaluation.uri, contracts.METRICS_FILE)) as f:
        return json.load(f), evaluation, blessing
