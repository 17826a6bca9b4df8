"""Shared test data for the trainer tests: a tiny Hub encoder and window TFRecords."""

from __future__ import annotations

import os
import socket

import numpy as np
import tensorflow as tf

SEQ_LEN = 32
QUERY_LEN = 8


def _int_feature(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def write_windows(path: str, count: int, seq_len: int = SEQ_LEN, seed: int = 0,
                  lengths: list[int] | None = None) -> str:
    """Writes `count` windows (GZIP TFRecord) whose answer span is marked by token 2000.

    The span starts right after the marker token, so a model can learn it. Window i has
    `lengths[i]` real tokens (at least QUERY_LEN + 6), then padding; all `seq_len` by default.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(count):
            length = lengths[i] if lengths else seq_len
            ids = rng.integers(1000, 1999, seq_len)
            ids[0], ids[QUERY_LEN + 1] = 101, 102
            ids[length:] = 0
            start = int(rng.integers(QUERY_LEN + 3, length - 2))
            ids[start - 1] = 2000
            feature = {
                "example_id": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[f"q{seed}-{i}".encode()])
                ),
                "window_index": _int_feature([0]),
                "input_ids": _int_feature(ids),
                "input_mask": _int_feature([1] * length + [0] * (seq_len - length)),
                "segment_ids": _int_feature(
                    [0] * (QUERY_LEN + 2) + [1] * (length - QUERY_LEN - 2)
                    + [0] * (seq_len - length)
                ),
                "start_positions": _int_feature([start]),
                "end_positions": _int_feature([start + 1]),
                "token_to_orig_map": _int_feature([-1] * seq_len),
                "token_is_max_context": _int_feature([1] * seq_len),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    return path


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_training(args: dict, log_path: str, tf_config: dict | None = None,
                   script: str = "train_process.py"):
    """Starts tests/trainer/<script> (train_process.py: `train_and_export`;
    executor_process.py: the TFX Trainer executor) with `args` (JSON) and TF_CONFIG; log to a
    file."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, script, json.dumps(args)], env=env, cwd=root,
            stdout=log, stderr=subprocess.STDOUT,
        )


def wait_for_log(path: str, text: str, process, timeout_s: float) -> None:
    """Waits until `text` is in the log at `path`; fails if `process` ends or time runs out."""
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with open(path) as f:
            if text in f.read():
                return
        if process.poll() is not None:
            raise AssertionError(f"process ended ({process.returncode}) before {text!r}")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged in {timeout_s}s")


def finish(process, log_path: str, timeout_s: float) -> tuple[int, str]:
    """Waits for `process` (killed if it outlives `timeout_s`); its exit code and log."""
    try:
        code = process.wait(timeout=timeout_s)
    finally:
        process.kill()
    return code, read(log_path)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def windows_examples_dir(window_files) -> str:
    """The Examples artifact dir holding Split-train/ and Split-eval/."""
    return os.path.dirname(os.path.dirname(window_files["train"]))


def trainer_pipeline(root, spec, window_files, base_model_uri=None, train_steps: int = 4,
                     custom_config: dict | None = None):
    """Importer(windows) [+ Importer(base model)] -> QaTrainer (TFX's Trainer with the spec
    as its execution property, as the pipeline builds it), local metadata."""
    import json

    from tfx import v1 as tfx

    from components.trainer import run_fn
    from components.trainer.component import QaTrainer

    examples = tfx.dsl.Importer(
        source_uri=windows_examples_dir(window_files),
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": json.dumps(["train", "eval"])},
    ).with_id("windows")
    components = [examples]
    base_model = None
    if base_model_uri:
        base = tfx.dsl.Importer(
            source_uri=base_model_uri, artifact_type=tfx.types.standard_artifacts.Model
        ).with_id("base_model")
        components.append(base)
        base_model = base.outputs["result"]
    trainer = QaTrainer(
        examples=examples.outputs["result"],
        spec=spec,
        base_model=base_model,
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=2),
        custom_config={run_fn.BATCH_SIZE_KEY: 4, **(custom_config or {})},
    ).with_id("Trainer")
    components.append(trainer)
    return tfx.dsl.Pipeline(
        pipeline_name="trainer_test",
        pipeline_root=str(root / "pipeline"),
        components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
    )
