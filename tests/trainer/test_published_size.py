"""The default spec's path at the published MobileBERT size: a TF1 Hub module with the
published layout (24 layers, 24.6 M parameters), seq_len 384, trained through the
Trainer's code, exported, converted, and loaded by the Task Library."""

import os

import pytest

from components.qa import encoders, tf1_hub, tflite
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
        str(tmp_path / "mobilebert"), tf1_hub.PUBLISHED_CONFIG_PATH, tf_format=encoders.TF1
    )
    spec = MobileBertQaSpec(uri=module)  # every default: TF1 format, 384/64/128, 'off'
    assert (spec.is_tf2, spec.seq_len, spec.query_len) == (False, 384, 64)
    windows = fixtures.write_windows(str(tmp_path / "windows" / "train.gz"), 8, seq_len=384)
    serving = run_fn.train_and_export(
        spec, windows, windows, str(tmp_path / "serving"), str(tmp_path / "state"),
        train_steps=2, eval_steps=0, batch_size=2,
    )
    assert fixtures.read(os.path.join(str(tmp_path), "serving", "saved_model.pb"), "rb")
    path = tflite.export_tflite(serving, str(tmp_path / "model.tflite"), spec,
                                encoders.module_vocab_path(module))
    assert os.path.getsize(path) > 20_000_000  # dynamic range: int8 weights of 24.6 M
    answerer = BertQuestionAnswerer.create_from_file(path)
    result = answerer.answer(PASSAGE, "Where was the game played?")
    assert result.answers, "the Task Library returned no answer"
    assert all(answer.text and answer.text in PASSAGE for answer in result.answers)
