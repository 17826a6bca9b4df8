"""Compiles the pipeline for Vertex AI Pipelines (KubeflowV2DagRunner: a PipelineJob JSON).

    tfx pipeline create --engine vertex --pipeline_path "$(mbqa runner-path vertex)"
    tfx run create --engine vertex --pipeline_name mobilebert-qa --project P --region R

or `mbqa compile --target vertex --out pipeline.json`, then `mbqa deploy submit|schedule`.
Settings come from `MBQA_<SETTING>` environment variables (see `pipelines.config`); the
data root, training steps, spec, thresholds and push destination stay RuntimeParameters
(`--parameter name=value` when submitting), defaulting to the configured values.
"""

from __future__ import annotations

import os
import sys

if not __package__:  # Run by path (the TFX CLI, `python .../vertex_runner.py`): this checkout.
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging
from tfx import v1 as tfx

from pipelines.config import PipelineConfig
from pipelines.pipeline import create_pipeline, runtime_parameter_defaults


def compile_vertex(config: PipelineConfig, output_path: str) -> str:
    """Writes the PipelineJob JSON to `output_path`; returns it."""
    pipeline = create_pipeline(config, target="vertex")
    runner_config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
        default_image=config.image
    )
    output_dir, output_filename = os.path.split(os.path.abspath(output_path))
    tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=runner_config, output_dir=output_dir, output_filename=output_filename
    ).run(pipeline, parameter_values=runtime_parameter_defaults(config))
    return output_path


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    _config = PipelineConfig.from_env()
    compile_vertex(_config, f"{_config.pipeline_name}.json")
