"""The whole pipeline, locally, through the TFX CLI and `mbqa`, checked in ML Metadata.

One pipeline (the demo's settings, fewer steps and questions) lives through three runs:
1. `tfx run create`, started outside the checkout, killed (SIGKILL) once SquadTransform's
   execution is recorded;
2. `mbqa demo` on the same directory: finished components come from the cache, the rest
   runs, a model is pushed; the terminal shows a short report, the logs are in the log file;
3. `mbqa run` (settings from MBQA_* variables) with a new data span, another encoder (one
   layer) and seq_len (128, which the Task Library cannot run), and an unreachable F1
   threshold: the windows are cut again, the resolver offers the blessed model of run 2 as
   the Trainer's base model, the Trainer starts cold (its variables do not fit), the
   evaluator compares against it, nothing is pushed, and the exit status says so.
Runs 2 and 3 leave nothing in the temp directory.
Warm starting from a base model that fits is tested in tests/trainer/test_run_fn.py.
"""

import glob
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from pipelines.demo import demo_config, prepare_inputs
from pipelines.report import EXIT_NOT_BLESSED, EXIT_PUSHED, print_report, run_summary

# One worker runs the whole module: its module-scoped runs are not repeated per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("end_to_end")]

REPO = pathlib.Path(__file__).resolve().parents[2]
TFX = str(pathlib.Path(sys.executable).with_name("tfx"))
MBQA = str(pathlib.Path(sys.executable).with_name("mbqa"))
NAME = "mobilebert-qa-demo"
RUN_TIMEOUT_S = 900
MAX_REPORT_LINES = 60
# The e2e settings over the demo's: 30 steps give near-random answers, so no accuracy or
# quantization gate (both are tested in tests/evaluator); the Task Library gate stays on.
OVERRIDES = ["eval_steps=2", "spec.default_batch_size=8", "spec.predict_batch_size=16",
             "min_f1=0", "max_quantization_drop=100"]
ALL_NODES = {"SquadExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
             "SquadTransform", "latest_blessed_model_resolver", "Trainer", "QaEvaluator",
             "TFLitePusher"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    config = demo_config(str(out), train_steps=30).with_overrides(OVERRIDES)
    prepare_inputs(config, num_questions=60)
    env = {**os.environ, **config.to_env(), "LOCAL_HOME": str(out / "tfx_home"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    created = subprocess.run(
        [TFX, "pipeline", "create", "--engine", "local", "--pipeline_path",
         str(REPO / "pipelines" / "local_runner.py")],
        env=env, cwd=out, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert created.returncode == 0, created.stdout[-3000:]
    return config, env


def _mbqa(args, env, tmp_dir) -> tuple[subprocess.CompletedProcess, str]:
    """Runs `mbqa` with its own empty temp directory; returns it and its log file's text."""
    tmp_dir.mkdir()
    env = {**env, "TMPDIR": str(tmp_dir)}
    result = subprocess.run([MBQA, *args], env=env, cwd=tmp_dir.parent, capture_output=True,
                            text=True, timeout=RUN_TIMEOUT_S)
    log_path = None
    for line in result.stdout.splitlines()[:2]:
        if line.startswith("Log file: "):
            log_path = line.removeprefix("Log file: ")
    assert log_path and os.path.isfile(log_path), result.stdout[-3000:] + result.stderr[-3000:]
    with open(log_path, encoding="utf-8") as f:
        return result, f.read()


def _states(config):
    return run_summary(config).executions


def _wait_for(config, process, predicate, timeout_s=RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(config.resolved_metadata_path()):
            try:
                if predicate(_states(config)):
                    return True
            except Exception:  # The store may be mid-initialization; read it again.
                pass
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def killed_run(workspace):
    config, env = workspace
    process = subprocess.Popen(
        [TFX, "run", "create", "--engine", "local", "--pipeline_name", NAME], env=env,
        cwd=os.path.dirname(config.data_root),  # not the checkout: the runner finds it
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    transformed = _wait_for(config, process,
                            lambda s: "COMPLETE" in s.get("SquadTransform", []))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert transformed, "SquadTransform never completed"
    return _states(config)


@pytest.fixture(scope="module")
def rerun(workspace, killed_run, tmp_path_factory):
    config, env = workspace
    env = {k: v for k, v in env.items() if not k.startswith("MBQA_")}
    tmp_dir = tmp_path_factory.mktemp("rerun") / "tmp"
    result, log = _mbqa(["demo", "--out", os.path.dirname(config.data_root),
                         "--train-steps", "30", *(f"--set={o}" for o in OVERRIDES)],
                        env, tmp_dir)
    return _states(config), result, log, sorted(os.listdir(tmp_dir))


def test_mbqa_demo_prints_a_short_report_and_logs_the_rest_to_its_file(rerun):
    _, result, log, tmp_files = rerun
    assert result.returncode == EXIT_PUSHED, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) <= MAX_REPORT_LINES, result.stdout
    assert result.stderr == ""
    for node in ALL_NODES - {"latest_blessed_model_resolver"}:
        assert any(node in line for line in lines), node  # one line as it starts and ends
    assert any("SquadTransform cached" in line for line in lines), result.stdout
    assert any(line.startswith("Pushed model:") for line in lines), result.stdout
    # The shipped file's F1 as the device answers, beside the windowed F1; the demo's
    # passages fit in the Task Library's one window.
    device = [line for line in lines if "Task Library (tflite_dynamic): EM" in line]
    assert len(device) == 1 and "(windowed F1 " in device[0], result.stdout
    assert device[0].endswith("answers past what it reads: 0.0% of questions"), device
    assert "Component Trainer is running." in log  # TFX's own logs went to the file
    assert "tensorflow" in log.lower()
    assert tmp_files == []  # nothing left in the temp directory


def test_killed_run_stopped_after_the_transform(killed_run):
    assert killed_run["SquadExampleGen"] == ["COMPLETE"]
    assert killed_run["SquadTransform"] == ["COMPLETE"]
    assert "COMPLETE" not in killed_run.get("TFLitePusher", [])


def test_rerun_reuses_finished_components_and_completes(killed_run, rerun):
    rerun, *_ = rerun
    assert ALL_NODES <= set(rerun)
    for node, states in killed_run.items():  # finished before the kill: reused
        if node != "latest_blessed_model_resolver" and states[-1] == "COMPLETE":
            assert rerun[node] == [*states, "CACHED"], node
    for node in ALL_NODES - {"latest_blessed_model_resolver"}:
        assert rerun[node][-1] in ("COMPLETE", "CACHED"), node
    for node in ("Trainer", "QaEvaluator", "TFLitePusher"):
        assert rerun[node][-1] == "COMPLETE", node


def test_rerun_pushed_a_blessed_tflite_model(workspace, rerun):
    config, _ = workspace
    summary = run_summary(config)
    assert summary.pushed[-1]["pushed"] == 1
    assert glob.glob(os.path.join(config.push_destination, "**", "*.tflite"), recursive=True)


def test_demo_report_prints_metrics_model_and_an_answer(workspace, rerun, capsys):
    config, _ = workspace
    print_report(config)
    out = capsys.readouterr().out
    assert "metrics.json" in out and ".tflite" in out
    assert "Question:     What is the" in out and "mbqa answer:" in out


def test_the_pushed_model_answers_in_the_task_librarys_bert_question_answerer(
        workspace, rerun):
    from components.qa import squad_json, task_library

    config, _ = workspace
    version = run_summary(config).pushed[-1]["pushed_destination"]
    (example, *_), _ = squad_json.read_squad_examples(
        glob.glob(os.path.join(config.data_root, "span-1", "eval", "*.json"))[0])
    answer = task_library.answer(os.path.join(version, "model.tflite"), example.context,
                                 example.question)
    assert answer and answer.lower() in example.context.lower()
    with open(os.path.join(version, "manifest.json")) as f:
        assert json.load(f)["serving_config"]["seq_len"] == 384


def _trainer_base_models(config):
    """The base_model artifact ids given to each Trainer execution, oldest first."""
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.resolved_metadata_path()))
    trainer_context = store.get_context_by_type_and_name("node", f"{NAME}.Trainer")
    result = []
    for execution in sorted(store.get_executions_by_context(trainer_context.id),
                            key=lambda e: e.id):
        events = store.get_events_by_execution_ids([execution.id])
        inputs = [e.artifact_id for e in events
                  if any(s.HasField("key") and s.key == "base_model" for s in e.path.steps)]
        outputs = [e.artifact_id for e in events
                   if any(s.HasField("key") and s.key == "model" for s in e.path.steps)]
        result.append((inputs, outputs))
    return result


def test_new_span_and_another_encoder_start_cold_and_are_gated(workspace, rerun,
                                                               tmp_path_factory):
    config, env = workspace
    from components.qa import encoders, mobilebert, synth

    synth.make_synthetic_squad(os.path.join(config.data_root, "span-2"), n=60, seed=2)
    pushed_before = sorted(glob.glob(os.path.join(config.push_destination, "**"),
                                     recursive=True))
    states = _states(config)
    one_layer = encoders.make_encoder(
        os.path.join(os.path.dirname(config.data_root), "encoder-1-layer"),
        {**mobilebert.load_encoder_config(mobilebert.TINY_CONFIG_PATH),
         "num_hidden_layers": 1},
        tf_format=encoders.TF1,
    )
    spec = {**config.spec, "uri": one_layer, "seq_len": 128, "query_len": 32,
            "doc_stride": 64}
    tmp_dir = tmp_path_factory.mktemp("run3") / "tmp"
    result, log = _mbqa(["run"], {**env, "MBQA_SPEC": json.dumps(spec), "MBQA_MIN_F1": "100"},
                        tmp_dir)
    assert result.returncode == EXIT_NOT_BLESSED, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(result.stdout.splitlines()) <= MAX_REPORT_LINES, result.stdout
    assert "QaEvaluator complete" in result.stdout and "NOT blessed: " in result.stdout
    assert "Not pushed to " in result.stdout and "< min 100.00" in result.stdout
    assert "Task Library (tflite_dynamic): not answered: input shapes" in result.stdout
    assert os.listdir(tmp_dir) == []
    after = _states(config)
    for node in ("SquadExampleGen", "SquadTransform", "Trainer", "QaEvaluator"):
        assert len(after[node]) == len(states[node]) + 1, node  # ran again, not cached
        assert after[node][-1] == "COMPLETE", node
    trainers = [t for t in _trainer_base_models(config) if t[1]]
    (_, first_model), (base_inputs, _) = trainers[-2], trainers[-1]
    assert base_inputs == first_model  # the blessed model of run 2 was offered...
    assert "Cold start: base model" in log  # ...and not loaded: its variables do not fit
    summary = run_summary(config)
    assert after["TFLitePusher"][-1] == "COMPLETE"
    assert summary.pushed[-1]["pushed"] == 0  # gated: F1 100 is out of reach
    assert sorted(glob.glob(os.path.join(config.push_destination, "**"),
                            recursive=True)) == pushed_before


def test_a_new_span_with_the_same_encoder_warm_starts_and_pushes_version_2(
        workspace, rerun, tmp_path_factory):
    """Run 4, the scheduled retraining the README describes: span 3 arrives and the pipeline
    runs with run 2's settings. The Trainer warm-starts from run 2's blessed model (run 3's
    was not blessed), the evaluator compares with it, and version 2 is pushed beside 1.
    (max_regression 100: 30 steps on 60 questions give no stable difference to gate on.)"""
    config, env = workspace
    from components.qa import contracts, synth

    synth.make_synthetic_squad(os.path.join(config.data_root, "span-3"), n=60, seed=3)
    tmp_dir = tmp_path_factory.mktemp("run4") / "tmp"
    result, log = _mbqa(["run"], {**env, "MBQA_MAX_REGRESSION": "100"}, tmp_dir)
    assert result.returncode == EXIT_PUSHED, result.stdout[-3000:] + result.stderr[-3000:]
    trainers = [t for t in _trainer_base_models(config) if t[1]]
    (_, run2_model), _, (base_inputs, run4_model) = trainers[-3:]
    assert base_inputs == run2_model
    summary = run_summary(config)
    assert summary.pushed[-1]["pushed"] == 1 and summary.pushed[-1]["pushed_version"] == "2"
    version = summary.pushed[-1]["pushed_destination"]
    assert version == os.path.join(config.push_destination, "2")
    assert sorted(os.listdir(config.push_destination)) == ["1", "2"]
    with open(os.path.join(version, "saved_model", contracts.TRAINING_RECORD)) as f:
        warm_from = json.load(f)["warm_start_from"]
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.resolved_metadata_path()))
    (run2_uri,) = (a.uri for a in store.get_artifacts_by_id(run2_model))
    assert warm_from.startswith(run2_uri), (warm_from, run2_uri)
    assert f"warm start from {warm_from}" in result.stdout
    with open(os.path.join(summary.evaluation_uris[-1], contracts.METRICS_FILE)) as f:
        assert json.load(f)["baseline"]["model_uri"] == run2_uri
    assert "Warm start: loaded the weights of" in log
