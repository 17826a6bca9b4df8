"""The `mbqa` help: every command described, every option's default shown, `mbqa settings`."""

import argparse
import dataclasses
import os
import re
import subprocess
import sys

import pytest

from pipelines.cli import build_parser, main
from pipelines.config import PipelineConfig
from pipelines.demo import DEMO_TRAIN_STEPS

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parsers(parser: argparse.ArgumentParser):
    """`parser` and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                yield from _parsers(subparser)


PARSERS = {parser.prog: parser for parser in _parsers(build_parser())}


def _options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_every_command_has_a_description(prog):
    assert PARSERS[prog].description, f"{prog} has no description"


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_every_option_has_help_that_shows_its_default(prog):
    for action in _options(PARSERS[prog]):
        name = f"{prog} {action.option_strings[-1]}"
        assert action.help, f"{name} has no help"
        # Required options, flags (store_true/false) and empty defaults have no default to show.
        if action.required or action.nargs == 0 or action.default in (None, []):
            continue
        assert "default" in action.help, f"{name}: its help does not show its default"
        shown = {str(action.default)} | (
            {f"{action.default:g}"} if isinstance(action.default, float) else set())
        assert any(text in action.help for text in shown), f"{name}: help lacks the default"


def test_demo_shows_its_real_default_training_steps():
    help_texts = {a.dest: a.help for a in _options(PARSERS["mbqa demo"])}
    assert f"(default: {DEMO_TRAIN_STEPS}," in help_texts["train_steps"]


@pytest.mark.parametrize("command", ["run", "compile", "demo"])
def test_pipeline_commands_end_with_settings_and_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "`mbqa settings` lists every setting" in out
    assert f"\n  mbqa {command} --" in out.partition("\nexamples:\n")[2]


def test_settings_lists_every_setting_with_type_default_and_variable(capsys):
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for field in dataclasses.fields(PipelineConfig):
        assert re.search(rf"^{field.name} \({re.escape(str(field.type))}, default .+, "
                         rf"MBQA_{field.name.upper()}\)$", out, re.M), field.name
    assert "train_steps (int, default 1000, MBQA_TRAIN_STEPS)\n    training steps" in out
    assert "enable_cache (bool, default true, MBQA_ENABLE_CACHE)" in out


@pytest.mark.parametrize("argv", [
    ["run", "--set", "min_f1=101"],
    ["compile", "--target", "vertex", "--out", "job.json", "--set", "min_f1=101"],
    ["compile", "--target", "kubeflow", "--out", "job.tar.gz", "--set", "spec.bogus=1"],
])
def test_settings_checks_of_run_and_compile_do_not_import_tensorflow(argv, tmp_path):
    """README: invalid settings fail with exit status 2 before TensorFlow is imported."""
    code = ("import sys; from pipelines.cli import main\n"
            "try:\n    status = main(sys.argv[1:])\n"
            "except SystemExit as exit:\n    status = exit.code\n"
            "assert status == 2, status\n"
            "assert not [m for m in sys.modules if m.startswith('tensorflow')]")
    env = dict(os.environ, PYTHONPATH=str(_REPO_ROOT), HOME=str(tmp_path))
    subprocess.run([sys.executable, "-c", code, *argv], check=True, cwd=tmp_path,
                   capture_output=True, env=env)
    assert not os.listdir(tmp_path)  # nothing compiled


def test_settings_and_help_do_not_import_tensorflow():
    code = ("import sys; from pipelines.cli import main; main(['settings']); "
            "assert not [m for m in sys.modules if m.startswith('tensorflow')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_REPO_ROOT,
                   capture_output=True)
