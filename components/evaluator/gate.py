"""The QaEvaluator's gate: the checks a candidate must pass, each reported with its figures.

All figures are SQuAD points (0-100) of the official metrics. The checks:
- thresholds: the SavedModel and every TFLite file reach `min_exact_match` and `min_f1`;
- quantization: the shipped file (the first quantization) loses at most
  `max_quantization_drop` F1 points against its own SavedModel;
- regression: the shipped file against the baseline's shipped file on the same questions,
  EM and F1 each: the candidate fails when it is worse by more than `max_regression`
  points AND the difference is significant (a paired bootstrap over the questions: the
  `regression_confidence` interval of candidate − baseline lies below 0);
- Task Library: with `require_task_library`, the shipped file loads in the TFLite Task
  Library's `BertQuestionAnswerer` (see `components.qa.task_library`);
- Task Library F1: with `min_task_library_f1` > 0, the shipped file's F1 as the Task
  Library answers (its first window only, as on the device) reaches it.
A first model (no baseline) with `min_exact_match` = `min_f1` = 0 passes with the reason
"no accuracy gate applied", stated as such in the blessing and the model card.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # GateConfig is read with the pipeline's settings, before TensorFlow.
    from components.qa.squad import SquadExample

BOOTSTRAP_RESAMPLES = 2000
_RESAMPLES_PER_CHUNK = 200  # Bounds the memory of the resampled indices.
NO_GATE = "no accuracy gate applied"


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """The blessing's settings (the QaEvaluator's execution properties)."""

    min_exact_match: float = 0.0
    min_f1: float = 0.0
    max_regression: float = 0.0
    regression_confidence: float = 0.95
    max_quantization_drop: float = 1.0
    require_task_library: bool = True
    min_task_library_f1: float = 0.0

    def errors(self) -> list[str]:
        """What is wrong with these settings, each naming its setting (empty: nothing)."""
        errors = [f"{name}={getattr(self, name)} must be in [0, 100] (SQuAD points)"
                  for name in ("min_exact_match", "min_f1", "max_regression",
                               "max_quantization_drop", "min_task_library_f1")
                  if not 0.0 <= getattr(self, name) <= 100.0]
        if not 0.0 < self.regression_confidence < 1.0:
            errors.append(f"regression_confidence={self.regression_confidence} must be in "
                          "(0, 1), e.g. 0.95")
        return errors

    def validate(self) -> None:
        if self.errors():
            raise ValueError("Invalid evaluator settings: " + "; ".join(self.errors()))


@dataclasses.dataclass(frozen=True)
class QuestionScores:
    """Each question's official EM and F1 (0-100), in question order."""

    exact_match: np.ndarray
    f1: np.ndarray

    def mean(self, key: str) -> float:
        return float(np.mean(getattr(self, key)))


def question_scores(
    examples: Sequence[SquadExample], predictions: Mapping[str, str], version_2: bool
) -> QuestionScores:
    """Per-question EM/F1 as the official scripts define them (max over gold answers).

    Their means are the official headline EM/F1 of `predictions` (v2.0: unanswerable
    questions have the gold answer '').
    """
    from components.qa import metrics  # imports TensorFlow (through components.qa.squad)

    f1_of = metrics.f1_v2 if version_2 else metrics.f1_v1
    em, f1 = [], []
    for example in examples:
        golds = example.answer_texts or ("",)
        prediction = predictions.get(example.id, "")
        em.append(100.0 * max(metrics.exact_match(prediction, g) for g in golds))
        f1.append(100.0 * max(f1_of(prediction, g) for g in golds))
    return QuestionScores(np.array(em), np.array(f1))


@dataclasses.dataclass(frozen=True)
class Difference:
    """Candidate − baseline (points) with its bootstrap interval."""

    mean: float
    low: float
    high: float
    confidence: float

    def describe(self) -> str:
        return (f"{self.mean:+.2f} points ({100 * self.confidence:.0f}% CI "
                f"{self.low:+.2f} to {self.high:+.2f})")


def paired_bootstrap(
    candidate: np.ndarray, baseline: np.ndarray, confidence: float,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
) -> Difference:
    """The mean paired difference and its percentile interval over resampled questions."""
    if candidate.shape != baseline.shape or not candidate.size:
        raise ValueError(f"Paired scores need the same questions: {candidate.shape} vs "
                         f"{baseline.shape}")
    differences = candidate - baseline
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, resamples, _RESAMPLES_PER_CHUNK):
        size = min(_RESAMPLES_PER_CHUNK, resamples - start)
        rows = rng.integers(0, differences.size, size=(size, differences.size))
        means.append(differences[rows].mean(axis=1))
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(np.concatenate(means), [tail, 100.0 - tail])
    return Difference(float(differences.mean()), float(low), float(high), confidence)


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of the gate: its name, whether it passed, and its figures in words."""

    name: str
    passed: bool
    detail: str


def threshold_checks(results: Mapping[str, Mapping[str, float]], has_baseline: bool,
                     config: GateConfig) -> list[Check]:
    """min_exact_match/min_f1 on every model; or the plain 'no accuracy gate' when unset."""
    if not config.min_exact_match and not config.min_f1:
        detail = ("min_exact_match and min_f1 are 0" if has_baseline else
                  f"{NO_GATE}: no baseline model and min_exact_match = min_f1 = 0; set them "
                  "to gate the first model")
        return [Check("thresholds", True, detail)]
    checks = []
    for name, result in results.items():
        for key, label, minimum in (("exact_match", "EM", config.min_exact_match),
                                    ("f1", "F1", config.min_f1)):
            passed = result[key] >= minimum
            checks.append(Check("thresholds", passed, f"{name} {label} {result[key]:.2f} "
                                f"{'>=' if passed else '<'} min {minimum:.2f}"))
    return checks


def quantization_check(shipped: str, shipped_f1: float, saved_model_f1: float,
                       config: GateConfig) -> Check:
    drop = saved_model_f1 - shipped_f1
    passed = drop <= config.max_quantization_drop
    return Check("quantization", passed,
                 f"shipped {shipped} F1 {shipped_f1:.2f} vs its SavedModel "
                 f"{saved_model_f1:.2f}: drop {drop:.2f} {'<=' if passed else '>'} "
                 f"max_quantization_drop {config.max_quantization_drop:.2f}")


def regression_checks(candidate: QuestionScores, baseline: QuestionScores,
                      config: GateConfig) -> tuple[list[Check], dict[str, Difference]]:
    """EM and F1 of the shipped file against the baseline's shipped file, paired."""
    checks, differences = [], {}
    for key, label in (("exact_match", "EM"), ("f1", "F1")):
        difference = paired_bootstrap(getattr(candidate, key), getattr(baseline, key),
                                      config.regression_confidence)
        differences[key] = difference
        worse = -difference.mean > config.max_regression
        significant = difference.high < 0.0
        passed = not (worse and significant)
        if passed:
            verdict = ("no significant regression" if not significant else
                       f"within max_regression {config.max_regression:.2f}")
        else:
            verdict = (f"significant regression of more than max_regression "
                       f"{config.max_regression:.2f}")
        checks.append(Check("regression", passed, f"shipped {label} vs the baseline's "
                            f"shipped file: {difference.describe()}: {verdict}"))
    return checks, differences


def task_library_check(shipped: str, compatibility: Mapping, config: GateConfig) -> Check:
    status = ("loads in the Task Library's BertQuestionAnswerer" if compatibility["compatible"]
              else "is not Task Library compatible: " + "; ".join(compatibility["problems"]))
    if not config.require_task_library:
        return Check("task_library", True, f"shipped {shipped} {status} "
                     "(not required: require_task_library is false)")
    return Check("task_library", bool(compatibility["compatible"]), f"shipped {shipped} {status}")


def task_library_f1_check(shipped: str, device: Mapping, config: GateConfig) -> Check | None:
    """`min_task_library_f1` on the shipped file's Task Library F1 (None when it is 0).

    `device`: metrics.json's `task_library` (`f1` is None when the file could not be
    answered in the Task Library: the check fails then)."""
    if not config.min_task_library_f1:
        return None
    f1 = device.get("f1")
    if f1 is None:
        return Check("task_library_f1", False, f"shipped {shipped} has no Task Library F1 (it "
                     f"does not answer in the Task Library) < min_task_library_f1 "
                     f"{config.min_task_library_f1:.2f}")
    passed = f1 >= config.min_task_library_f1
    return Check("task_library_f1", passed,
                 f"shipped {shipped} Task Library F1 {f1:.2f} {'>=' if passed else '<'} "
                 f"min_task_library_f1 {config.min_task_library_f1:.2f} (windowed F1 "
                 f"{device['windowed_f1']:.2f})")


def bless(checks: Sequence[Check]) -> tuple[bool, list[str]]:
    """(blessed, reasons): blessed when every check passed; one reason per check."""
    return all(c.passed for c in checks), [c.detail for c in checks]
