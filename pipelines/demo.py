"""`mbqa demo`: the whole pipeline on the embedded default, from nothing but the package.

Writes synthetic SQuAD data (`components.qa.synth`) as span 1 of `<out>/data/span-{SPAN}`
and a tiny random MobileBERT encoder in the TF1 Hub format of the default spec
(`components.qa.encoders.make_encoder`), runs every
component locally (LocalDagRunner), then prints the evaluation, the pushed `.tflite` file
and one question answered by it. Data added as `<out>/data/span-2/{train,eval}/*.json`
is picked up by the next `mbqa demo --out <out>`: it warm-starts from the last blessed
model and pushes only if the new model is at least as good.
"""

from __future__ import annotations

import glob
import os

from pipelines.config import PipelineConfig

# Small settings that learn the synthetic task on 2 CPU cores within minutes, with the
# windows of the TFLite Task Library (384 tokens, 64 of query): the pushed file answers there.
DEMO_SPEC = {
    "seq_len": 384,
    "query_len": 64,
    "doc_stride": 128,
    "learning_rate": 1e-3,
    "default_batch_size": 32,
    "predict_batch_size": 32,
    "distribution_strategy": "off",
}
DEMO_TRAIN_STEPS = 800
DEMO_QUESTIONS = 2000
# 8-14 facts: passages of 56-98 tokens, one window each, trimmed to 128 tokens in training.
DEMO_FACTS_PER_PASSAGE = (8, 14)
# The demo's gate: its model must clearly have learned the synthetic task.
DEMO_MIN_F1 = 50.0
SPAN_DIR = "span-{SPAN}"


def demo_config(out_dir: str, train_steps: int = DEMO_TRAIN_STEPS) -> PipelineConfig:
    """The demo's settings: everything under `out_dir`, data in spans."""
    out_dir = os.path.abspath(out_dir)
    return PipelineConfig(
        pipeline_name="mobilebert-qa-demo",
        pipeline_root=os.path.join(out_dir, "pipeline"),
        data_root=os.path.join(out_dir, "data"),
        train_pattern=f"{SPAN_DIR}/train/*.json",
        eval_pattern=f"{SPAN_DIR}/eval/*.json",
        push_destination=os.path.join(out_dir, "serving"),
        spec={**DEMO_SPEC, "uri": os.path.join(out_dir, "encoder")},
        train_steps=train_steps,
        eval_steps=20,
        min_f1=DEMO_MIN_F1,
    )


def prepare_inputs(config: PipelineConfig, num_questions: int = DEMO_QUESTIONS) -> None:
    """Writes span 1 of synthetic data and the tiny encoder unless they are there already."""
    from components.qa import encoders, synth

    if not glob.glob(os.path.join(config.data_root, "span-*")):
        synth.make_synthetic_squad(os.path.join(config.data_root, "span-1"), n=num_questions,
                                   seed=1, facts_per_passage=DEMO_FACTS_PER_PASSAGE)
    encoder_dir = config.build_spec().uri
    if not os.path.exists(os.path.join(encoder_dir, encoders.TF1_MODULE_FILE)):
        encoders.make_encoder(encoder_dir, tf_format=encoders.TF1, seed=0)


def run_demo(out_dir: str, train_steps: int | None = None, overrides: list[str] = (),
             verbose: bool = False) -> int:
    """Prepares the inputs, runs the pipeline, prints its results; returns the exit status."""
    from pipelines.run_console import run_and_report

    config = demo_config(out_dir, train_steps or DEMO_TRAIN_STEPS).with_overrides(overrides)
    print(f"Demo: synthetic data and a tiny encoder under {os.path.abspath(out_dir)}")
    return run_and_report(config, verbose=verbose, prepare=lambda: prepare_inputs(config))
