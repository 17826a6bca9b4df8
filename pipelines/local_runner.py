"""Runs the pipeline locally on the Beam DirectRunner, ML Metadata in SQLite.

The TFX CLI way (settings from `MBQA_<SETTING>` environment variables, see
`pipelines.config`):

    tfx pipeline create --engine local --pipeline_path pipelines/local_runner.py
    tfx run create --engine local --pipeline_name mobilebert-qa

or `mbqa run --set data_root=... --set spec.uri=...`.
"""

from __future__ import annotations

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


if __name__ == "__main__":
    run_local(PipelineConfig.from_env())
