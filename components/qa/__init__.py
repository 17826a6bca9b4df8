"""The question-answering core: spec, windows, model, metrics, TFLite. No TFX imports."""
