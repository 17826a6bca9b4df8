"""TFX's Beam executor without its ephemeral package on the DirectRunner.

Given Beam args without `--extra_packages`, `--setup_file`, `--requirements_file` or a
container image, `BaseBeamExecutor.__init__` copies TFX's installation and runs `setup.py
sdist` on it (`dependency_utils.make_beam_dependency_flags`, seconds per component run:
README, Benchmarks) so that remote workers can install TFX. The DirectRunner's workers are
processes of this Python installation and never install that package.
`SkipEphemeralPackageOnDirectRunner`, put before a TFX Beam executor class in the bases,
does the rest of TFX's work (telemetry labels, absl flags) without it on the DirectRunner;
other runners (Dataflow) get TFX's behaviour unchanged.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from typing import Any

from absl import flags
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from tfx.dsl.components.base import base_beam_executor
from tfx.utils import name_utils, telemetry_utils

from components.qa import inference

# `--runner` values (the last dotted part, lower case) of the DirectRunner; none is Beam's
# default, the DirectRunner.
DIRECT_RUNNERS = ("direct", "directrunner", "switchingdirectrunner", "bundlebaseddirectrunner")


def runs_on_direct_runner(beam_pipeline_args: Sequence[Any]) -> bool:
    """Whether the Beam args select the DirectRunner (the default when `--runner` is not
    given), whose workers are processes or threads of this machine's Python."""
    if not all(isinstance(arg, str) for arg in beam_pipeline_args):  # unresolved placeholders
        return False
    runner = PipelineOptions(list(beam_pipeline_args)).view_as(StandardOptions).runner
    if runner is None:
        return True
    return isinstance(runner, str) and runner.rsplit(".", 1)[-1].lower() in DIRECT_RUNNERS


def threads_per_worker(beam_pipeline_args: Sequence[Any]) -> int | None:
    """The CPU threads each DirectRunner worker may use (this machine's CPUs shared among
    `--direct_num_workers`, 0 meaning one per CPU); None on other runners, whose workers
    keep their runtime's default (Dataflow runs a Python process per vCPU)."""
    if not runs_on_direct_runner(beam_pipeline_args):
        return None
    cpus = inference.available_cpus()
    workers = PipelineOptions(list(beam_pipeline_args)).view_as(DirectOptions).direct_num_workers
    return max(1, cpus // (workers or cpus))


class SkipEphemeralPackageOnDirectRunner:
    """Mixin for a `BaseBeamExecutor` subclass: TFX's `__init__` without the ephemeral
    package when the Beam args select the DirectRunner."""

    def __init__(self, context: base_beam_executor.BaseBeamExecutor.Context | None = None):
        args = getattr(context, "beam_pipeline_args", None) or []
        if not isinstance(context, base_beam_executor.BaseBeamExecutor.Context) or not (
            args and runs_on_direct_runner(args)
        ):
            super().__init__(context)
            return
        without_args = copy.copy(context)
        without_args.beam_pipeline_args = None
        super().__init__(without_args)
        with telemetry_utils.scoped_labels(
            {telemetry_utils.LABEL_TFX_EXECUTOR: name_utils.get_full_name(self.__class__)}
        ):
            self._beam_pipeline_args = list(args) + telemetry_utils.make_beam_labels_args()
        flags.FLAGS(sys.argv + self._beam_pipeline_args, known_only=True)
