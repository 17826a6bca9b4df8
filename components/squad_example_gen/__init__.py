"""SquadExampleGen: SQuAD v1.1/v2.0 JSON to tf.Examples, one per question."""
