"""The question-answering core: spec, tokenization, windows, model, metrics, TFLite. No TFX imports."""
