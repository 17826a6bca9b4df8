"""The pusher tests use the evaluator tests' keyword model and artifacts."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "evaluator"))
