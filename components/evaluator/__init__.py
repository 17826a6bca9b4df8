"""QaEvaluator: SQuAD EM/F1 of the SavedModel and its TFLite exports, and blessing."""
