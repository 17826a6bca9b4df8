"""The QA model specs, with Model Maker's parameters, names, order and defaults.

A spec is the single source of every hyperparameter. It travels through the pipeline
as JSON (`to_json` / `spec_from_json`), in the components' `custom_config`.
"""

from __future__ import annotations

import json
from typing import Any

from components.qa import contracts

STRATEGIES = (
    "off",
    "one_device",
    "mirrored",
    "parameter_server",
    "multi_worker_mirrored",
    "tpu",
)

# Model Maker's defaults for the TFLite tensor names (keys are the metadata names).
DEFAULT_TFLITE_INPUT_NAME = {
    "ids": "serving_default_input_ids:0",
    "mask": "serving_default_input_mask:0",
    "segment_ids": "serving_default_segment_ids:0",
}
DEFAULT_TFLITE_OUTPUT_NAME = {
    "end_logits": "StatefulPartitionedCall:0",
    "start_logits": "StatefulPartitionedCall:1",
}

class BertQaSpec:
    """A BERT question-answering model spec (Model Maker's `BertQaSpec`).

    Args:
      uri: TF-Hub path/url (or local directory, gs://) of the BERT module.
      model_dir: where checkpoints and TensorBoard logs go (default: the run's dir).
      seq_len: length of the sequence fed to the model.
      query_len: length of the query fed to the model.
      doc_stride: stride of the sliding window over the passage.
      dropout_rate: dropout rate of the span head.
      initializer_range: stdev of the truncated-normal initializer of the span head.
      learning_rate: initial learning rate of AdamW.
      distribution_strategy: one of `STRATEGIES` (case insensitive).
      num_gpus: GPUs per worker; -1 uses all available.
      tpu: TPU address (only with the 'tpu' strategy).
      trainable: whether the encoder's weights are trained.
      predict_batch_size: batch size for prediction.
      do_lower_case: lower-case the text (True for uncased models).
      is_tf2: whether the Hub module is in the TF2 SavedModel format.
      tflite_input_name: TFLite input names, keyed 'ids', 'mask', 'segment_ids'.
      tflite_output_name: TFLite output names, keyed 'start_logits', 'end_logits'.
      init_from_squad_model: start from the module's SQuAD 1.1 fine-tuned `squad` signature.
      default_batch_size: training batch size.
      name: name of the spec.
    """

    def __init__(
        self,
        uri: str = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/1",
        model_dir: str | None = None,
        seq_len: int = 384,
        query_len: int = 64,
        doc_stride: int = 128,
        dropout_rate: float = 0.1,
        initializer_range: float = 0.02,
        learning_rate: float = 8e-05,
        distribution_strategy: str = "mirrored",
        num_gpus: int = -1,
        tpu: str = "",
        trainable: bool = True,
        predict_batch_size: int = 8,
        do_lower_case: bool = True,
        is_tf2: bool = True,
        tflite_input_name: dict[str, str] | None = None,
        tflite_output_name: dict[str, str] | None = None,
        init_from_squad_model: bool = False,
        default_batch_size: int = 16,
        name: str = "Bert",
    ):
        self.uri = uri
        self.model_dir = model_dir
        self.seq_len = seq_len
        self.query_len = query_len
        self.doc_stride = doc_stride
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.learning_rate = learning_rate
        self.distribution_strategy = (
            distribution_strategy.lower() if isinstance(distribution_strategy, str)
            else distribution_strategy
        )
        self.num_gpus = num_gpus
        self.tpu = tpu
        self.trainable = trainable
        self.predict_batch_size = predict_batch_size
        self.do_lower_case = do_lower_case
        self.is_tf2 = is_tf2
        self.tflite_input_name = _names_or_default(tflite_input_name, DEFAULT_TFLITE_INPUT_NAME)
        self.tflite_output_name = _names_or_default(
            tflite_output_name, DEFAULT_TFLITE_OUTPUT_NAME
        )
        self.init_from_squad_model = init_from_squad_model
        self.default_batch_size = default_batch_size
        self.name = name
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming each parameter that has a wrong type or cannot work."""
        errors = [
            f"{field}={getattr(self, field)!r} must be {description}"
            for field, (check, description) in _TYPE_CHECKS.items()
            if not check(getattr(self, field))
        ]
        if errors:  # The checks below need the right types.
            raise ValueError(f"Invalid {type(self).__name__}: " + "; ".join(errors))
        if not self.uri:
            errors.append("uri must name a TF-Hub module (URL, local directory or gs://)")
        if self.distribution_strategy not in STRATEGIES:
            errors.append(
                f"distribution_strategy={self.distribution_strategy!r} is not one of {STRATEGIES}"
            )
        if self.tpu and self.distribution_strategy != "tpu":
            errors.append(
                f"tpu={self.tpu!r} is set but distribution_strategy="
                f"{self.distribution_strategy!r}; use distribution_strategy='tpu'"
            )
        for field in ("seq_len", "query_len", "doc_stride", "predict_batch_size",
                      "default_batch_size"):
            if getattr(self, field) <= 0:
                errors.append(f"{field}={getattr(self, field)!r} must be a positive integer")
        if self.query_len + 3 >= self.seq_len:
            errors.append(
                f"query_len + 3 ({self.query_len + 3}) must be < seq_len ({self.seq_len}): "
                "no room is left for the passage"
            )
        if self.doc_stride >= self.seq_len:
            errors.append(f"doc_stride={self.doc_stride} must be < seq_len={self.seq_len}")
        if not 0.0 <= self.dropout_rate < 1.0:
            errors.append(f"dropout_rate={self.dropout_rate!r} must be in [0, 1)")
        if self.initializer_range <= 0:
            errors.append(f"initializer_range={self.initializer_range!r} must be > 0")
        if self.learning_rate <= 0:
            errors.append(f"learning_rate={self.learning_rate!r} must be > 0")
        if self.num_gpus < -1:
            errors.append(f"num_gpus={self.num_gpus!r} must be -1 (all) or >= 0")
        for field, names in (("tflite_input_name", contracts.SERVING_INPUTS),
                             ("tflite_output_name", contracts.SERVING_OUTPUTS)):
            keys = sorted(contracts.TFLITE_METADATA_NAMES[name] for name in names)
            if sorted(getattr(self, field)) != keys:
                errors.append(f"{field} keys {sorted(getattr(self, field))} must be {keys}")
        if errors:
            raise ValueError(f"Invalid {type(self).__name__}: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        """The spec's class and every parameter, JSON-serializable."""
        params = {k: getattr(self, k) for k in _PARAMETERS}
        return {"class": type(self).__name__, "params": params}

    def to_json(self) -> str:
        """The spec as JSON, for `custom_config` and RuntimeParameters."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **overrides: Any) -> BertQaSpec:
        """A copy with some parameters changed (validated again)."""
        params = self.to_dict()["params"]
        unknown = set(overrides) - set(params)
        if unknown:
            raise ValueError(f"Unknown spec parameter(s) {sorted(unknown)}; known: {_PARAMETERS}")
        params.update(overrides)
        return type(self)(**params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertQaSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict()["params"].items())
        return f"{type(self).__name__}({params})"


def _names_or_default(names: Any, default: dict[str, str]) -> Any:
    """A copy of the given TFLite names (checked in `validate`), or of the default."""
    if names is None:
        return dict(default)
    return dict(names) if isinstance(names, dict) else names


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_name_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


# Parameter -> (type check, what it must be), checked before the values.
_TYPE_CHECKS = {
    "uri": (lambda v: isinstance(v, str), "a string"),
    "model_dir": (lambda v: v is None or isinstance(v, str), "None or a string"),
    "seq_len": (_is_int, "an integer"),
    "query_len": (_is_int, "an integer"),
    "doc_stride": (_is_int, "an integer"),
    "dropout_rate": (_is_number, "a number"),
    "initializer_range": (_is_number, "a number"),
    "learning_rate": (_is_number, "a number"),
    "distribution_strategy": (lambda v: isinstance(v, str), "a string"),
    "num_gpus": (_is_int, "an integer"),
    "tpu": (lambda v: isinstance(v, str), "a string"),
    "trainable": (lambda v: isinstance(v, bool), "True or False"),
    "predict_batch_size": (_is_int, "an integer"),
    "do_lower_case": (lambda v: isinstance(v, bool), "True or False"),
    "is_tf2": (lambda v: isinstance(v, bool), "True or False"),
    "tflite_input_name": (_is_name_map, "a dict of strings"),
    "tflite_output_name": (_is_name_map, "a dict of strings"),
    "init_from_squad_model": (lambda v: isinstance(v, bool), "True or False"),
    "default_batch_size": (_is_int, "an integer"),
    "name": (lambda v: isinstance(v, str), "a string"),
}


_PARAMETERS = (
    "uri", "model_dir", "seq_len", "query_len", "doc_stride", "dropout_rate",
    "initializer_range", "learning_rate", "distribution_strategy", "num_gpus", "tpu",
    "trainable", "predict_batch_size", "do_lower_case", "is_tf2", "tflite_input_name",
    "tflite_output_name", "init_from_squad_model", "default_batch_size", "name",
)


class MobileBertQaSpec(BertQaSpec):
    """MobileBERT for question answering (Model Maker's `MobileBertQaSpec`)."""

    def __init__(
        self,
        *,
        uri: str = "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/1",
        model_dir: str | None = None,
        seq_len: int = 384,
        query_len: int = 64,
        doc_stride: int = 128,
        dropout_rate: float = 0.1,
        initializer_range: float = 0.02,
        learning_rate: float = 4e-05,
        distribution_strategy: str = "off",
        num_gpus: int = -1,
        tpu: str = "",
        trainable: bool = True,
        predict_batch_size: int = 8,
        do_lower_case: bool = True,
        is_tf2: bool = False,
        tflite_input_name: dict[str, str] | None = None,
        tflite_output_name: dict[str, str] | None = None,
        init_from_squad_model: bool = False,
        default_batch_size: int = 32,
        name: str = "MobileBert",
    ):
        super().__init__(
            uri, model_dir, seq_len, query_len, doc_stride, dropout_rate, initializer_range,
            learning_rate, distribution_strategy, num_gpus, tpu, trainable, predict_batch_size,
            do_lower_case, is_tf2, tflite_input_name, tflite_output_name, init_from_squad_model,
            default_batch_size, name,
        )


class MobileBertQaSquadSpec(BertQaSpec):
    """MobileBERT already fine-tuned on SQuAD 1.1 (Model Maker's `MobileBertQaSquadSpec`)."""

    def __init__(
        self,
        *,
        uri: str = (
            "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/squadv1/1"
        ),
        model_dir: str | None = None,
        seq_len: int = 384,
        query_len: int = 64,
        doc_stride: int = 128,
        dropout_rate: float = 0.1,
        initializer_range: float = 0.02,
        learning_rate: float = 4e-05,
        distribution_strategy: str = "off",
        num_gpus: int = -1,
        tpu: str = "",
        trainable: bool = True,
        predict_batch_size: int = 8,
        do_lower_case: bool = True,
        is_tf2: bool = False,
        tflite_input_name: dict[str, str] | None = None,
        tflite_output_name: dict[str, str] | None = None,
        init_from_squad_model: bool = True,
        default_batch_size: int = 32,
        name: str = "MobileBert",
    ):
        super().__init__(
            uri, model_dir, seq_len, query_len, doc_stride, dropout_rate, initializer_range,
            learning_rate, distribution_strategy, num_gpus, tpu, trainable, predict_batch_size,
            do_lower_case, is_tf2, tflite_input_name, tflite_output_name, init_from_squad_model,
            default_batch_size, name,
        )


SPECS = {cls.__name__: cls for cls in (BertQaSpec, MobileBertQaSpec, MobileBertQaSquadSpec)}


def spec_from_dict(data: dict[str, Any]) -> BertQaSpec:
    """Rebuilds a spec from `to_dict()` output; raises ValueError naming what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise ValueError(
            f"A spec must be a dict {{'class': ..., 'params': {{...}}}}, got {data!r}"
        )
    cls_name = data.get("class")
    if cls_name not in SPECS:
        raise ValueError(f"Unknown spec class {cls_name!r}; known: {sorted(SPECS)}")
    unknown = set(data["params"]) - set(_PARAMETERS)
    if unknown:
        raise ValueError(f"Unknown spec parameter(s) {sorted(unknown)}; known: {_PARAMETERS}")
    return SPECS[cls_name](**data["params"])


def spec_from_json(text: str) -> BertQaSpec:
    """Rebuilds a spec from `to_json()` output."""
    return spec_from_dict(json.loads(text))
