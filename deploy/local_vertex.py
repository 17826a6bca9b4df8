"""A compiled Vertex AI PipelineJob, run on this machine through the runners' own contracts.

`mbqa deploy local-run --pipeline-json pipeline.json --local-bucket gs://B=/dir` takes the
JSON of `mbqa compile --target vertex` unchanged and runs it as Vertex AI Pipelines would,
this package's Python environment standing in for the image:

- parameters: the compiled `runtimeConfig` values, overridden by `--parameter` (as
  `mbqa deploy submit` passes them), typed by the pipeline's input definitions;
- gs:// paths under a mapped bucket become local paths in every task's input (the
  executors see local files); a gs:// path of an unmapped bucket fails the task, naming it;
- tasks run in dependency order. A container task runs its executor's `command` and `args`
  from the JSON, `{{$}}` replaced by the `ExecutorInput` Vertex AI builds: typed
  `parameters`, input artifacts (`name`, `type`, `uri`, the producer's `metadata`),
  pre-allocated outputs (`<pipeline root>/local/<job id>/<task>/<key>`) and `outputFile`.
  Any other placeholder fails the task, naming it. Each runs through
  `deploy.local_training`, which only replaces Vertex AI's job service (the Trainer's
  CustomJob then runs its replicas here);
- a task with `lifecycle.preCacheCheck` (the ExampleGen's span-resolving driver) runs it
  first, with the same input;
- a resolver task evaluates each `outputArtifactQueries` filter over the registry
  (`deploy.local_registry`: ML Metadata on SQLite, kept across runs as Vertex ML Metadata
  keeps artifacts): the latest match, or no artifact;
- a task that fails stops the run (`TaskFailed`, with its last lines of output).

Assumptions about Vertex AI, from TFX's sources rather than a documented interface (TFX
1.15.1, under https://github.com/tensorflow/tfx/blob/v1.15.1/tfx/orchestration/kubeflow/v2/):
- the driver's `ExecutorOutput` updates the task's parameters and output artifact before
  the executor runs ("The CAIP Pipelines service will update the task's properties and
  artifacts prior to running the executor": `file_based_example_gen/driver.py`); its
  parameter values are merged into the executor's `parameters` (whole numbers as
  `intValue`). `SquadExampleGen` resolves a pattern that still holds `{SPAN}` itself, so
  it reads the same span if the service does not merge them;
- the executor reads its properties from `parameters` (the compiled schema 2.0.0 types
  them with `type`, and the entrypoint gets no inputs spec:
  `container/kubeflow_v2_entrypoint_utils.py: parse_execution_properties`);
- a resolver query sees every artifact of the pipeline's earlier runs and returns the
  latest match; `{{$.inputs.artifacts['input'].metadata['KEY']}}` is the input
  artifact's metadata value as text (`compiler_utils.py`, `step_builder.py`); an empty
  input gives an empty output;
- an executor's reported `metadata` replaces the pre-allocated artifact's
  (`container/kubeflow_v2_run_executor.py` writes it);
- `cachingOptions` are not applied: every task runs (as `mbqa deploy submit --no-cache`).
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import os
import re
import subprocess
import sys
from typing import Any

from deploy import local_registry
from deploy.vertex import parse_parameters
from pipelines.config import PipelineConfig

# Lines of a failed task's output shown on the terminal.
TAIL_LINES = 15
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_INPUT_METADATA = re.compile(r"\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]")
_VALUE_KEYS = {"STRING": "stringValue", "DOUBLE": "doubleValue", "INT": "intValue"}


class TaskFailed(RuntimeError):
    """A task exited with an error; `tail` holds its last lines of output."""

    def __init__(self, task: str, why: str, tail: list[str]):
        super().__init__(f"task {task} failed: {why}")
        self.tail = tail


def parse_bucket_map(items: list[str]) -> dict[str, str]:
    """`gs://B=/dir` texts as {"gs://B": "/dir"} (absolute local directories)."""
    buckets = {}
    for item in items:
        bucket, sep, directory = item.partition("=")
        if not sep or not re.fullmatch(r"gs://[^/=]+", bucket) or not directory:
            raise ValueError(f"--local-bucket {item!r} is not of the form gs://BUCKET=DIR")
        buckets[bucket] = os.path.abspath(os.path.expanduser(directory))
    return buckets


def localize(value: Any, buckets: dict[str, str]) -> Any:
    """`value` (JSON) with every gs:// path under a mapped bucket made local.

    Raises ValueError naming a gs:// path of another bucket.
    """
    if isinstance(value, dict):
        return {k: localize(v, buckets) for k, v in value.items()}
    if isinstance(value, list):
        return [localize(v, buckets) for v in value]
    if not isinstance(value, str) or "gs://" not in value:
        return value
    for bucket, directory in buckets.items():
        value = re.sub(re.escape(bucket) + r"(?=/|\"|\\|$)", directory, value)
    unmapped = re.search(r"gs://[^/\"\\\s]+", value)
    if unmapped:
        raise ValueError(f"{unmapped.group(0)} is not mapped to a local directory: add "
                         f"--local-bucket {unmapped.group(0)}=DIR")
    return value


class LocalVertexJob:
    """One compiled PipelineJob with its submit-time parameters and bucket map."""

    def __init__(self, pipeline_json: str, buckets: dict[str, str],
                 assignments: list[str] = ()):
        with open(pipeline_json, encoding="utf-8") as f:
            self.job = json.load(f)
        self.spec = self.job["pipelineSpec"]
        self.buckets = buckets
        self.pipeline_name = self.spec["pipelineInfo"]["name"]
        self.root = localize(self.job["runtimeConfig"]["gcsOutputDirectory"], buckets)
        definitions = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        self.parameters = dict(self.job["runtimeConfig"].get("parameters", {}))
        for name, value in parse_parameters(pipeline_json, list(assignments)).items():
            kind = _VALUE_KEYS[definitions[name]["type"]]
            self.parameters[name] = {kind: str(value) if kind == "intValue" else value}

    def parameter(self, name: str) -> Any:
        """A root parameter's value (submitted or compiled), gs:// paths made local."""
        return localize(next(iter(self.parameters[name].values())), self.buckets)

    def constant(self, name: str) -> Any:
        """The first compiled constant parameter `name` of any task (e.g. input_config)."""
        for task in self.spec["root"]["dag"]["tasks"].values():
            value = task.get("inputs", {}).get("parameters", {}).get(name, {})
            if "runtimeValue" in value:
                return next(iter(value["runtimeValue"]["constantValue"].values()))
        raise KeyError(name)

    def report_config(self, registry_path: str | None = None) -> PipelineConfig:
        """The settings of this run as `mbqa run`'s report reads them: local paths, the
        submitted spec, and the registry (default: metadata.sqlite under the local root)."""
        from pipelines.pipeline import PARAM_DATA_ROOT, PARAM_PUSH_DESTINATION, PARAM_SPEC

        return report_config(self.pipeline_name, self.root, registry_path,
                             self.parameter(PARAM_DATA_ROOT),
                             self.parameter(PARAM_PUSH_DESTINATION),
                             self.constant("input_config"), self.parameter(PARAM_SPEC))

    def run(self, config: PipelineConfig) -> None:
        """Runs every task in dependency order, recording them in `config`'s registry;
        raises TaskFailed at the first failure."""
        registry = local_registry.Registry(config.resolved_metadata_path(), self.pipeline_name)
        tasks = self.spec["root"]["dag"]["tasks"]
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S%f")
        job_id = f"{self.pipeline_name}-{stamp}"
        outputs: dict[str, dict[str, list[dict]]] = {}
        for name in task_order(vertex_task_needs(tasks)):
            task, component, executor = self.task(name)
            inputs = _input_artifacts(name, task, component, outputs)
            logging.info("Component %s is running.", name)
            try:
                if "resolver" in executor:
                    outputs[name] = resolve(registry, executor["resolver"], component, inputs)
                elif "container" in executor:
                    task_dir = os.path.join(self.root, "local", job_id, name)
                    outputs[name] = self.run_container(name, inputs, task_dir)
                else:
                    raise TaskFailed(name, f"its executor {sorted(executor)} cannot run "
                                     "locally (container and resolver tasks can)", [])
            except Exception:
                registry.record_task(name, job_id, "FAILED", inputs, {})
                raise
            registry.record_task(name, job_id, "COMPLETE", inputs, outputs[name])
            logging.info("Component %s is finished.", name)

    def task(self, name: str) -> tuple[dict, dict, dict]:
        """`(task, component, executor)` of the task `name` in the compiled JSON."""
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        return task, component, self.spec["deploymentSpec"]["executors"][
            component["executorLabel"]]

    def executor_input(self, name: str, inputs: dict[str, list[dict]],
                       task_dir: str) -> dict[str, Any]:
        """The `ExecutorInput` of container task `name`, as Vertex AI builds it: typed
        parameters, `inputs` (RuntimeArtifacts), pre-allocated outputs under `task_dir` and
        the output file; gs:// paths made local. Raises TaskFailed naming what it cannot
        build."""
        task, component, _ = self.task(name)
        parameters = {}
        for key, value in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                parameters[key] = self.parameters[value["componentInputParameter"]]
            elif "runtimeValue" in value:
                parameters[key] = value["runtimeValue"]["constantValue"]
            else:
                raise TaskFailed(name, f"parameter {key} comes from {sorted(value)}, which "
                                 "local runs do not resolve", [])
        allocated = {
            key: [{"name": local_registry.new_artifact_name(), "type": d["artifactType"],
                   "uri": os.path.join(task_dir, key), "metadata": {}}]
            for key, d in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
        try:
            return localize({
                "inputs": {"parameters": parameters,
                           "artifacts": {k: {"artifacts": v} for k, v in inputs.items()}},
                "outputs": {"artifacts": {k: {"artifacts": v} for k, v in allocated.items()},
                            "outputFile": os.path.join(task_dir, "executor_output.json")},
            }, self.buckets)
        except ValueError as error:
            raise TaskFailed(name, str(error), []) from error

    def run_container(self, name: str, inputs: dict[str, list[dict]],
                      task_dir: str) -> dict[str, list[dict]]:
        """Runs container task `name` (its driver first, if any) on `inputs`; returns its
        output artifacts (RuntimeArtifact dicts with the metadata the executor wrote)."""
        container = self.task(name)[2]["container"]
        executor_input = self.executor_input(name, inputs, task_dir)
        output_file = executor_input["outputs"]["outputFile"]
        os.makedirs(task_dir, exist_ok=True)
        driver = container.get("lifecycle", {}).get("preCacheCheck")
        if driver:
            run_process(f"{name} (driver)", driver["command"],
                        fill_placeholders(name, driver.get("args", []), executor_input))
            _merge_driver_output(executor_input, _read_json(output_file))
        run_process(name, container["command"],
                    fill_placeholders(name, container.get("args", []), executor_input))
        reported = _read_json(output_file).get("artifacts", {})
        for key, artifacts in executor_input["outputs"]["artifacts"].items():
            for artifact, written in zip(artifacts["artifacts"],
                                         reported.get(key, {}).get("artifacts", []),
                                         strict=False):
                artifact["metadata"] = written.get("metadata", {})
        return {k: v["artifacts"] for k, v in executor_input["outputs"]["artifacts"].items()}


def report_config(pipeline_name: str, root: str, registry_path: str | None, data_root: str,
                  push_destination: str, input_config: str, spec: str) -> PipelineConfig:
    """A local run's settings as `mbqa run`'s report reads them, from its compiled values
    (the ExampleGen's `input_config` and the spec as JSON); the registry defaults to
    metadata.sqlite under the local pipeline root."""
    spec_value = json.loads(spec)
    patterns = {split["name"]: split["pattern"]
                for split in json.loads(input_config)["splits"]}
    return PipelineConfig(
        pipeline_name=pipeline_name, pipeline_root=root,
        metadata_path=registry_path or os.path.join(root, "metadata.sqlite"),
        data_root=data_root, push_destination=push_destination,
        train_pattern=patterns.get("train", PipelineConfig.train_pattern),
        eval_pattern=patterns.get("eval", PipelineConfig.eval_pattern),
        spec_class=spec_value["class"], spec=spec_value["params"])


def task_order(needs: dict[str, set[str]]) -> list[str]:
    """Task names, each after the tasks it needs (ties in name order)."""
    order: list[str] = []
    while len(order) < len(needs):
        ready = sorted(n for n, deps in needs.items() if n not in order and deps <= set(order))
        if not ready:
            raise ValueError(f"Tasks depend on each other in a cycle: {sorted(needs)}")
        order.append(ready[0])
    return order


def vertex_task_needs(tasks: dict[str, dict]) -> dict[str, set[str]]:
    """What each task of a PipelineJob waits for: its dependent tasks and input producers."""
    return {name: set(task.get("dependentTasks", [])) | {
        source["taskOutputArtifact"]["producerTask"]
        for source in task.get("inputs", {}).get("artifacts", {}).values()
        if "taskOutputArtifact" in source} for name, task in tasks.items()}


def resolve(registry: local_registry.Registry, resolver: dict, component: dict,
            inputs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """A resolver task's outputs: for each query, the latest match (or none)."""
    outputs = {}
    definitions = component.get("outputDefinitions", {}).get("artifacts", {})
    for key, query in resolver["outputArtifactQueries"].items():
        try:
            text = _render_filter(query["filter"], inputs)
        except LookupError:  # an input with no artifact: nothing to look up
            outputs[key] = []
            continue
        found = registry.query(text)[:1]
        outputs[key] = [{**artifact, "type": definitions[key]["artifactType"]}
                        for artifact in found]
        logging.info("Resolver query %s: %s", text, [a["name"] for a in found] or "no match")
    return outputs


def _render_filter(text: str, inputs: dict[str, list[dict]]) -> str:
    def value(match: re.Match) -> str:
        found = _INPUT_METADATA.fullmatch(match.group(1).strip())
        if not found:
            raise ValueError(f"Unknown placeholder {match.group(0)} in the query {text!r}")
        key, field = found.groups()
        artifacts = inputs.get(key) or []
        if not artifacts:
            raise LookupError(key)
        metadata = artifacts[0].get("metadata", {})
        if field not in metadata:
            raise ValueError(f"{match.group(0)}: the input artifact {artifacts[0]['name']} "
                             f"has no metadata {field!r}")
        item = metadata[field]
        return item if isinstance(item, str) else json.dumps(item)

    return _PLACEHOLDER.sub(value, text)


def _input_artifacts(name: str, task: dict, component: dict,
                     outputs: dict[str, dict[str, list[dict]]]) -> dict[str, list[dict]]:
    definitions = component.get("inputDefinitions", {}).get("artifacts", {})
    inputs = {}
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in source:
            raise TaskFailed(name, f"input {key} comes from {sorted(source)}, which local "
                             "runs do not resolve", [])
        producer = source["taskOutputArtifact"]
        inputs[key] = [{**artifact, "type": definitions[key]["artifactType"]}
                       for artifact in outputs[producer["producerTask"]][
                           producer["outputArtifactKey"]]]
    return inputs


def _merge_driver_output(executor_input: dict, driver_output: dict) -> None:
    """The driver's parameter values and output artifact metadata into the executor's input."""
    parameters = executor_input["inputs"]["parameters"]
    for key, value in driver_output.get("parameterValues", {}).items():
        if isinstance(value, float | int) and float(value).is_integer():
            parameters[key] = {"intValue": str(int(value))}
        elif isinstance(value, float | int):
            parameters[key] = {"doubleValue": value}
        else:
            parameters[key] = {"stringValue": value}
    for key, artifacts in driver_output.get("artifacts", {}).items():
        allocated = executor_input["outputs"]["artifacts"][key]["artifacts"]
        for artifact, written in zip(allocated, artifacts.get("artifacts", []), strict=False):
            artifact["metadata"] = {**artifact["metadata"], **written.get("metadata", {})}


def fill_placeholders(name: str, args: list[str], executor_input: dict) -> list[str]:
    """Task `name`'s args with `{{$}}` as the ExecutorInput's JSON; TaskFailed names any
    other placeholder."""
    filled = []
    for arg in args:
        unknown = [p for p in _PLACEHOLDER.findall(arg) if p != "$"]
        if unknown:
            raise TaskFailed(name, f"unknown placeholder {{{{{unknown[0]}}}}} in its args", [])
        filled.append(arg.replace("{{$}}", json.dumps(executor_input)))
    return filled


def run_process(name: str, command: list[str], args: list[str],
                env: dict[str, str] | None = None) -> None:
    """Runs a step's `python -m MODULE` `args` here, through `deploy.local_training` (which
    runs Vertex AI training jobs locally), its output to ours; raises TaskFailed with its
    last lines of output."""
    if command[:2] != ["python", "-m"] or len(command) != 3:
        raise TaskFailed(name, f"its command {command} is not `python -m MODULE`", [])
    argv = [sys.executable, "-m", "deploy.local_training", command[2], *args]
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    for line in process.stdout:
        sys.stdout.write(line)
        tail.append(line.rstrip("\n"))
    sys.stdout.flush()
    if process.wait() != 0:
        raise TaskFailed(name, f"exit status {process.returncode}", list(tail))


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
