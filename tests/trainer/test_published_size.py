"""The default spec's path at the published MobileBERT size: a TF1 Hub module with the
published layout (24 layers, 24.6 M parameters), seq_len 384, trained through the
Trainer's code, exported, converted, and loaded by the Task Library."""

import os

import pytest

from components.qa import encoders, mobilebert, tflite
from components.qa.spec import MobileBertQaSpec
from components.trainer import run_fn
from tests.trainer import fixtures

pytestmark = pytest.mark.slow

PASSAGE = ("Super Bowl 50 was an American football game to determine the champion of the "
           "National Football League for the 2015 season. The game was played in Santa Clara.")


def test_published_size_trains_exports_and_answers_in_the_task_library(tmp_path):
    from tensorflow_lite_support.python.task.text.bert_question_answerer import (
        BertQuestionAnswerer,
    )

    module = encoders.make_encoder(
        str(tmp_path / "mobilebert"), mobilebert.PUBLISHED_CONFIG_PATH, tf_format=encoders.TF1
    )
    spec = MobileBertQaSpec(uri=module)  # every default: TF1 format, 384/64/128, 'off'
    assert (spec.is_tf2, spec.seq_len, spec.query_len) == (False, 384, 64)
    windows = fixtures.write_windows(str(tmp_path / "windows" / "train.gz"), 8, seq_len=384)
    serving = run_fn.train_and_export(
        spec, windows, windows, str(tmp_path / "serving"), str(tmp_path / "state"),
        train_steps=2, eval_steps=0, batch_size=2,
    )
    assert os.path.exists(os.path.join(serving, "saved_model.pb"))
    # float32: the dynamic-range conversion of this size takes 2.3x as long (151 s against
    # 64 s here) and gives the same graph with int8 weights (README, "A real run").
    path = tflite.export_tflite(serving, str(tmp_path / "model.tflite"), spec,
                                encoders.module_vocab_path(module), quantization="float32")
    assert os.path.getsize(path) > 4 * 24_000_000  # float32 weights of 24.6 M parameters
    answerer = BertQuestionAnswerer.create_from_file(path)
    result = answerer.answer(PASSAGE, "Where was the game played?")
    # Random weights may rank no valid span first; what the Task Library returns is text of
    # the passage.
    assert all(answer.text and answer.text in PASSAGE for answer in result.answers)
