"""The gate's parts: per-question scores, the paired bootstrap and each check's rule."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluator import gate
from components.qa import metrics
from tests.evaluator.evaluator_fixtures import question
from tests.qa import official_squad_eval as official

EXAMPLES = [
    question("a", "houston"),
    question("b", "texas"),
    question("c", "houston", context="the café in houston , texas ."),
    question("d", None),
    question("e", None),
]
PREDICTIONS = {"a": "in houston", "b": "houston", "c": "Houston, Texas", "d": "", "e": "texas"}


@pytest.mark.parametrize("version_2", [False, True])
def test_question_scores_average_to_the_official_metrics(version_2):
    examples = EXAMPLES if version_2 else EXAMPLES[:3]
    predictions = {e.id: PREDICTIONS[e.id] for e in examples}
    scores = gate.question_scores(examples, predictions, version_2)
    dataset = metrics.examples_to_dataset(examples)
    if version_2:
        expected = official.evaluate_v2(dataset, predictions)
        expected_em = expected["exact"]
    else:
        expected = official.evaluate_v1(dataset, predictions)
        expected_em = expected["exact_match"]
    assert scores.mean("exact_match") == pytest.approx(expected_em)
    assert scores.mean("f1") == pytest.approx(expected["f1"])
    assert scores.exact_match.tolist()[:2] == [0.0, 0.0]  # "in houston" is not "houston"


def test_the_paired_bootstrap_separates_a_shift_from_noise():
    rng = np.random.default_rng(1)
    baseline = rng.choice([0.0, 100.0], size=400)
    same = gate.paired_bootstrap(baseline, baseline, 0.95)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    # 40 of 400 questions lost: -10 points, an interval well below 0.
    worse = baseline.copy()
    worse[np.flatnonzero(baseline == 100.0)[:40]] = 0.0
    shifted = gate.paired_bootstrap(worse, baseline, 0.95)
    assert shifted.mean == pytest.approx(-10.0)
    assert -15.0 < shifted.low and shifted.high < -5.0
    # 6 lost and 4 gained: -0.5 points, an interval across 0.
    noisy = baseline.copy()
    noisy[np.flatnonzero(baseline == 100.0)[:6]] = 0.0
    noisy[np.flatnonzero(baseline == 0.0)[:4]] = 100.0
    noise = gate.paired_bootstrap(noisy, baseline, 0.95)
    assert noise.low < 0.0 < noise.high
    # A higher confidence gives a wider interval; the same seed the same one.
    wide = gate.paired_bootstrap(noisy, baseline, 0.99)
    assert wide.low < noise.low and wide.high > noise.high
    assert gate.paired_bootstrap(noisy, baseline, 0.95) == noise


def test_the_paired_bootstrap_needs_the_same_questions():
    with pytest.raises(ValueError, match="same questions"):
        gate.paired_bootstrap(np.zeros(3), np.zeros(4), 0.95)


def _scores(em: list[float]) -> gate.QuestionScores:
    return gate.QuestionScores(np.array(em), np.array(em))


@pytest.mark.parametrize(
    ("max_regression", "passed", "verdict"),
    [
        (0.0, False, "significant regression of more than max_regression 0.00"),
        (50.0, True, "within max_regression 50.00"),
    ],
)
def test_a_significant_regression_counts_only_beyond_max_regression(
        max_regression, passed, verdict):
    baseline = _scores([100.0] * 60)
    candidate = _scores([100.0] * 30 + [0.0] * 30)  # -50 points, significant
    checks, differences = gate.regression_checks(
        candidate, baseline, gate.GateConfig(max_regression=max_regression))
    assert [c.passed for c in checks] == [passed, passed]
    assert differences["f1"].mean == -50.0
    assert checks[1].detail.startswith("shipped F1 vs the baseline's shipped file: -50.00 "
                                       "points (95% CI")
    assert checks[1].detail.endswith(verdict)


def test_the_quantization_drop_is_allowed_up_to_its_limit():
    config = gate.GateConfig(max_quantization_drop=1.0)
    assert gate.quantization_check("tflite_dynamic", 79.0, 80.0, config).passed
    failed = gate.quantization_check("tflite_dynamic", 78.99, 80.0, config)
    assert not failed.passed
    assert failed.detail == ("shipped tflite_dynamic F1 78.99 vs its SavedModel 80.00: drop "
                             "1.01 > max_quantization_drop 1.00")


def test_thresholds_apply_to_every_model_and_say_when_no_gate_is_applied():
    results = {"saved_model": {"exact_match": 50.0, "f1": 60.0},
               "tflite_int8": {"exact_match": 10.0, "f1": 60.0}}
    checks = gate.threshold_checks(results, False, gate.GateConfig(min_exact_match=50.0,
                                                                    min_f1=60.0))
    assert [c.passed for c in checks] == [True, True, False, True]
    assert checks[2].detail == "tflite_int8 EM 10.00 < min 50.00"
    (unset,) = gate.threshold_checks(results, False, gate.GateConfig())
    assert unset.passed and unset.detail.startswith(gate.NO_GATE)
    (with_baseline,) = gate.threshold_checks(results, True, gate.GateConfig())
    assert gate.NO_GATE not in with_baseline.detail


def test_the_task_library_requirement_can_be_turned_off():
    incompatible = {"compatible": False, "problems": ["input shapes [[1, 128]]"]}
    required = gate.task_library_check("tflite_dynamic", incompatible, gate.GateConfig())
    assert not required.passed and "input shapes [[1, 128]]" in required.detail
    optional = gate.task_library_check("tflite_dynamic", incompatible,
                                       gate.GateConfig(require_task_library=False))
    assert optional.passed and "not required" in optional.detail


@pytest.mark.parametrize("settings", [{"regression_confidence": 1.0},
                                      {"max_quantization_drop": -1.0},
                                      {"min_task_library_f1": 101.0}])
def test_bad_gate_settings_are_refused(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        gate.GateConfig(**settings).validate()
