"""A drop-in for TFLite Model Maker's question answering, on this package's code.

Replace `tflite_model_maker` with `mbqa_model_maker` in the imports of Model Maker code:

    from mbqa_model_maker import model_spec, question_answer
    from mbqa_model_maker.config import ExportFormat, QuantizationConfig
    from mbqa_model_maker.question_answer import DataLoader

`question_answer` documents how the same job moves to the TFX pipeline.
"""
