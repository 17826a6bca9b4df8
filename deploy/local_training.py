"""Vertex AI training, locally: a CustomJob's replicas as processes of this machine.

`python -m deploy.local_training MODULE ARGS...` runs `python -m MODULE ARGS...` (a
pipeline task's own command) with one change: the Vertex AI job service client that TFX's
`VertexJobClient` creates (`google.cloud.aiplatform.gapic.JobServiceClient`) is replaced by
`LocalJobServiceClient`, so the Trainer step's CustomJob, built by TFX as for the cloud,
runs here. Each replica of each worker pool runs its container spec's command and args
(`python -m tfx.scripts.run_executor ...`, this Python standing in for the image), with
`TF_CONFIG` and `CLUSTER_SPEC` set as Vertex AI sets them
(https://cloud.google.com/vertex-ai/docs/training/distributed-training): worker pool 0 is
the `chief`, 1 the `worker`s, 2 the `ps` (parameter servers), 3 the `evaluator`.

The job succeeds when the chief (the primary replica) exits 0; the others get `GRACE_S`
to end by themselves (the workers of `multi_worker_mirrored` wait for the chief's export),
then are stopped (the servers of `parameter_server` serve until then). Any replica that
fails before fails the job.
Each replica's output goes to this process's output, every line prefixed with its name.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import runpy
import socket
import subprocess
import sys
import threading
import time
from typing import Any

# TFX's module that starts and polls Vertex AI training jobs.
RUNNER_MODULE = "tfx.extensions.google_cloud_ai_platform.runner"
# Vertex AI's TF_CONFIG task types of worker pools 0-3.
POOL_TASK_TYPES = ("chief", "worker", "ps", "evaluator")
# Seconds between TFX's polls of the job (30 for the cloud).
POLL_INTERVAL_S = 1
# Seconds the other replicas get to end by themselves once the chief has succeeded; then
# they are stopped (the servers of `parameter_server` never end by themselves).
GRACE_S = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _forward(name: str, stream) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


class LocalCustomJob:
    """The replicas of one CustomJob, started at once."""

    def __init__(self, name: str, custom_job: dict[str, Any]):
        self.name = name
        pools = custom_job["job_spec"]["worker_pool_specs"]
        cluster = {f"workerpool{i}": [f"localhost:{_free_port()}"
                                      for _ in range(int(pool.get("replica_count", 1)))]
                   for i, pool in enumerate(pools) if pool}
        tf_cluster = {POOL_TASK_TYPES[int(key[-1])]: value for key, value in cluster.items()}
        self.replicas: dict[str, subprocess.Popen] = {}
        for i, pool in enumerate(pools):
            command = list(pool["container_spec"]["command"]) + list(
                pool["container_spec"].get("args", []))
            if command[0] != "python":
                raise ValueError(f"{name}: worker pool {i} runs {command[0]!r}; only python "
                                 "commands run locally")
            for index in range(int(pool.get("replica_count", 1))):
                replica = f"workerpool{i}-{index}"
                env = {**os.environ, "PYTHONUNBUFFERED": "1",
                       "TF_CONFIG": json.dumps({
                           "cluster": tf_cluster, "environment": "cloud",
                           "task": {"type": POOL_TASK_TYPES[i], "index": index, "trial": ""},
                           "job": custom_job["job_spec"]}),
                       "CLUSTER_SPEC": json.dumps({
                           "cluster": cluster, "environment": "cloud",
                           "task": {"type": f"workerpool{i}", "index": index}})}
                process = subprocess.Popen([sys.executable, *command[1:]], env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                threading.Thread(target=_forward, args=(replica, process.stdout),
                                 daemon=True).start()
                self.replicas[replica] = process
        print(f"[{name}] started replicas {sorted(self.replicas)}", flush=True)
        self._finished_at: float | None = None

    def state(self) -> str:
        """RUNNING, SUCCEEDED or FAILED (the replicas that remain are stopped then)."""
        codes = {name: p.poll() for name, p in self.replicas.items()}
        failed = [name for name, code in codes.items() if code not in (None, 0)]
        if failed:
            self._stop(f"replicas {failed} failed")
            return "FAILED"
        if codes["workerpool0-0"] is None:
            return "RUNNING"
        self._finished_at = self._finished_at or time.monotonic()
        running = [name for name, code in codes.items() if code is None]
        if running and time.monotonic() - self._finished_at < GRACE_S:
            return "RUNNING"
        if running:
            self._stop("the chief finished")
        return "SUCCEEDED"

    def _stop(self, why: str) -> None:
        for name, process in self.replicas.items():
            if process.poll() is None:
                print(f"[{self.name}] stopping {name}: {why}", flush=True)
                process.kill()
                process.wait()


class LocalJobServiceClient:
    """What `VertexJobClient` calls of Vertex AI's job service, run on this machine."""

    def __init__(self, client_options: Any = None, **_: Any):
        self.jobs: dict[str, LocalCustomJob] = {}

    def create_custom_job(self, parent: str, custom_job: dict[str, Any]):
        from google.cloud.aiplatform_v1.types import CustomJob

        name = f"{parent}/customJobs/{len(self.jobs) + 1}"
        self.jobs[name] = LocalCustomJob(name, custom_job)
        return CustomJob(name=name)

    def get_custom_job(self, name: str, retry: Any = None):
        from google.cloud.aiplatform_v1.types import CustomJob, JobState

        state = getattr(JobState, f"JOB_STATE_{self.jobs[name].state()}")
        return CustomJob(name=name, state=state)


class _PatchRunnerOnImport(importlib.abc.MetaPathFinder):
    """Patches TFX's cloud training runner when (and only if) a step imports it."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201 (importlib API)
        if fullname != RUNNER_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module) -> None:  # noqa: ANN001
            exec_module(module)
            module.training_clients.gapic.JobServiceClient = LocalJobServiceClient
            module._POLLING_INTERVAL_IN_SECONDS = POLL_INTERVAL_S  # noqa: SLF001 (TFX's pace)

        spec.loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Makes TFX's Vertex AI training client use `LocalJobServiceClient` once a step imports
    TFX's cloud training runner (importing it here would cost every step seconds)."""
    sys.meta_path.insert(0, _PatchRunnerOnImport())


def main(argv: list[str]) -> None:
    """Runs module `argv[0]` as `python -m` would, with argv[1:], the job service local."""
    install()
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
