"""Running SquadExampleGen's executor on real artifacts, and reading what it wrote."""

import json
import os
import pathlib

import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts

from components.qa import contracts, squad
from components.squad_example_gen import component, executor


def read_split(examples: standard_artifacts.Examples, split: str) -> list[squad.SquadExample]:
    """The questions written to one split of an Examples artifact."""
    files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    assert files, f"no files in split {split}"
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [squad.from_tf_example(record.numpy()) for record in dataset]


def read_report(examples: standard_artifacts.Examples) -> dict:
    with tf.io.gfile.GFile(os.path.join(examples.uri, contracts.INVALID_RECORDS_FILE)) as f:
        return json.load(f)


def run_executor(
    work_dir: pathlib.Path, input_base: pathlib.Path, **component_args
) -> standard_artifacts.Examples:
    """Runs the executor's Do as a TFX runner would: the component's exec properties
    (protos as JSON), a real Examples artifact under `work_dir`, a real Beam pipeline."""
    gen = component.SquadExampleGen(input_base=str(input_base), **component_args)
    exec_properties = dict(gen.exec_properties)
    examples = standard_artifacts.Examples()
    examples.uri = str(work_dir / "examples")
    context = base_beam_executor.BaseBeamExecutor.Context(
        tmp_dir=str(work_dir / "tmp"), unique_id="1"
    )
    executor.Executor(context).Do({}, {"examples": [examples]}, exec_properties)
    return examples
