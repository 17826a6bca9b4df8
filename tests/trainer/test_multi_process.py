"""Training across processes: two real workers, a dying worker, parameter servers.

Each job runs tests/trainer/train_process.py (`train_and_export`) in subprocesses on
127.0.0.1, with a tiny MobileBERT and seq_len 32.
"""

import json
import os
import re
import signal

import pytest

from components.qa import contracts
from components.squad_transform import length_buckets
from tests.trainer import fixtures
from tests.trainer.test_strategies import checkpoint_step, encoder_moved

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 420


def _args(spec, windows, root, name, **overrides) -> dict:
    args = dict(
        spec=spec.replace(distribution_strategy=name).to_json(),
        train_files=[windows["train"]], eval_files=[windows["eval"]],
        serving_dir=str(root / "serving"), model_dir=str(root / "model"),
        train_steps=6, eval_steps=2, batch_size=8, checkpoint_every_steps=2,
    )
    args.update(overrides)
    return args


def _two_workers(args: dict, root, script: str = "train_process.py") -> tuple[list, list[str]]:
    """A chief and a worker running `script` with `args`, each with its TF_CONFIG."""
    ports = fixtures.free_ports(2)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"]}
    processes, logs = [], []
    for task in ("chief", "worker"):
        logs.append(str(root / f"{task}.log"))
        config = {"cluster": cluster, "task": {"type": task, "index": 0}}
        processes.append(fixtures.start_training(args, logs[-1], config, script))
    return processes, logs


def _two_workers_finish(args: dict, root, script: str = "train_process.py") -> tuple[str, str]:
    """Runs `_two_workers` to the end; both must exit 0. Their logs (chief, worker)."""
    processes, logs = _two_workers(args, root, script)
    try:
        codes = [p.wait(timeout=JOB_TIMEOUT_S) for p in processes]
    finally:
        for p in processes:
            p.kill()
    chief, worker = (fixtures.read(log) for log in logs)
    assert codes == [0, 0], chief[-3000:] + worker[-3000:]
    return chief, worker


def _files_under(path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, files in os.walk(path) for f in files)


def test_a_dead_worker_fails_the_survivor_clearly_without_hanging(
    tiny_spec, window_files, tmp_path
):
    args = _args(tiny_spec, window_files, tmp_path, "multi_worker_mirrored",
                 train_steps=100000, collective_timeout_s=30)
    (chief, worker), (chief_log, worker_log) = _two_workers(args, tmp_path)
    try:
        fixtures.wait_for_log(worker_log, "[worker:0] step 2/", worker, JOB_TIMEOUT_S)
        worker.send_signal(signal.SIGKILL)
        code = chief.wait(timeout=120)  # collective timeout 30s, health checks: well within
    finally:
        chief.kill()
        worker.kill()
    log = fixtures.read(chief_log)
    assert code != 0
    assert "A peer of this multi_worker_mirrored job failed or became unreachable" in log
    assert not os.path.exists(tmp_path / "serving")


def test_mirrored_on_two_logical_cpus_trains_two_replicas(tiny_spec, window_files, tmp_path):
    """Without a GPU, `mirrored` mirrors over the process's logical CPU devices: two here,
    so each step splits the batch of 8 over two replicas (one device would be one_device)."""
    log = str(tmp_path / "mirrored.log")
    process = fixtures.start_training(
        _args(tiny_spec, window_files, tmp_path, "mirrored", logical_cpus=2), log)
    code, text = fixtures.finish(process, log, JOB_TIMEOUT_S)
    assert code == 0, text[-3000:]
    assert "MirroredStrategy on ['/device:CPU:0', '/device:CPU:1']" in text
    assert "6 steps of 8 windows (2 replicas)" in text
    assert json.loads((tmp_path / "serving" / "assets.extra" / "training.json").read_text()
                      )["replicas"] == 2
    assert checkpoint_step(str(tmp_path / "model")) == 6
    assert 0 < encoder_moved(str(tmp_path / "model"), tiny_spec.uri) < 0.05


def _parameter_server_job(args: dict, root, name: str,
                          kill_chief_at: str | None = None) -> tuple[int, str]:
    """Chief, worker and ps: three processes of `train_and_export` with their TF_CONFIG, as
    each replica of a training job runs it (the worker and ps only serve:
    `strategies.serve_cluster_task`). (the chief's exit status, its log); with
    `kill_chief_at`, the chief is killed (SIGKILL) once its log shows that text."""
    ports = fixtures.free_ports(3)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"],
               "ps": [f"127.0.0.1:{ports[2]}"]}
    logs = {task: str(root / f"{name}-{task}.log") for task in ("chief", "worker", "ps")}
    servers = {task: fixtures.start_training(
        args, logs[task], {"cluster": cluster, "task": {"type": task, "index": 0}})
        for task in ("worker", "ps")}
    try:
        for task, server in servers.items():
            fixtures.wait_for_log(logs[task], f"Serving as {task}:0 of the parameter-server "
                                  "cluster", server, JOB_TIMEOUT_S)
        chief = fixtures.start_training(
            args, logs["chief"], {"cluster": cluster, "task": {"type": "chief", "index": 0}})
        if kill_chief_at:
            fixtures.wait_for_log(logs["chief"], kill_chief_at, chief, JOB_TIMEOUT_S)
            chief.send_signal(signal.SIGKILL)
        code, text = fixtures.finish(chief, logs["chief"], JOB_TIMEOUT_S)
        assert all(server.poll() is None for server in servers.values())  # still serving
    finally:
        for server in servers.values():
            server.kill()
    return code, text


def test_parameter_server_cluster_trains_and_exports(tiny_spec, window_files, tmp_path):
    """The chief cannot run a step itself: its 6 steps ran on the worker process."""
    code, text = _parameter_server_job(
        _args(tiny_spec, window_files, tmp_path, "parameter_server"), tmp_path, "job")
    assert code == 0, text[-3000:]
    assert "ParameterServerStrategy over" in text
    # Parameter servers back up at epoch ends only: epochs of checkpoint_every_steps.
    assert "[chief:0] step 2/6 (end of epoch 1)" in text
    assert "[chief:0] step 6/6 (end of epoch 3)" in text
    assert checkpoint_step(str(tmp_path / "model")) == 6
    assert os.path.exists(tmp_path / "serving" / "saved_model.pb")


def test_a_restarted_parameter_server_job_resumes_from_its_last_epoch_end(
        tiny_spec, window_files, tmp_path):
    """The chief is killed after its second epoch end (step 4 of 6); the job started again
    (all three processes, as a retried training job) resumes from the backup, not step 0."""
    args = _args(tiny_spec, window_files, tmp_path, "parameter_server")
    code, text = _parameter_server_job(args, tmp_path, "first",
                                       kill_chief_at="[chief:0] step 4/6 (end of epoch 2)")
    assert code == -signal.SIGKILL, text[-3000:]
    assert not os.path.exists(tmp_path / "serving")
    code, text = _parameter_server_job(args, tmp_path, "again")
    assert code == 0, text[-3000:]
    resumed = re.search(r"\[chief:0\] Resumed from checkpoint at step (\d+) of 6 \(epoch (\d)\)",
                        text)
    assert resumed and int(resumed[1]) in (2, 4), text[-3000:]  # an epoch end's backup
    assert int(resumed[1]) == 2 * int(resumed[2])
    assert "Training from step 0" not in text
    assert checkpoint_step(str(tmp_path / "model")) == 6
    assert os.path.exists(tmp_path / "serving" / "saved_model.pb")


def test_two_workers_through_the_tfx_trainer_executor(tiny_spec, window_files, tmp_path):
    """Vertex AI runs TFX's GenericExecutor.Do on every replica, with the same output
    artifacts: both replicas must return with the model in place, exported once. Each reads
    the length buckets from the transform_graph input (after starting its collectives)."""
    examples_uri = os.path.dirname(os.path.dirname(window_files["train"]))
    trainer = tmp_path / "Trainer"
    graph = str(tmp_path / "transform_graph")
    buckets = sorted(set(length_buckets.analyze_lengths(
        list(range(14, fixtures.SEQ_LEN + 1)) * 3, 4, fixtures.SEQ_LEN, graph)))
    args = dict(
        spec=tiny_spec.replace(distribution_strategy="multi_worker_mirrored").to_json(),
        examples_uri=examples_uri, model_uri=str(trainer / "model" / "7"),
        model_run_uri=str(trainer / "model_run" / "7"), train_steps=4, eval_steps=1,
        custom_config={"batch_size": 8, "checkpoint_every_steps": 2},
        transform_graph_uri=graph,
    )
    chief, worker = _two_workers_finish(args, tmp_path, "executor_process.py")
    assert "executor_process: Do returned" in chief and "executor_process: Do returned" in worker
    assert "2 replicas" in chief and "2 replicas" in worker
    assert "[chief:0] step 4/4" in chief and "[worker:0] step 4/4" in worker
    assert "[worker:0] Waiting for the chief's export" in worker
    assert "[worker:0] Done; the chief exported the model" in worker
    serving = trainer / "model" / "7" / "Format-Serving"
    assert os.path.exists(serving / "saved_model.pb")
    assert f"batches of one length bucket (padded to {buckets})" in chief
    record = json.loads((serving / contracts.TRAINING_RECORD).read_text())
    assert record["length_buckets"] == buckets
    (state,) = os.listdir(trainer / "training_state")  # one execution, one state dir
    assert checkpoint_step(str(trainer / "training_state" / state)) == 4
    # Nothing from the worker's temporary dirs is left, and one model was exported.
    leftovers = [f for f in _files_under(tmp_path) if "-tmp-" in f or "workertemp" in f]
    assert leftovers == []
