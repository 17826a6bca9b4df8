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

import dataclasses
import glob
import json
import os

from absl import logging

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


@dataclasses.dataclass
class RunSummary:
    """What the pipeline's runs left in ML Metadata, oldest first."""

    executions: dict[str, list[str]]  # node id -> the states of its executions
    evaluation_uris: list[str]  # ModelEvaluation artifacts
    pushed: list[dict]  # PushedModel artifacts: uri and custom properties


def run_summary(config: PipelineConfig) -> RunSummary:
    """Reads the pipeline's executions and artifacts from its ML Metadata SQLite store."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.resolved_metadata_path())
    )
    state_name = metadata_store_pb2.Execution.State.Name
    prefix = f"{config.pipeline_name}."
    executions = {}
    for context in store.get_contexts_by_type("node"):
        if context.name.startswith(prefix):
            found = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
            executions[context.name[len(prefix):]] = [state_name(e.last_known_state)
                                                     for e in found]

    def artifacts(type_name: str) -> list:
        return sorted(store.get_artifacts_by_type(type_name), key=lambda a: a.id)

    pushed = [
        {"uri": a.uri, **{k: getattr(v, v.WhichOneof("value"))
                          for k, v in a.custom_properties.items() if v.WhichOneof("value")}}
        for a in artifacts("PushedModel")
    ]
    return RunSummary(executions, [a.uri for a in artifacts("ModelEvaluation")], pushed)


def answer_one_question(config: PipelineConfig, tflite_path: str) -> dict[str, str]:
    """The first eval question, its expected answer, and the answers of `mbqa answer`'s
    code and of the TFLite Task Library (or why the file does not work there)."""
    from components.qa import answering, inference, squad_json, task_library
    from components.qa.windows import WindowConfig, WindowMaker

    pattern = config.eval_pattern.replace("{SPAN}", "*")
    path = sorted(glob.glob(os.path.join(config.data_root, pattern)))[-1]
    example = squad_json.read_squad_examples(path)[0][0]
    predictor = inference.load_predictor(tflite_path)
    maker = WindowMaker(predictor.vocab_path, WindowConfig.from_spec(config.build_spec()))
    answers = answering.answer_questions(predictor, [example], maker)
    try:
        library_answer = task_library.answer(tflite_path, example.context, example.question)
    except RuntimeError as e:
        library_answer = f"(does not work in the Task Library: {e})"
    return {
        "Question": example.question,
        "Expected": example.answer_texts[0] if example.answer_texts else "",
        "mbqa answer": answers.predictions[example.id],
        "Task Library": library_answer,
    }


def print_metrics(evaluation: dict) -> None:
    """EM/F1 of every scored model, TFLite agreement with the SavedModel, and the blessing."""
    print(f"  {evaluation['num_questions']} {evaluation['eval_split']} questions")
    for name, scores in evaluation["models"].items():
        line = f"  {name:18} EM {scores['exact_match']:6.2f}  F1 {scores['f1']:6.2f}"
        agreement = scores.get("agreement")
        if agreement:
            diff = max(agreement["max_abs_diff_start"], agreement["max_abs_diff_end"])
            line += (f"  {scores['size_bytes'] / 1e6:.1f} MB, vs SavedModel: max |logit diff| "
                     f"{diff:.3f}, same best span {100 * agreement['same_best_span_share']:.0f}%"
                     f", Task Library: {'yes' if scores['task_library']['compatible'] else 'no'}")
        print(line)
    blessing = evaluation["blessing"]
    print(f"  {'blessed' if blessing['blessed'] else 'NOT blessed'}:")
    for reason in blessing["reasons"]:
        print(f"    {reason}")


def print_report(config: PipelineConfig) -> None:
    """Prints the last run's EM/F1, the pushed .tflite file and one answered question."""
    summary = run_summary(config)
    print(f"Pipeline artifacts: {config.pipeline_root}")
    print(f"ML Metadata:        {config.resolved_metadata_path()}")
    if summary.evaluation_uris:
        metrics_path = os.path.join(summary.evaluation_uris[-1], "metrics.json")
        print(f"Evaluation:         {metrics_path}")
        with open(metrics_path, encoding="utf-8") as f:
            print_metrics(json.load(f))
    pushed = [p for p in summary.pushed if p.get("pushed")]
    if not pushed:
        print(f"No model pushed to {config.push_destination} (not blessed)")
        return
    destination = pushed[-1].get("pushed_destination") or pushed[-1]["uri"]
    tflite_files = sorted(glob.glob(os.path.join(destination, "**", "*.tflite"), recursive=True))
    print(f"Pushed model:       {destination}")
    for path in tflite_files:
        print(f"  {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    if tflite_files:
        for label, text in answer_one_question(config, tflite_files[0]).items():
            print(f"{label + ':':14}{text}")


def run_demo(out_dir: str, train_steps: int | None = None, overrides: list[str] = ()) -> int:
    """Prepares the inputs, runs the pipeline, prints its results; returns an exit code."""
    from pipelines.local_runner import run_local

    config = demo_config(out_dir, train_steps or DEMO_TRAIN_STEPS).with_overrides(overrides)
    logging.info("Demo: synthetic data and a tiny encoder under %s", out_dir)
    prepare_inputs(config)
    run_local(config)
    print_report(config)
    return 0
