"""A local run as a person reads it: one line as each component starts and ends, the logs in
a file, the report at the end, and an exit status (`pipelines.report.EXIT_*`).

TensorFlow's, TFX's and Beam's output (Python logging and the native file descriptors 1 and
2) goes to `<pipeline_root>/logs/<pipeline_name>-<UTC time>.log`; `verbose` keeps it on the
terminal as well (Python logging only: native messages stay on the terminal).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO

from components.evaluator import device_scores
from components.qa import contracts, progress
from components.trainer import training_data
from pipelines import report
from pipelines.config import REMOTE_PREFIXES, RUN_DIR, ConfigError, PipelineConfig

# TFX's LocalDagRunner ("Component X is ...") and BeamDagRunner ("node X is ...").
_NODE_EVENT = re.compile(r"(?:Component|node) (\S+) is (running|finished)\.")
# ImportSchemaGen's execution property: the approved schema it imported.
SCHEMA_FILE_PROPERTY = "schema_file"


def log_file_path(config: PipelineConfig) -> str:
    """A new log file under the run's directory (`~/mbqa-runs/logs` for a remote root)."""
    root = config.pipeline_root
    logs = (os.path.join(RUN_DIR, "logs") if root.startswith(REMOTE_PREFIXES)
            else os.path.join(os.path.abspath(root), "logs"))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return os.path.join(logs, f"{config.pipeline_name}-{stamp}.log")


@contextlib.contextmanager
def output_to_log(log_path: str, verbose: bool) -> Iterator[IO[str]]:
    """Sends all output to `log_path` and yields a stream to the terminal.

    Python logging goes to the file only (its handlers are set aside meanwhile); with
    `verbose`, it goes to its handlers too, and nothing else is redirected.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    root = logging.getLogger()
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    saved_handlers = list(root.handlers)
    if verbose:
        root.addHandler(file_handler)
        try:
            yield sys.stdout
        finally:
            root.removeHandler(file_handler)
            file_handler.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    root.handlers = [file_handler]
    try:
        with open(log_path, "a", encoding="utf-8", buffering=1) as log, \
                contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            progress.set_console(console if console.isatty() else None)
            yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        root.handlers = saved_handlers
        file_handler.close()
        progress.set_console(None)
        console.close()


class ComponentLines(logging.Handler):
    """Prints a line to `console` as each component starts and ends, with its key figures."""

    def __init__(self, console: IO[str], config: PipelineConfig):
        super().__init__(logging.INFO)
        self.console = console
        self.config = config
        self.running: dict[str, float] = {}  # node id -> start time

    def emit(self, record: logging.LogRecord) -> None:
        match = _NODE_EVENT.fullmatch(record.getMessage())
        if not match:
            return
        node, event = match.groups()
        if event == "running":
            self.running[node] = time.monotonic()
            self.say(f"{node} ...")
            return
        seconds = time.monotonic() - self.running.pop(node, time.monotonic())
        try:
            state, figures = node_outcome(self.config, node)
        except Exception as error:  # noqa: BLE001 (the run goes on; the figures are extra)
            state, figures = "finished", [f"(figures unavailable: {error})"]
        head = f"{node} " + ("cached (an earlier run's outputs)" if state == "CACHED" else
                             f"{state.lower()} in {seconds:.0f} s")
        self.say(head + (f": {figures[0]}" if figures else ""))
        for line in figures[1:]:
            self.say(f"    {line}")

    def failed(self, error: BaseException, stopped: bool = False) -> None:
        """Reports the components that were running when `error` stopped the run (`stopped`:
        a component refused to go on by design, e.g. no new training data)."""
        where = ", ".join(self.running) or "the pipeline"
        message = str(error).strip().splitlines()
        outcome = "stopped:" if stopped else f"FAILED: {type(error).__name__}:"
        self.say(f"{where} {outcome} {message[0] if message else ''}")
        for line in getattr(error, "tail", []):  # a task's last lines of output
            self.say(f"    {line}")

    def say(self, text: str) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self.console, flush=True)


def node_outcome(config: PipelineConfig, node: str) -> tuple[str, list[str]]:
    """The state of `node`'s last execution and its key figures (from its output artifacts)."""
    from ml_metadata.proto import metadata_store_pb2

    store = report.metadata_store(config)
    context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{node}")
    if context is None:
        return "finished", []
    execution = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
    state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
    output_ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = store.get_artifacts_by_id(output_ids)
    from pipelines.pipeline import RESOLVER_ID

    if node.startswith(RESOLVER_ID):  # Vertex AI compiles it into two query tasks
        # TFX's local runners resolve it inline and record no outputs: ask ML Metadata.
        uris = [a.uri for a in artifacts] or list(filter(None, [
            report.latest_blessed_model(config)]))
        return state, [f"baseline {uri}" for uri in uris] or ["no blessed model yet"]
    types = {t.id: t.name for t in store.get_artifact_types()}
    figures = []
    for artifact in artifacts:
        figures += artifact_figures(types.get(artifact.type_id, ""), artifact)
        if types.get(artifact.type_id) == "Schema":  # ImportSchemaGen records its file
            schema_file = execution.custom_properties.get(SCHEMA_FILE_PROPERTY)
            figures.append(f"imported {schema_file.string_value}" if schema_file
                           else "inferred from this run's statistics")
    return state, figures


def artifact_figures(type_name: str, artifact) -> list[str]:
    """Key figures of one output artifact of this pipeline's components."""
    props = report.custom_properties(artifact)
    if type_name == "Examples" and "num_windows" in props:
        return [f"{props['num_windows']} windows of {props['num_questions']} questions, "
                f"{props['num_skipped']} skipped (answer not found)"]
    if type_name == "Examples" and "num_questions" in props:
        return [f"{props['num_questions']} questions, {props['num_skipped']} invalid skipped"]
    if type_name == "Model":
        from tfx.utils import path_utils

        record = _read_json(os.path.join(path_utils.serving_model_path(artifact.uri),
                                         contracts.TRAINING_RECORD))
        if record:
            loss = record.get("final_loss")
            warm = record.get("warm_start_from")
            return [f"{record['train_steps']} steps in {record['train_seconds']:.0f} s, "
                    f"final loss {'n/a' if loss is None else f'{loss:.3f}'}"
                    + (f", warm start from {warm}" if warm else "")]
    if type_name == "ModelEvaluation":
        evaluation = _read_json(os.path.join(artifact.uri, contracts.METRICS_FILE))
        if evaluation:
            return evaluation_figures(evaluation)
    if type_name == "ExampleAnomalies":
        from components.qa import data_validation  # its protos: not before the settings

        return data_validation.describe(data_validation.read_anomalies(
            artifact.uri, report.anomalies_split_names(artifact)))
    if type_name == "PushedModel":
        if props.get("pushed") == 1:
            return [f"pushed version {props.get('pushed_version')} to "
                    f"{props.get('pushed_destination')}"]
        return ["not pushed (not blessed)"]
    return []


def evaluation_figures(evaluation: dict) -> list[str]:
    """EM/F1 of every model and the blessing: blessed, or the checks that failed."""
    lines = [f"{evaluation['num_questions']} {evaluation['eval_split']} questions"]
    lines += [report.model_scores(name, scores)
              for name, scores in evaluation["models"].items()]
    if "task_library" in evaluation:
        lines.append(device_scores.describe(evaluation["task_library"]))
    blessing = evaluation["blessing"]
    if blessing["blessed"]:
        lines.append(f"blessed: {len(blessing.get('checks', []))} checks passed")
    else:
        failed = [c["detail"] for c in blessing.get("checks", []) if not c["passed"]]
        lines.append("NOT blessed: " + "; ".join(failed or blessing["reasons"]))
    return lines


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError:
        return None


def _stop_status(error: BaseException) -> int | None:
    """The exit status of a Trainer that refused to train (not a failure), else None."""
    from components.qa import data_validation

    if data_validation.is_stop(error):  # anomalies and stop_on_anomalies
        return report.EXIT_DATA_ANOMALIES
    if training_data.is_no_new_data(error):  # nothing new to learn
        return report.EXIT_NO_NEW_DATA
    return None


def run_and_report(config: PipelineConfig, verbose: bool = False,
                   prepare: Callable[[], None] | None = None,
                   run: Callable[[], None] | None = None) -> int:
    """Runs the pipeline (after `prepare`), shows it, returns the exit status.

    `run` runs it (default: TFX's local runner on `config`); it logs "Component X is
    running." and "... is finished." as TFX's runners do, and records the executions in
    `config`'s ML Metadata store, where the component lines and the report read them.
    """
    log_path = log_file_path(config)
    print(f"Log file: {log_path}", flush=True)
    with output_to_log(log_path, verbose) as console:
        lines = ComponentLines(console, config)
        root = logging.getLogger()
        root.addHandler(lines)
        try:
            lines.say("Starting: TensorFlow and TFX take a while to import")
            from pipelines.local_runner import private_temp_dir, run_local

            with private_temp_dir():
                if prepare is not None:
                    prepare()
                (run or (lambda: run_local(config)))()
                report.print_report(config, console)
                return report.exit_status(config)
        except ConfigError as error:
            logging.exception("Invalid settings")
            print(f"error: {error}", file=console)
            return report.EXIT_BAD_SETTINGS
        except Exception as error:
            logging.exception("The run failed")
            stop_status = _stop_status(error)
            lines.failed(error, stopped=stop_status is not None)
            print(f"Details: {log_path}", file=console)
            if stop_status is not None:
                return stop_status
            if verbose:
                raise
            return report.EXIT_FAILED
        finally:
            root.removeHandler(lines)
