"""SquadExampleGen: a file-based TFX ExampleGen for SQuAD v1.1/v2.0 JSON.

Works like any `FileBasedExampleGen` (`input_base`, `input_config`, `output_config`,
`range_config` with `{SPAN}`/`{VERSION}` patterns), with two SQuAD-specific defaults:

- input: one split of every `*.json*` file (`.json` and gzip-compressed `.json.gz`)
  under `input_base`;
- output: TFX's hash split `train`:`eval` = 2:1, keyed on the passage: the split's
  `partition_feature_name` is set to the `context` feature (when a hash-split
  `output_config` does not name one), so all questions about one passage land in the
  same split.
"""

from __future__ import annotations

from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs

from components.qa import squad
from components.squad_example_gen import executor

DEFAULT_INPUT_PATTERN = "*.json*"
PASSAGE_KEY_FEATURE = squad.CONTEXT


class SquadExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's spec plus `skip_invalid`."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.SKIP_INVALID_KEY: component_spec.ExecutionParameter(type=bool, optional=True),
    }


def passage_keyed(output_config: example_gen_pb2.Output) -> example_gen_pb2.Output:
    """A copy of `output_config` whose hash split is keyed on the passage, unless it
    already names a `partition_feature_name` (or has no hash split)."""
    result = example_gen_pb2.Output()
    result.CopyFrom(output_config)
    split_config = result.split_config
    if split_config.splits and not split_config.HasField("partition_feature_name"):
        split_config.partition_feature_name = PASSAGE_KEY_FEATURE
    return result


class SquadExampleGen(FileBasedExampleGen):
    """Reads SQuAD JSON files (local, gs://, .json.gz) into one tf.Example per question.

    Output: `examples` (standard Examples artifact, gzipped TFRecords of tf.Example with
    the features of `components.qa.squad`), with the custom properties `num_questions`,
    `num_examples` and `num_skipped`, and the report `invalid_records.json` at its URI.
    """

    SPEC_CLASS = SquadExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        input_base: str | None = None,
        input_config: example_gen_pb2.Input | data_types.RuntimeParameter | None = None,
        output_config: example_gen_pb2.Output | data_types.RuntimeParameter | None = None,
        range_config: range_config_pb2.RangeConfig | data_types.RuntimeParameter | None = None,
        skip_invalid: bool = False,
    ):
        """Builds the component.

        Args:
          input_base: directory (local or gs://) holding the SQuAD files.
          input_config: input splits (file patterns relative to `input_base`, may hold
            `{SPAN}`); default: one split of `*.json*`.
          output_config: output splits; a hash split is keyed on the passage unless it
            names `partition_feature_name`; default: `train`:`eval` = 2:1 when there is
            one input split, else the input splits.
          range_config: which spans to read (TFX's `RangeConfig`); default: the latest.
          skip_invalid: False (default): the first invalid question fails the run with
            an error naming the file, the question id and the field. True: invalid
            questions are skipped, counted and listed in `invalid_records.json`. Whole-file
            errors (unreadable, empty, not JSON, not SQuAD) always fail.
        """
        input_config = input_config or utils.make_default_input_config(DEFAULT_INPUT_PATTERN)
        output_config = output_config or utils.make_default_output_config(input_config)
        if isinstance(output_config, example_gen_pb2.Output):
            output_config = passage_keyed(output_config)
        spec = SquadExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            range_config=range_config,
            skip_invalid=skip_invalid,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=channel.Channel(type=standard_artifacts.Examples),
        )
        # FileBasedExampleGen.__init__ builds its own spec class, which has no
        # `skip_invalid`; the component still is a FileBasedExampleGen, so the runners
        # (Vertex AI included) run its span-resolving driver.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
