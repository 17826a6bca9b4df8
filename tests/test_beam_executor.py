"""`components.beam_executor`: TFX's Beam executor without its sdist on the DirectRunner (for
every Beam component of the package), and the threads each DirectRunner worker gets."""

import os

import pytest
from tfx.utils import dependency_utils

from components import beam_executor
from components.evaluator import executor as evaluator_executor
from components.squad_example_gen import executor as example_gen_executor
from components.squad_transform import executor as transform_executor


@pytest.mark.parametrize("executor_class", [
    example_gen_executor.Executor, transform_executor.Executor, evaluator_executor.Executor])
def test_no_ephemeral_package_on_the_direct_runner(monkeypatch, executor_class):
    """TFX's sdist of itself is for remote workers: built for Dataflow, not the DirectRunner."""
    built = []
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package",
                        lambda: built.append(1) or "/tmp/tfx_ephemeral.tar.gz")

    def beam_args(args):
        context = executor_class.Context(beam_pipeline_args=args)
        return executor_class(context)._beam_pipeline_args

    for args in (["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
                 ["--runner=DirectRunner"], ["--runner=direct"]):
        result = beam_args(args)
        assert result[:len(args)] == args
        assert not any("extra_package" in a for a in result)
        assert any(a.startswith("--labels") for a in result)  # TFX's telemetry labels, kept
    assert not built
    dataflow = ["--runner=DataflowRunner", "--project=p", "--region=r"]
    assert "--extra_package=/tmp/tfx_ephemeral.tar.gz" in beam_args(dataflow)
    assert built == [1]
    assert beam_args([]) == []
    assert beam_executor.runs_on_direct_runner([])
    assert not beam_executor.runs_on_direct_runner(["--runner=PortableRunner"])


def test_each_direct_runner_worker_gets_its_share_of_the_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert beam_executor.threads_per_worker([]) == 8  # the default: one worker
    assert beam_executor.threads_per_worker(["--direct_num_workers=2"]) == 4
    assert beam_executor.threads_per_worker(["--direct_num_workers=3"]) == 2
    assert beam_executor.threads_per_worker(["--direct_num_workers=0"]) == 1  # one per CPU
    assert beam_executor.threads_per_worker(["--direct_num_workers=16"]) == 1
    assert beam_executor.threads_per_worker(["--runner=DataflowRunner"]) is None
