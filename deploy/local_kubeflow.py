"""A compiled Kubeflow Pipelines package (Argo workflow), run on this machine step by step.

`mbqa deploy local-run --kubeflow-package pipeline.tar.gz --local-bucket gs://B=/dir` takes
the package of `mbqa compile --target kubeflow` unchanged and runs it as Argo would on a
Kubeflow Pipelines cluster, this package's Python environment standing in for the image:

- the DAG's tasks in dependency order; each runs its template's `command` and `args`
  (`python -m tfx.orchestration.kubeflow.container_entrypoint ... --tfx_ir ...`) with
  `{{inputs.parameters.pipeline-root}}` filled from the workflow's argument (the one
  runtime parameter of Kubeflow packages; `--parameter pipeline-root=gs://...` overrides
  it); any other placeholder fails the task, naming it;
- ML Metadata is served over gRPC (`deploy.local_mlmd_server`, SQLite behind it) and
  reached through `METADATA_GRPC_SERVICE_HOST`/`_PORT`, as the cluster's service is; the
  pod fields the template reads (`valueFrom.fieldRef`: workflow, pod name and uid,
  namespace, run id, caching label) are set as Kubeflow sets them;
- gs:// paths under a mapped bucket become local in the args; the files a template
  declares as output artifacts (`/mlpipeline-ui-metadata.json`) are written under the
  task's local directory instead of the container's root.

TFX's entrypoint does the rest as on a cluster: drivers, the resolver, caching, and
recording executions in ML Metadata.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tarfile
import uuid
from typing import Any

import yaml

from deploy.local_vertex import TaskFailed, localize, report_config, run_process, task_order
from pipelines.config import PipelineConfig

ROOT_PARAMETER = "pipeline-root"
_PLACEHOLDER = re.compile(r"\{\{([^}]*)\}\}")


def load_workflow(path: str) -> dict[str, Any]:
    """The Argo workflow of a package (.tar.gz holding pipeline.yaml, or the .yaml)."""
    if path.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as tar:
            return yaml.safe_load(tar.extractfile("pipeline.yaml"))
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


class LocalKubeflowJob:
    """One compiled Argo workflow with its pipeline root and bucket map."""

    def __init__(self, package: str, buckets: dict[str, str], assignments: list[str] = ()):
        self.workflow = load_workflow(package)
        self.buckets = buckets
        spec = self.workflow["spec"]
        self.pipeline_name = spec["entrypoint"]
        self.arguments = {p["name"]: p.get("value") for p in
                          spec.get("arguments", {}).get("parameters", [])}
        for item in assignments:
            name, sep, value = item.partition("=")
            if not sep or name not in self.arguments:
                raise ValueError(f"--parameter {item!r}: Kubeflow packages take only "
                                 f"{sorted(self.arguments)}")
            self.arguments[name] = value
        self.templates = {t["name"]: t for t in spec["templates"]}
        self.dag = self.templates[self.pipeline_name]["dag"]["tasks"]
        self.root = localize(self.arguments[ROOT_PARAMETER], buckets)

    def ir_parameter(self, node_id: str, key: str) -> Any:
        """A node's compiled parameter (from its step's `--tfx_ir`), gs:// paths made local."""
        for template in self.templates.values():
            args = template.get("container", {}).get("args", [])
            if "--node_id" in args and args[args.index("--node_id") + 1] == node_id:
                ir = json.loads(args[args.index("--tfx_ir") + 1])
                for node in ir["nodes"]:
                    node = node["pipelineNode"]
                    if node["nodeInfo"]["id"] == node_id:
                        value = node["parameters"]["parameters"][key]["fieldValue"]
                        return localize(next(iter(value.values())), self.buckets)
        raise KeyError(f"{node_id}.{key}")

    def report_config(self, registry_path: str | None = None) -> PipelineConfig:
        """The settings of this run as `mbqa run`'s report reads them."""
        from pipelines.pipeline import TRAINER_ID

        return report_config(self.pipeline_name, self.root, registry_path,
                             self.ir_parameter("SquadExampleGen", "input_base"),
                             self.ir_parameter("TFLitePusher", "push_destination"),
                             self.ir_parameter("SquadExampleGen", "input_config"),
                             self.ir_parameter(TRAINER_ID, "spec"))

    def run(self, config: PipelineConfig) -> None:
        """Serves ML Metadata on `config`'s store and runs every step; raises TaskFailed."""
        from deploy.local_mlmd_server import serve

        server, port = serve(config.resolved_metadata_path())
        run_id = str(uuid.uuid4())
        workflow = f"{self.pipeline_name}-{run_id[:8]}"
        try:
            order = task_order({t["name"]: set(t.get("dependencies", [])) for t in self.dag})
            tasks = {t["name"]: t for t in self.dag}
            for name in order:
                self._run_step(tasks[name], workflow, run_id, port)
        finally:
            server.stop(0)

    def _run_step(self, task: dict, workflow: str, run_id: str, port: int) -> None:
        template = self.templates[task["template"]]
        container = template["container"]
        args = container.get("args", [])
        node = args[args.index("--node_id") + 1] if "--node_id" in args else task["name"]
        task_dir = os.path.join(self.root, "local", workflow, task["name"])
        os.makedirs(task_dir, exist_ok=True)
        workflow_values = {f"inputs.parameters.{name}": value
                           for name, value in self.arguments.items()}
        values = {f"inputs.parameters.{p['name']}":
                  _fill(task["name"], p["value"], workflow_values)
                  for p in task.get("arguments", {}).get("parameters", [])}
        outputs = {a["path"]: os.path.join(task_dir, os.path.basename(a["path"]))
                   for a in template.get("outputs", {}).get("artifacts", [])}
        filled = []
        for arg in args:
            arg = outputs.get(arg, arg)
            try:
                filled.append(localize(_fill(task["name"], arg, values), self.buckets))
            except ValueError as error:
                raise TaskFailed(node, str(error), []) from error
        env = {"METADATA_GRPC_SERVICE_HOST": "localhost", "METADATA_GRPC_SERVICE_PORT": str(port)}
        pod = {"metadata.labels['workflows.argoproj.io/workflow']": workflow,
               "metadata.name": f"{workflow}-{task['name']}", "metadata.uid": str(uuid.uuid4()),
               "metadata.namespace": "local", "metadata.labels['pipeline/runid']": run_id,
               "metadata.labels['pipelines.kubeflow.org/enable_caching']": "true"}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
                continue
            field = variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if field not in pod:
                raise TaskFailed(node, f"environment variable {variable['name']} comes from "
                                 f"{variable.get('valueFrom')}, which local runs do not set", [])
            env[variable["name"]] = pod[field]
        logging.info("Component %s is running.", node)
        run_process(node, container["command"], filled, env)
        logging.info("Component %s is finished.", node)


def _fill(task: str, text: str, values: dict[str, str]) -> str:
    """`text` with its `{{inputs.parameters.X}}` placeholders from `values`; TaskFailed
    names any other."""
    def value(match: re.Match) -> str:
        key = match.group(1).strip()
        if key not in values:
            raise TaskFailed(task, f"unknown placeholder {match.group(0)} in its args", [])
        return values[key]

    return _PLACEHOLDER.sub(value, text)
