"""Which data a model learns from, and no training without new data.

The Trainer records in `assets.extra/training.json` (`training_data`) what it trained on:
SquadExampleGen's `data_fingerprint` and `spans` and the windows' QA statistics (all in
SquadTransform's `window_stats.json`). Before training, `check_new_data`
compares that with the record of the base model (the last blessed one): the same data and
the same spec mean a scheduled run has nothing new to learn, and the Trainer stops with
`NoNewTrainingDataError` unless `force_retrain` is set. TensorFlow is imported only when
asked (`mbqa run` reads `is_no_new_data` before any pipeline is built).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from absl import logging

from components.qa import contracts

if TYPE_CHECKING:
    from tfx import types

# The error's first words, which `mbqa run` looks for to give its own exit status.
STOP_MESSAGE = "No new training data"


class NoNewTrainingDataError(RuntimeError):
    """The Trainer refused to train: the base model was trained on the same data and spec."""


def is_no_new_data(error: BaseException) -> bool:
    """Whether `error` (or the output lines it carries, `tail`) is this stop."""
    texts = [str(error), *getattr(error, "tail", [])]
    return isinstance(error, NoNewTrainingDataError) or any(STOP_MESSAGE in t for t in texts)


def describe(windows: types.Artifact) -> dict[str, Any]:
    """What the Trainer's windows were made from (SquadTransform's `window_stats.json`)."""
    stats = contracts.read_artifact_json(
        os.path.join(windows.uri, contracts.WINDOW_STATS_FILE)) or {}
    source = stats.get("source") or {}
    return {
        contracts.DATA_FINGERPRINT_PROPERTY: source.get(contracts.DATA_FINGERPRINT_PROPERTY),
        contracts.SPANS_PROPERTY: source.get(contracts.SPANS_PROPERTY),
        "qa_statistics": stats.get("qa_statistics"),
    }


def check_new_data(training_data: dict[str, Any], spec_json: str,
                   base_model: types.Artifact | None, force_retrain: bool) -> None:
    """Raises `NoNewTrainingDataError` when `base_model` was trained on the same data (same
    fingerprint) with the same spec, unless `force_retrain`."""
    fingerprint = training_data.get(contracts.DATA_FINGERPRINT_PROPERTY)
    record = contracts.read_training_record(base_model) if base_model is not None else None
    if not fingerprint or not record:
        return
    trained_on = (record.get("training_data") or {}).get(contracts.DATA_FINGERPRINT_PROPERTY)
    if trained_on != fingerprint or record.get("spec") != json.loads(spec_json):
        logging.info("New training data or settings since the base model %s: training",
                     base_model.uri)
        return
    spans = training_data.get(contracts.SPANS_PROPERTY)
    if force_retrain:
        logging.info("The base model %s was trained on the same data (spans %s); training "
                     "anyway (force_retrain)", base_model.uri, spans)
        return
    raise NoNewTrainingDataError(
        f"{STOP_MESSAGE}: the questions (spans {spans}, fingerprint {fingerprint[:12]}) and "
        f"the spec are those the last blessed model {base_model.uri} was trained on. Nothing "
        "was trained or pushed. Add a new span, or set force_retrain to train again.")
