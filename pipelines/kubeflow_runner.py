"""Compiles the pipeline for Kubeflow Pipelines (KubeflowDagRunner: an Argo workflow package).

    tfx pipeline create --engine kubeflow --pipeline_path pipelines/kubeflow_runner.py \
        --endpoint <KFP endpoint>

or `mbqa compile --target kubeflow --out pipeline.tar.gz`. Settings come from
`MBQA_<SETTING>` environment variables (see `pipelines.config`); `MBQA_IMAGE` is the image.
"""

from __future__ import annotations

import os

from absl import logging
from tfx import v1 as tfx

from pipelines.config import PipelineConfig
from pipelines.pipeline import create_pipeline


def compile_kubeflow(config: PipelineConfig, output_path: str) -> str:
    """Writes the Argo workflow package (.tar.gz or .yaml) to `output_path`; returns it."""
    pipeline = create_pipeline(config, target="kubeflow")
    runner_config = tfx.orchestration.experimental.KubeflowDagRunnerConfig(
        kubeflow_metadata_config=(
            tfx.orchestration.experimental.get_default_kubeflow_metadata_config()
        ),
        tfx_image=config.image,
    )
    output_dir, output_filename = os.path.split(os.path.abspath(output_path))
    tfx.orchestration.experimental.KubeflowDagRunner(
        config=runner_config, output_dir=output_dir, output_filename=output_filename
    ).run(pipeline)
    return output_path


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    _config = PipelineConfig.from_env()
    compile_kubeflow(_config, f"{_config.pipeline_name}.tar.gz")
