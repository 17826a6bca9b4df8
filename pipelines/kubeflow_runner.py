"""Compiles the pipeline for Kubeflow Pipelines (KubeflowDagRunner: an Argo workflow package).

    tfx pipeline create --engine kubeflow --pipeline_path "$(mbqa runner-path kubeflow)" \
        --endpoint <KFP endpoint>

or `mbqa compile --target kubeflow --out pipeline.tar.gz`. Settings come from
`MBQA_<SETTING>` environment variables (see `pipelines.config`); `MBQA_IMAGE` is the image.
The Trainer step requests the GPUs or TPU chips of its spec's distribution strategy.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

if not __package__:  # Run by path (the TFX CLI, `python .../kubeflow_runner.py`): this checkout.
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging
from kfp import dsl
from tfx import v1 as tfx
from tfx.orchestration.kubeflow import kubeflow_dag_runner

from pipelines.config import PipelineConfig
from pipelines.pipeline import TRAINER_ID, create_pipeline

# GKE node labels and the TPU resource of the Trainer's accelerators.
GKE_GPU_LABEL = "cloud.google.com/gke-accelerator"
GKE_TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"
GKE_TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
TPU_RESOURCE = "google.com/tpu"


def compile_kubeflow(config: PipelineConfig, output_path: str) -> str:
    """Writes the Argo workflow package (.tar.gz or .yaml) to `output_path`; returns it."""
    pipeline = create_pipeline(config, target="kubeflow")
    runner_config = tfx.orchestration.experimental.KubeflowDagRunnerConfig(
        kubeflow_metadata_config=(
            tfx.orchestration.experimental.get_default_kubeflow_metadata_config()
        ),
        tfx_image=config.image,
        pipeline_operator_funcs=(kubeflow_dag_runner.get_default_pipeline_operator_funcs()
                                 + [trainer_accelerators(config)]),
    )
    output_dir, output_filename = os.path.split(os.path.abspath(output_path))
    tfx.orchestration.experimental.KubeflowDagRunner(
        config=runner_config, output_dir=output_dir, output_filename=output_filename
    ).run(pipeline)
    return output_path


def trainer_accelerators(config: PipelineConfig) -> Callable[[dsl.ContainerOp], None]:
    """An op function giving the Trainer step the accelerators of `spec.distribution_strategy`.

    'tpu': every chip of a `kubeflow_tpu_topology` slice of `kubeflow_tpu_type`; 'off': none;
    the others: `spec.num_gpus` GPUs (-1: one, 0: none) on `kubeflow_accelerator_type` nodes.
    Other steps get none.
    """
    spec = config.build_spec()

    def apply(op: dsl.ContainerOp) -> None:
        if op.human_name != TRAINER_ID:
            return
        if spec.distribution_strategy == "tpu":
            topology = config.kubeflow_tpu_topology
            chips = math.prod(int(d) for d in topology.split("x"))
            op.container.add_resource_limit(TPU_RESOURCE, str(chips))
            op.add_node_selector_constraint(GKE_TPU_LABEL, config.kubeflow_tpu_type)
            op.add_node_selector_constraint(GKE_TPU_TOPOLOGY_LABEL, topology)
        elif spec.distribution_strategy != "off" and spec.num_gpus != 0:
            op.container.set_gpu_limit(str(max(spec.num_gpus, 1)))
            if config.kubeflow_accelerator_type:
                op.add_node_selector_constraint(GKE_GPU_LABEL, config.kubeflow_accelerator_type)

    return apply


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    _config = PipelineConfig.from_env()
    compile_kubeflow(_config, f"{_config.pipeline_name}.tar.gz")
