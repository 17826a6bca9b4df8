"""The six distribution strategies of `spec.distribution_strategy`, and who may write what.

- `off`: the default strategy; `one_device`: `/gpu:0` if there is a GPU, else `/cpu:0`;
  `mirrored`: all GPUs (`num_gpus=-1`) or the first `num_gpus`; without a GPU, every
  logical CPU device (one, unless the process configured more).
- `multi_worker_mirrored`: every replica runs the Trainer with `TF_CONFIG` set (as Vertex
  AI does: `cluster` with `chief`/`worker`, `task` type and index); collectives time out
  after `collective_timeout_s`, so a dead peer fails the survivors instead of hanging them.
- `parameter_server`: the chief coordinates (`TFConfigClusterResolver`); `worker` and `ps`
  tasks only serve (`serve_cluster_task`).
- `tpu`: `TPUClusterResolver(tpu=spec.tpu)`, connect, initialize, `TPUStrategy`.

Only the chief writes final outputs; other workers write to temporary dirs
(`write_dir`) and delete them (`remove_temp_dir`), as in TF's multi-worker Keras tutorial.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse

import tensorflow as tf
from absl import logging

from components.qa import spec as spec_lib

DEFAULT_COLLECTIVE_TIMEOUT_S = 300.0
CLUSTER_SERVER_TASKS = ("worker", "ps")


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {raw!r}") from error


def cluster_task() -> tuple[str | None, int]:
    """This process's `(task type, index)` from `TF_CONFIG`, `(None, 0)` without one."""
    task = _tf_config().get("task", {})
    return task.get("type"), int(task.get("index", 0))


def _require_cluster(strategy_name: str, roles: tuple[str, ...]) -> dict:
    config = _tf_config()
    cluster = config.get("cluster") or {}
    task = config.get("task") or {}
    if not cluster or "type" not in task:
        raise ValueError(
            f"distribution_strategy={strategy_name!r} needs TF_CONFIG with 'cluster' and "
            f"'task' (as Vertex AI sets it); TF_CONFIG is {os.environ.get('TF_CONFIG')!r}"
        )
    missing = [role for role in roles if role not in cluster]
    if missing:
        raise ValueError(
            f"distribution_strategy={strategy_name!r} needs TF_CONFIG cluster roles "
            f"{list(roles)}; it has {sorted(cluster)}"
        )
    return config


def _gpus() -> list[str]:
    return [d.name.replace("physical_device:", "") for d in tf.config.list_physical_devices("GPU")]


def make_strategy(
    spec: spec_lib.BertQaSpec, collective_timeout_s: float = DEFAULT_COLLECTIVE_TIMEOUT_S
) -> tf.distribute.Strategy:
    """The strategy named by `spec.distribution_strategy`; call it before building models.

    Raises ValueError (or RuntimeError for an unreachable TPU) with a message that says
    what is missing.
    """
    name = spec.distribution_strategy
    if name == "off":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = "/gpu:0" if _gpus() else "/cpu:0"
        logging.info("OneDeviceStrategy on %s", device)
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        gpus = _gpus()
        if spec.num_gpus > len(gpus):
            raise ValueError(f"num_gpus={spec.num_gpus} but only {len(gpus)} GPU(s) are visible")
        devices = (gpus if spec.num_gpus == -1 else gpus[: spec.num_gpus]) or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        logging.info("MirroredStrategy on %s", devices)
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        _require_cluster(name, ("chief",))
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout_s
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        logging.info(
            "MultiWorkerMirroredStrategy: task %s, %d replicas, collective timeout %ss",
            cluster_task(), strategy.num_replicas_in_sync, collective_timeout_s,
        )
        return strategy
    if name == "parameter_server":
        _require_cluster(name, ("chief", "worker", "ps"))
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
        logging.info("ParameterServerStrategy over %s", resolver.cluster_spec().as_dict())
        return strategy
    if name == "tpu":
        return _tpu_strategy(spec.tpu)
    raise ValueError(f"distribution_strategy={name!r} is not one of {spec_lib.STRATEGIES}")


def tpu_cluster_resolver(tpu: str) -> tf.distribute.cluster_resolver.TPUClusterResolver:
    """The resolver of the TPU at `tpu` (a name, or a `grpc://host:port` address)."""
    if not tpu:
        raise ValueError(
            "distribution_strategy='tpu' needs spec.tpu: a TPU name or grpc:// address"
        )
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except (ValueError, RuntimeError, ImportError) as error:
        raise RuntimeError(f"Cannot resolve the TPU {tpu!r}: {error}") from error


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    parsed = urllib.parse.urlparse(address)
    if not (parsed.hostname and parsed.port):
        return
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s):
            pass
    except OSError as error:
        raise RuntimeError(f"The TPU at {address!r} is not reachable: {error}") from error


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    resolver = tpu_cluster_resolver(tpu)
    master = resolver.master()
    _check_reachable(master)
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, ValueError, RuntimeError) as error:
        raise RuntimeError(f"Cannot start the TPU {tpu!r} ({master}): {error}") from error
    logging.info("TPUStrategy on %s", master)
    return tf.distribute.TPUStrategy(resolver)


def serve_cluster_task(spec: spec_lib.BertQaSpec) -> bool:
    """Under `parameter_server`, runs this `worker`/`ps` task's server until the job ends.

    Returns False at once for every other strategy or task (the caller trains).
    """
    task_type, task_index = cluster_task()
    if spec.distribution_strategy != "parameter_server" or task_type not in CLUSTER_SERVER_TASKS:
        return False
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        resolver.cluster_spec(), job_name=task_type, task_index=task_index,
        protocol=resolver.rpc_layer or "grpc", start=True,
    )
    logging.info("Serving as %s:%d of the parameter-server cluster", task_type, task_index)
    server.join()
    return True


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes final outputs (always, but for non-chief workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def write_dir(path: str, strategy: tf.distribute.Strategy) -> str:
    """`path` for the chief; a per-worker temporary sibling of it for the other workers."""
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    parent, base = os.path.split(path.rstrip("/"))
    return os.path.join(parent, f".{base}-tmp-{resolver.task_type}-{resolver.task_id}")


def remove_temp_dir(path: str, strategy: tf.distribute.Strategy) -> None:
    """Deletes what a non-chief worker wrote to `write_dir(path, strategy)`."""
    if not is_chief(strategy):
        temp = write_dir(path, strategy)
        if tf.io.gfile.exists(temp):
            tf.io.gfile.rmtree(temp)
