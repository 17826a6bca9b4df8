"""Runs the pipeline locally on the Beam DirectRunner, ML Metadata in SQLite.

The TFX CLI way (settings from `MBQA_<SETTING>` environment variables, see
`pipelines.config`), from any directory:

    tfx pipeline create --engine local --pipeline_path "$(mbqa runner-path local)"
    tfx run create --engine local --pipeline_name mobilebert-qa

or `mbqa run --set data_root=... --set spec.uri=...`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

if not __package__:  # Run by path (the TFX CLI, `python .../local_runner.py`): this checkout.
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging
from tfx import v1 as tfx

from pipelines.config import PipelineConfig
from pipelines.pipeline import create_pipeline


def run_local(config: PipelineConfig) -> None:
    """Builds the pipeline (checking `config`) and runs it with the configured local runner."""
    logging.set_verbosity(logging.INFO)
    pipeline = create_pipeline(config, target="local")
    if config.local_orchestrator == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        runner = BeamDagRunner()
    else:
        runner = tfx.orchestration.LocalDagRunner()
    logging.info("Running pipeline %r (%s runner); artifacts under %s, ML Metadata in %s",
                 config.pipeline_name, config.local_orchestrator, config.pipeline_root,
                 config.resolved_metadata_path())
    runner.run(pipeline)


@contextlib.contextmanager
def private_temp_dir() -> Iterator[str]:
    """Points `tempfile` and TMPDIR (Beam's worker processes) at a new directory, removed at
    the end: TFX builds a package of itself per Beam component there, and executors leave files.
    It wraps a whole command: `mbqa run`/`demo`, or this file run by the TFX CLI."""
    directory = tempfile.mkdtemp(prefix="mbqa-run-")
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = directory
    try:
        yield directory
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    with private_temp_dir():
        run_local(PipelineConfig.from_env())
