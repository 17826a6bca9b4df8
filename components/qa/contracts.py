"""What the components, the pipeline settings and the commands must agree on, in one
TensorFlow-free place (the settings are checked before TensorFlow is imported): the TFLite
quantizations, the Keras mixed precision policies, and the files each component writes
into its output artifacts.

- SquadExampleGen's Examples: `INVALID_RECORDS_FILE` (records skipped or refused).
- SquadTransform's windows: `WINDOW_STATS_FILE` (counts per split) and one
  `SKIPPED_QUESTIONS_PREFIX<split>.jsonl` per split (questions without a window).
- The Trainer's Model: the SavedModel in `serving_dir(model)`, `TRAINING_RECORD` under it.
- QaEvaluator's ModelEvaluation: `METRICS_FILE`, `PREDICTIONS_FILE`, `REPORT_FILE`, the
  model card (`MODEL_CARD_JSON_FILE`, `MODEL_CARD_MARKDOWN_FILE`), each TFLite file at
  `tflite_relative_path(quantization)` and the baseline's under `BASELINE_DIR`.
- TFLitePusher's version directory: `TFLITE_FILE`, `VOCAB_FILE`, `MANIFEST_FILE` and the
  evaluation's files above. `VOCAB_FILE` is also the vocab's name in a SavedModel's assets
  and in a .tflite file's metadata.
"""

from __future__ import annotations

# TFLite quantizations of `components.qa.tflite.export_tflite`; the first one a pipeline
# lists is shipped (dynamic range by default, as Model Maker).
QUANTIZATIONS = ("dynamic", "float32", "float16", "int8", "int16x8")
# The ones calibrated on a representative sample of training windows.
CALIBRATED_QUANTIZATIONS = ("int8", "int16x8")
# Keras mixed precision policies the Trainer may train under ('' trains in float32).
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")

INVALID_RECORDS_FILE = "invalid_records.json"
WINDOW_STATS_FILE = "window_stats.json"
SKIPPED_QUESTIONS_PREFIX = "skipped-"
TRAINING_RECORD = "assets.extra/training.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.json"
REPORT_FILE = "report.html"
MODEL_CARD_JSON_FILE = "model_card.json"
MODEL_CARD_MARKDOWN_FILE = "model_card.md"
TFLITE_DIR = "tflite"
TFLITE_FILE = "model.tflite"
BASELINE_DIR = "baseline"
VOCAB_FILE = "vocab.txt"
MANIFEST_FILE = "manifest.json"


def tflite_relative_path(quantization: str) -> str:
    """Where the evaluation keeps the TFLite file of a quantization."""
    return f"{TFLITE_DIR}/{quantization}/{TFLITE_FILE}"


def serving_dir(model) -> str:
    """The SavedModel directory of a Trainer's Model artifact (TFX's `Format-Serving`)."""
    from tfx.utils import path_utils  # TFX only when asked: the settings import this module.

    return path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
