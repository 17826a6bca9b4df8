"""Runs `fixtures.trainer_pipeline` on TFX's LocalDagRunner in its own process (to kill it).

Usage: python pipeline_process.py '<json>' with `root`, `spec` (spec JSON), `window_files`
(`{"train": glob, "eval": glob}`), `train_steps` and `custom_config`.
"""

import json
import pathlib
import sys

from absl import logging


def main(argv: list[str]) -> int:
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    args = json.loads(argv[1])
    from tfx import v1 as tfx

    from components.qa import spec as spec_lib
    from tests.trainer import fixtures

    pipeline = fixtures.trainer_pipeline(
        pathlib.Path(args["root"]), spec_lib.spec_from_json(args["spec"]), args["window_files"],
        train_steps=args["train_steps"], custom_config=args["custom_config"],
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    logging.info("pipeline_process: the pipeline ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
