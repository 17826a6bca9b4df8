"""Model Maker's `config`: export formats and TFLite quantization."""

from __future__ import annotations

import enum
from typing import Any

import tensorflow as tf

DEFAULT_QUANTIZATION_STEPS = 2000


@enum.unique
class ExportFormat(enum.Enum):
    TFLITE = "TFLITE"
    SAVED_MODEL = "SAVED_MODEL"
    LABEL = "LABEL"
    VOCAB = "VOCAB"
    TFJS = "TFJS"


class QuantizationConfig:
    """Model Maker's post-training quantization settings.

    They map to the exporter's named quantizations (`components.qa.contracts.QUANTIZATIONS`):
    `representative_data` → 'int8' (full integer, calibrated on up to `quantization_steps`
    of its windows), `supported_types=[tf.float16]` → 'float16', otherwise 'dynamic'.
    The model's inputs stay int32 token ids and its outputs float32 logits, as the Task
    Library needs, whatever the inference types.
    """

    def __init__(
        self,
        optimizations: Any = None,
        representative_data: Any = None,
        quantization_steps: int | None = None,
        inference_input_type: Any = None,
        inference_output_type: Any = None,
        supported_ops: Any = None,
        supported_types: Any = None,
        experimental_new_quantizer: bool | None = None,
    ):
        if optimizations is None:
            optimizations = [tf.lite.Optimize.DEFAULT]
        self.optimizations = optimizations if isinstance(optimizations, list) else [optimizations]
        self.representative_data = representative_data
        if representative_data is not None and quantization_steps is None:
            quantization_steps = DEFAULT_QUANTIZATION_STEPS
        self.quantization_steps = quantization_steps
        self.inference_input_type = inference_input_type
        self.inference_output_type = inference_output_type
        self.supported_ops = _as_list(supported_ops)
        self.supported_types = _as_list(supported_types)
        self.experimental_new_quantizer = experimental_new_quantizer

    @classmethod
    def for_dynamic(cls) -> QuantizationConfig:
        return QuantizationConfig()

    @classmethod
    def for_int8(
        cls,
        representative_data: Any,
        quantization_steps: int = DEFAULT_QUANTIZATION_STEPS,
        inference_input_type: Any = tf.uint8,
        inference_output_type: Any = tf.uint8,
        supported_ops: Any = tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    ) -> QuantizationConfig:
        return QuantizationConfig(
            representative_data=representative_data, quantization_steps=quantization_steps,
            inference_input_type=inference_input_type,
            inference_output_type=inference_output_type, supported_ops=supported_ops,
        )

    @classmethod
    def for_float16(cls) -> QuantizationConfig:
        return QuantizationConfig(supported_types=[tf.float16])

    @property
    def quantization(self) -> str:
        """The exporter's name for these settings: 'int8', 'float16' or 'dynamic'."""
        if not self.optimizations:
            return "float32"
        if self.representative_data is not None:
            return "int8"
        if tf.float16 in (self.supported_types or []):
            return "float16"
        return "dynamic"


def _as_list(value: Any) -> list | None:
    if value is None or isinstance(value, list):
        return value
    return [value]
