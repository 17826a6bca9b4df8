"""What a local run left in ML Metadata, and the report `mbqa run` and `mbqa demo` print.

The report ends with what this run pushed, or "Not pushed: <reasons>"; `exit_status` turns
the same facts into the command's exit status (documented in the README).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
from typing import IO, Any

from components.qa import contracts
from pipelines.config import PipelineConfig

# Exit statuses of `mbqa run` and `mbqa demo` (2 is argparse's and the settings' error).
EXIT_PUSHED = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_NOT_BLESSED = 3
# The Trainer refused to train: ExampleValidator found anomalies and stop_on_anomalies is on.
EXIT_DATA_ANOMALIES = 4
# The Trainer refused to train: the last blessed model learned from the same data and spec.
EXIT_NO_NEW_DATA = 5
# The pipeline's nodes whose outputs the report reads (`pipelines.pipeline` gives them these
# ids), and the output key of each.
EVALUATOR_NODE = "QaEvaluator"
PUSHER_NODE = "TFLitePusher"
VALIDATOR_NODE = "ExampleValidator"
OUTPUTS_READ = {EVALUATOR_NODE: "evaluation", PUSHER_NODE: "pushed_model",
                VALIDATOR_NODE: "anomalies"}


@dataclasses.dataclass
class RunSummary:
    """What the pipeline's runs left in ML Metadata, oldest first."""

    executions: dict[str, list[str]]  # node id -> the states of its executions
    evaluation_uris: list[str]  # ModelEvaluation artifacts
    pushed: list[dict]  # PushedModel artifacts: uri and custom properties
    # ExampleAnomalies artifacts: (uri, split names); empty when validation did not run.
    anomalies: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)

    @property
    def last_push(self) -> dict[str, Any] | None:
        """The last PushedModel artifact: `pushed` is 1 when the Pusher pushed, else 0."""
        return self.pushed[-1] if self.pushed else None


def metadata_store(config: PipelineConfig):
    """The pipeline's ML Metadata store (SQLite)."""
    from ml_metadata import metadata_store as store_lib
    from tfx.orchestration import metadata

    return store_lib.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.resolved_metadata_path())
    )


def custom_properties(artifact) -> dict[str, Any]:
    """An MLMD artifact's custom properties as plain values."""
    values = {key: getattr(value, value.WhichOneof("value"))
              for key, value in artifact.custom_properties.items() if value.WhichOneof("value")}
    # Vertex AI keeps every number as a double: counts read back as ints.
    return {key: int(value) if isinstance(value, float) and value.is_integer() else value
            for key, value in values.items()}


def latest_blessed_model(config: PipelineConfig) -> str | None:
    """The model URI of this pipeline's latest blessing that blessed (what its resolver
    offers the Trainer as the base model), or None."""
    store = metadata_store(config)
    context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    blessing_types = [t.id for t in store.get_artifact_types() if t.name == "ModelBlessing"]
    if context is None or not blessing_types:
        return None
    blessed = [custom_properties(a) for a in sorted(store.get_artifacts_by_context(context.id),
                                                    key=lambda a: a.id)
               if a.type_id in blessing_types and custom_properties(a).get("blessed") == 1]
    return blessed[-1].get("current_model") if blessed else None


def run_summary(config: PipelineConfig) -> RunSummary:
    """Reads this pipeline's executions and artifacts from its ML Metadata store (which may
    hold other pipelines too): each node's executions, and the outputs of this pipeline's
    QaEvaluator and TFLitePusher executions in execution order (a cached execution's output
    is the earlier execution's artifact, pushed or not)."""
    from ml_metadata.proto import metadata_store_pb2

    store = metadata_store(config)
    state_name = metadata_store_pb2.Execution.State.Name
    prefix = f"{config.pipeline_name}."
    executions, outputs = {}, {}
    for context in store.get_contexts_by_type("node"):
        if not context.name.startswith(prefix):
            continue
        node = context.name[len(prefix):]
        found = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
        executions[node] = [state_name(e.last_known_state) for e in found]
        if node in OUTPUTS_READ:
            outputs[node] = _output_artifacts(store, [e.id for e in found], OUTPUTS_READ[node])
    pushed = [{"uri": a.uri, **custom_properties(a)} for a in outputs.get(PUSHER_NODE, [])]
    anomalies = [(a.uri, anomalies_split_names(a)) for a in outputs.get(VALIDATOR_NODE, [])]
    return RunSummary(executions, [a.uri for a in outputs.get(EVALUATOR_NODE, [])], pushed,
                      anomalies)


def anomalies_split_names(artifact) -> list[str]:
    """The split names of an MLMD ExampleAnomalies artifact (TFX's `split_names` property; a
    custom property where a registry keeps every property so; [] if neither: then
    `read_anomalies` reads the splits its directory holds)."""
    from components.qa import data_validation

    for properties in (artifact.properties, artifact.custom_properties):
        if "split_names" in properties:
            return data_validation.split_names(properties["split_names"].string_value)
    return []


def latest_output(config: PipelineConfig, node: str, key: str):
    """The MLMD artifact output under `key` by this pipeline's last completed (or cached)
    execution of `node`, or None (no such execution, or no ML Metadata store yet)."""
    from ml_metadata.proto import metadata_store_pb2

    if not os.path.isfile(config.resolved_metadata_path()):
        return None
    store = metadata_store(config)
    context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{node}")
    if context is None:
        return None
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    executions = sorted(e.id for e in store.get_executions_by_context(context.id)
                        if e.last_known_state in done)
    found = _output_artifacts(store, executions, key) if executions else []
    return found[-1] if found else None


def _output_artifacts(store, execution_ids: list[int], key: str) -> list:
    """The artifacts these executions output under `key`, in execution order."""
    from ml_metadata.proto import metadata_store_pb2

    order = {execution_id: n for n, execution_id in enumerate(execution_ids)}
    events = sorted(
        (e for e in store.get_events_by_execution_ids(execution_ids)
         if e.type == metadata_store_pb2.Event.OUTPUT
         and any(step.HasField("key") and step.key == key for step in e.path.steps)),
        key=lambda e: (order[e.execution_id], e.artifact_id))
    by_id = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    return [by_id[e.artifact_id] for e in events]


def exit_status(config: PipelineConfig) -> int:
    """EXIT_PUSHED when this pipeline's last Pusher execution pushed a model (or reused such
    a push from the cache), else EXIT_NOT_BLESSED."""
    push = run_summary(config).last_push
    return EXIT_PUSHED if push and push.get("pushed") == 1 else EXIT_NOT_BLESSED


def answer_one_question(config: PipelineConfig, tflite_path: str) -> dict[str, str]:
    """The first eval question, its expected answer, and the answers of `mbqa answer`'s
    code and of the TFLite Task Library (or why the file does not work there)."""
    from components.qa import answering, inference, squad_json, task_library
    from components.qa.windows import WindowConfig, WindowMaker

    pattern = config.eval_pattern.replace("{SPAN}", "*")
    path = sorted(glob.glob(os.path.join(config.data_root, pattern)))[-1]
    example = squad_json.read_squad_examples(path)[0][0]
    with inference.load_predictor(tflite_path) as predictor:
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


def model_scores(name: str, scores: dict[str, Any]) -> str:
    """One model's EM/F1 (and SQuAD 2.0's HasAns/NoAns F1 and best threshold)."""
    line = f"{name:18} EM {scores['exact_match']:6.2f}  F1 {scores['f1']:6.2f}"
    official = scores.get("official", {})
    if "HasAns_f1" in official or "NoAns_f1" in official:
        line += (f"  HasAns F1 {official.get('HasAns_f1', float('nan')):6.2f}"
                 f"  NoAns F1 {official.get('NoAns_f1', float('nan')):6.2f}")
    if "best_f1_thresh" in official:
        line += f"  best threshold {official['best_f1_thresh']:.3f}"
    return line


def print_evaluation(evaluation: dict, out: IO[str]) -> None:
    """Each TFLite file's size and agreement with the SavedModel, and every gate check."""
    for name, scores in evaluation["models"].items():
        agreement = scores.get("agreement")
        if agreement:
            diff = max(agreement["max_abs_diff_start"], agreement["max_abs_diff_end"])
            print(f"  {name}: {scores['size_bytes'] / 1e6:.1f} MB, vs SavedModel: max |logit "
                  f"diff| {diff:.3f}, same best span "
                  f"{100 * agreement['same_best_span_share']:.0f}%, Task Library: "
                  f"{'yes' if scores['task_library']['compatible'] else 'no'}", file=out)
    blessing = evaluation["blessing"]
    print(f"Gate: {'blessed' if blessing['blessed'] else 'NOT blessed'}", file=out)
    for check in blessing.get("checks", []):
        print(f"  {'ok    ' if check['passed'] else 'FAILED'}  {check['detail']}", file=out)


def print_anomalies(uri: str, splits: list[str], out: IO[str]) -> None:
    """The last ExampleValidator's anomalies: a headline, then one line each."""
    from components.qa import data_validation

    headline, *lines = data_validation.describe(data_validation.read_anomalies(uri, splits))
    print(f"Data anomalies:     {headline} ({uri})", file=out)
    for line in lines:
        print(f"  {line}", file=out)


def print_report(config: PipelineConfig, out: IO[str] | None = None) -> None:
    """Prints where the last run's outputs are, its gate, what it pushed (or why not) and one
    question answered by the pushed file (to `out`, default stdout). EM/F1 are on each
    component's line."""
    out = out or sys.stdout
    summary = run_summary(config)
    print(f"Pipeline artifacts: {config.pipeline_root}", file=out)
    print(f"ML Metadata:        {config.resolved_metadata_path()}", file=out)
    if summary.anomalies:
        print_anomalies(*summary.anomalies[-1], out)
    evaluation = None
    if summary.evaluation_uris:
        metrics_path = os.path.join(summary.evaluation_uris[-1], contracts.METRICS_FILE)
        print(f"Evaluation:         {metrics_path}", file=out)
        with open(metrics_path, encoding="utf-8") as f:
            evaluation = json.load(f)
        print_evaluation(evaluation, out)
    push = summary.last_push
    if not push or push.get("pushed") != 1:
        failed = [c["detail"] for c in evaluation["blessing"].get("checks", [])
                  if not c["passed"]] if evaluation else ["no evaluation"]
        print(f"Not pushed to {config.push_destination}: {'; '.join(failed)}", file=out)
        return
    destination = push.get("pushed_destination") or push["uri"]
    tflite_files = sorted(glob.glob(os.path.join(destination, "**", "*.tflite"), recursive=True))
    print(f"Pushed model:       {destination}", file=out)
    for path in tflite_files:
        print(f"  {path} ({os.path.getsize(path) / 1e6:.1f} MB)", file=out)
    if tflite_files:
        for label, text in answer_one_question(config, tflite_files[0]).items():
            print(f"{label + ':':14}{text}", file=out)
