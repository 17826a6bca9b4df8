"""Custom TFX components for MobileBERT question answering."""
