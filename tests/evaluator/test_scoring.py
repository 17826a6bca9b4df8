"""The evaluator's answering on Beam (`components.evaluator.scoring`) gives, on several
worker processes, exactly the answers `answering.answer_questions` gives in one process."""

from __future__ import annotations

import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from components.evaluator import scoring
from components.qa import answering, inference, squad, tflite
from components.qa.squad import SquadExample
from components.qa.windows import WindowConfig, WindowMaker
from tests.evaluator import evaluator_fixtures
from tests.qa.test_answering import LONG_CONTEXT, SPEC, save_keyword_model

CONFIG = WindowConfig.from_spec(SPEC)
TWO_WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _questions() -> list[SquadExample]:
    """24 questions: long passages (several windows), short ones, unanswerable, Unicode."""
    unicode_context = "Café Müller öffnete 1881 in Houston, Texas — „Schöne Grüße“."
    questions = []
    for i in range(8):
        questions.append(SquadExample(
            id=f"long{i}", title="t", context=LONG_CONTEXT, question=f"Where was she born {i}?",
            answer_texts=("Houston",), answer_starts=(LONG_CONTEXT.index("Houston"),)))
        questions.append(SquadExample(
            id=f"unicode{i}", title="t", context=unicode_context, question="Wo öffnete es?",
            answer_texts=("Houston",), answer_starts=(unicode_context.index("Houston"),)))
        questions.append(SquadExample(
            id=f"none{i}", title="t", context="Dallas is a city in Texas.",
            question="Is Houston a city?", is_impossible=True))
    return questions


@pytest.fixture(scope="module")
def models(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("scoring")
    vocab = str(data_dir / "vocab" / "vocab.txt")
    saved_model = save_keyword_model(root / "saved_model", vocab)
    lite = tflite.export_tflite(saved_model, str(root / "model.tflite"), SPEC, vocab,
                                quantization="float32")
    records = evaluator_fixtures.write_records(
        str(root / "questions"), [squad.to_tf_example(q) for q in _questions()])
    return vocab, {"saved_model": saved_model, "tflite_float32": lite}, records


def _in_one_process(path, questions, vocab, settings):
    with inference.load_predictor(path) as predictor:
        return answering.answer_questions(predictor, questions, WindowMaker(vocab, CONFIG),
                                          settings)


def test_two_worker_processes_answer_as_one_process(models, tmp_path):
    """SQuAD 2.0 (null odds too); the executor's tests answer SQuAD 1.1 on Beam in memory."""
    vocab, paths, records = models
    questions = _questions()[3:]  # the records hold 3 more: answered by no one
    settings = answering.AnswerSettings(batch_size=3, version_2_with_negative=True,
                                      null_score_diff_threshold=-1.0)
    work_dir = str(tmp_path / "work")
    scored = scoring.answer_on_beam(
        beam.Pipeline(options=PipelineOptions(TWO_WORKERS)), records, paths, questions, vocab,
        CONFIG, settings, work_dir)
    assert not os.path.exists(work_dir)
    maker = WindowMaker(vocab, CONFIG)
    expected_windows = sum(len(maker.make_windows(q, training=False)) for q in questions)
    for name, path in paths.items():
        expected = _in_one_process(path, questions, vocab, settings)
        got = scored[name].answers
        assert list(got.predictions) == [q.id for q in questions]
        assert got.predictions == expected.predictions
        assert got.nbest == expected.nbest
        assert got.null_odds == expected.null_odds
        assert set(got.null_odds) == set(got.predictions)
        assert scored[name].windows == expected_windows > len(questions)
        assert scored[name].seconds > 0
        # Two processes answered, neither this one, each loading the model once.
        loads = scored[name].loads_by_process
        assert len(loads) == 2 and os.getpid() not in loads, loads
        assert set(loads.values()) == {1}, loads
    predictions = scored["saved_model"].answers.predictions
    assert {predictions[q.id] for q in questions if not q.is_impossible} == {"Houston"}
    assert {predictions[q.id] for q in questions if q.is_impossible} == {""}


def test_a_question_the_records_lack_is_named(models, tmp_path):
    vocab, paths, records = models
    missing = SquadExample(id="not-in-the-records", title="t", context="Houston.",
                           question="Where?", is_impossible=True)
    with pytest.raises(RuntimeError, match="answered 2 of 3 questions.*not-in-the-records"):
        scoring.answer_on_beam(
            beam.Pipeline(), records, {"tflite_float32": paths["tflite_float32"]},
            [*_questions()[:2], missing], vocab, CONFIG, answering.AnswerSettings(),
            str(tmp_path / "work"))
    assert not os.path.exists(tmp_path / "work")
