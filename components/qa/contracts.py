"""What the components, the pipeline settings and the commands must agree on, in one
TensorFlow-free place (the settings are checked before TensorFlow is imported): the TFLite
quantizations, the Keras mixed precision policies, the model's tensor names, the serving
settings a TFLite file carries, and the files each component writes into its output
artifacts.

- The Trainer's SavedModel: signature `SERVING_SIGNATURE`, int32 `[batch, seq_len]`
  inputs `SERVING_INPUTS`, float32 `[batch, seq_len]` outputs `SERVING_OUTPUTS`.
- A TFLite file's tensors in its metadata: `TFLITE_METADATA_NAMES` (the Task Library's
  names); its description's last line holds the `ServingConfig` it was evaluated with.

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

import dataclasses
import json
import os
from typing import Any

# TFLite quantizations of `components.qa.tflite.export_tflite`; the first one a pipeline
# lists is shipped (dynamic range by default, as Model Maker).
QUANTIZATIONS = ("dynamic", "float32", "float16", "int8", "int16x8")
# The ones calibrated on a representative sample of training windows.
CALIBRATED_QUANTIZATIONS = ("int8", "int16x8")
# Keras mixed precision policies the Trainer may train under ('' trains in float32).
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")

SERVING_SIGNATURE = "serving_default"
SERVING_INPUTS = ("input_ids", "input_mask", "segment_ids")
SERVING_OUTPUTS = ("start_logits", "end_logits")
# A TFLite file's tensors in its metadata (the Task Library's names), by serving name.
TFLITE_METADATA_NAMES = {"input_ids": "ids", "input_mask": "mask",
                         "segment_ids": "segment_ids", "start_logits": "start_logits",
                         "end_logits": "end_logits"}
# The metadata description's line that holds the `ServingConfig`.
SERVING_CONFIG_PREFIX = "mbqa serving config: "

# SquadExampleGen's Examples' custom properties (copied into SquadTransform's window stats,
# recorded by the Trainer): which spans each input split read, with their questions (JSON
# {split: {span: questions}}), and a fingerprint of the files' contents.
SPANS_PROPERTY = "spans"
DATA_FINGERPRINT_PROPERTY = "data_fingerprint"

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


def read_artifact_json(path: str) -> Any | None:
    """A JSON file of an artifact (local or gs://), or None when there is none."""
    import tensorflow as tf  # Only when asked: the settings import this module.

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def read_training_record(model) -> dict[str, Any] | None:
    """A Trainer's Model's `TRAINING_RECORD`, or None (older models, other trainers)."""
    return read_artifact_json(os.path.join(serving_dir(model), TRAINING_RECORD))


def spans_read(examples) -> dict[str, dict[str, int]] | None:
    """SquadExampleGen's `SPANS_PROPERTY` of an Examples artifact, or None without spans."""
    spans = examples.get_string_custom_property(SPANS_PROPERTY)
    return json.loads(spans) if spans else None


def serving_dir(model) -> str:
    """The SavedModel directory of a Trainer's Model artifact (TFX's `Format-Serving`)."""
    from tfx.utils import path_utils  # TFX only when asked: the settings import this module.

    return path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How a model answers as it was evaluated: its windows and the SQuAD 2.0 threshold.

    The evaluator writes it into each TFLite file's metadata, `metrics.json` and the model
    card; the Pusher's manifest copies it; `mbqa predict`/`answer` answer with it.
    """

    seq_len: int
    query_len: int
    doc_stride: int
    do_lower_case: bool
    version_2_with_negative: bool
    null_score_diff_threshold: float

    @classmethod
    def from_spec(cls, spec: Any, version_2_with_negative: bool,
                  null_score_diff_threshold: float) -> ServingConfig:
        """The window settings of a spec (`components.qa.spec.BertQaSpec`) and the rest."""
        return cls(spec.seq_len, spec.query_len, spec.doc_stride, spec.do_lower_case,
                   bool(version_2_with_negative), float(null_score_diff_threshold))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ServingConfig:
        """From `to_dict()`'s form; a missing or unknown key raises ValueError naming it."""
        names = {field.name for field in dataclasses.fields(cls)}
        if set(values) != names:
            raise ValueError(f"A serving config needs the keys {sorted(names)}; it has "
                             f"{sorted(values)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def description_line(self) -> str:
        """The metadata description's line: `SERVING_CONFIG_PREFIX` and the JSON."""
        return SERVING_CONFIG_PREFIX + json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_description(cls, description: str) -> ServingConfig | None:
        """The config on a metadata description's `SERVING_CONFIG_PREFIX` line, or None."""
        for line in description.splitlines():
            if line.startswith(SERVING_CONFIG_PREFIX):
                return cls.from_dict(json.loads(line[len(SERVING_CONFIG_PREFIX):]))
        return None
