"""What `mbqa run` and `mbqa demo` show: short lines, logs in a file, exit statuses.

Whole runs (a pushed demo and a run that is not blessed) are in test_end_to_end.py.
"""

import logging
import os
import pathlib
import subprocess
import sys

import pytest

from pipelines import report, run_console
from pipelines.config import PipelineConfig

MBQA = str(pathlib.Path(sys.executable).with_name("mbqa"))


def _tf1_module(path: pathlib.Path) -> str:
    (path / "assets").mkdir(parents=True)
    for name in ("saved_model.pb", "tfhub_module.pb"):
        (path / name).write_bytes(b"")
    (path / "assets" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return str(path)


def _mbqa(args, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MBQA_")}
    return subprocess.run([MBQA, *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**environ, **env}, timeout=120)


def test_an_is_tf2_mismatch_fails_before_the_first_component(tmp_path):
    (tmp_path / "data").mkdir()
    root = tmp_path / "root"
    result = _mbqa(["run", f"--set=spec.uri={_tf1_module(tmp_path / 'tf1')}",
                    "--set=spec.is_tf2=True", f"--set=data_root={tmp_path / 'data'}",
                    f"--set=pipeline_root={root}", f"--set=push_destination={tmp_path / 's'}"],
                   tmp_path)
    assert result.returncode == report.EXIT_BAD_SETTINGS
    assert result.stdout == ""
    assert "spec.is_tf2" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 3, result.stderr
    assert not (root / "metadata.sqlite").exists()  # no component ran


def test_unknown_settings_and_variables_are_one_line_errors(tmp_path):
    result = _mbqa(["run", "--set=train_step=5"], tmp_path)
    assert result.returncode == report.EXIT_BAD_SETTINGS
    assert "train_step" in result.stderr and "Traceback" not in result.stderr
    result = _mbqa(["run"], tmp_path, MBQA_TRAIN_STEP="5")
    assert result.returncode == report.EXIT_BAD_SETTINGS
    assert "MBQA_TRAIN_STEP" in result.stderr and "Traceback" not in result.stderr


def test_output_goes_to_the_log_file_and_the_console_gets_the_lines(tmp_path, capfd):
    log_path = str(tmp_path / "logs" / "run.log")
    with run_console.output_to_log(log_path, verbose=False) as console:
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
        print("python print")
        logging.getLogger("absl").warning("a TFX warning")
        print("for the person", file=console)
    captured = capfd.readouterr()
    assert "for the person" in captured.out
    for text in ("native stdout", "native stderr", "python print"):
        assert text not in captured.out + captured.err
    log = pathlib.Path(log_path).read_text()
    for text in ("native stdout", "native stderr", "python print"):
        assert text in log
    os.write(1, b"after\n")  # the descriptors are restored
    assert "after" in capfd.readouterr().out


def test_component_lines_name_the_component_and_its_failure(tmp_path):
    config = PipelineConfig(pipeline_root=str(tmp_path / "root"))
    console = tmp_path / "console.txt"
    with open(console, "w") as out:
        lines = run_console.ComponentLines(out, config)
        logger = logging.getLogger("test_component_lines")
        logger.addHandler(lines)
        logger.setLevel(logging.INFO)
        logger.info("Component %s is running.", "Trainer")
        logger.info("Something else")
        lines.failed(RuntimeError("out of memory\nmore detail"))
        logger.removeHandler(lines)
    text = console.read_text().splitlines()
    assert len(text) == 2
    assert text[0].endswith("Trainer ...")
    assert text[1].endswith("Trainer FAILED: RuntimeError: out of memory")


def test_a_failed_run_exits_1_and_points_to_the_log(tmp_path, capfd):
    config = PipelineConfig(pipeline_root=str(tmp_path / "root"))

    def prepare():
        raise OSError("disk full")

    status = run_console.run_and_report(config, prepare=prepare)
    assert status == report.EXIT_FAILED
    out = capfd.readouterr().out
    log_path = out.splitlines()[0].removeprefix("Log file: ")
    assert "FAILED: OSError: disk full" in out and f"Details: {log_path}" in out
    assert "disk full" in pathlib.Path(log_path).read_text()  # with its traceback
    assert "Traceback" in pathlib.Path(log_path).read_text()


def test_a_component_failing_in_the_local_runner_exits_1_and_is_named(tmp_path, capfd):
    """SquadExampleGen fails inside TFX's LocalDagRunner (its train file is not JSON): the
    run stops there, exit status 1, the component and its error on the terminal."""
    data = tmp_path / "data"
    for split in ("train", "eval"):
        (data / split).mkdir(parents=True)
    (data / "train" / "train.json").write_text("{not json")
    (data / "eval" / "eval.json").write_text('{"version": "1.1", "data": []}')
    config = PipelineConfig(
        pipeline_root=str(tmp_path / "root"), data_root=str(data),
        push_destination=str(tmp_path / "serving"),
        spec={"uri": _tf1_module(tmp_path / "tf1")})
    status = run_console.run_and_report(config)
    out = capfd.readouterr().out
    assert status == report.EXIT_FAILED, out
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "SquadExampleGen FAILED: " in failed[0], out
    assert "train.json" in failed[0], failed
    assert report.run_summary(config).executions["SquadExampleGen"] == ["FAILED"]
    assert "Trainer" not in report.run_summary(config).executions


@pytest.mark.parametrize("blessed", [True, False])
def test_evaluation_figures_show_squad2_scores_and_the_failed_checks(blessed):
    official = {"exact": 50.0, "f1": 60.0, "HasAns_f1": 70.0, "NoAns_f1": 50.0,
                "best_f1_thresh": -1.5}
    evaluation = {
        "num_questions": 10, "eval_split": "eval",
        "models": {"saved_model": {"exact_match": 50.0, "f1": 60.0, "official": official}},
        "blessing": {"blessed": blessed, "reasons": ["a", "b"], "checks": [
            {"name": "thresholds", "passed": True, "detail": "EM fine"},
            {"name": "thresholds", "passed": blessed, "detail": "F1 60.00 < min 70.00"},
        ]},
    }
    lines = run_console.evaluation_figures(evaluation)
    assert lines[0] == "10 eval questions"
    assert "HasAns F1  70.00" in lines[1] and "NoAns F1  50.00" in lines[1]
    assert "best threshold -1.500" in lines[1]
    assert lines[-1] == ("blessed: 2 checks passed" if blessed else
                         "NOT blessed: F1 60.00 < min 70.00")
