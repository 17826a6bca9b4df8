"""SquadExampleGen: a file-based TFX ExampleGen for SQuAD v1.1/v2.0 question files.

Reads SQuAD's nested JSON, and flat files of one record per question in the Hugging Face
`datasets` SQuAD layout or SQuAD's fields: JSON lines (`*.jsonl`, `*.jsonl.gz`) and
Parquet (`*.parquet`); the format is chosen by each file's name
(`components.qa.squad_json` describes them).

Works like any `FileBasedExampleGen` (`input_base`, `input_config`, `output_config`,
`range_config` with `{SPAN}`/`{VERSION}` patterns), with two SQuAD-specific defaults:

- input: one split of every `*.json*` file (`.json`, `.json.gz`, `.jsonl`, `.jsonl.gz`)
  under `input_base`. Parquet needs an explicit pattern (e.g. `*.parquet`, or `*` for a
  directory of mixed files): a TFX split pattern is one glob, without `{a,b}`
  alternatives (braces are TFX's `{SPAN}` placeholders), and a wider default glob
  would also take other files;
- output: TFX's hash split `train`:`eval` = 2:1, keyed on the passage: the split's
  `partition_feature_name` is set to the `context` feature (when a hash-split
  `output_config` does not name one), so all questions about one passage land in the
  same split.
"""

from __future__ import annotations

import json
import re

from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs

from components.qa import squad
from components.squad_example_gen import executor, spans

DEFAULT_INPUT_PATTERN = "*.json*"
PASSAGE_KEY_FEATURE = squad.CONTEXT


class SquadExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's spec plus `skip_invalid` and the span settings."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.SKIP_INVALID_KEY: component_spec.ExecutionParameter(type=bool, optional=True),
        spans.REQUESTED_SPAN_KEY: component_spec.ExecutionParameter(type=int, optional=True),
        spans.TRAINING_SPANS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
        spans.SPAN_PATTERNS_KEY: component_spec.ExecutionParameter(type=str, optional=True),
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


def span_patterns(input_config: example_gen_pb2.Input | data_types.RuntimeParameter,
                  requested_span: int | data_types.RuntimeParameter,
                  training_spans: int) -> str | None:
    """The input patterns by split (JSON) when they hold `{SPAN}`, for the executor to read
    other spans than the latest (drivers replace `{SPAN}` in `input_config`)."""
    span_settings = isinstance(requested_span, data_types.RuntimeParameter) or (
        requested_span or training_spans != 1)
    if not isinstance(input_config, example_gen_pb2.Input):
        if span_settings:
            raise ValueError("requested_span and training_spans need a constant input_config")
        return None
    patterns = {split.name: split.pattern for split in input_config.splits}
    readable = all(spans.has_span(p) and not re.search(utils.VERSION_FULL_REGEX, p)
                   for p in patterns.values())
    if span_settings and not readable:
        raise ValueError(f"requested_span and training_spans need {{SPAN}}, and no "
                         f"{{VERSION}}, in every input pattern: {patterns}")
    return json.dumps(patterns, sort_keys=True) if readable else None


class SquadExampleGen(FileBasedExampleGen):
    """Reads SQuAD files (nested JSON, JSON lines, Parquet; local or gs://; gzip for JSON)
    into one tf.Example per question.

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
        requested_span: int | data_types.RuntimeParameter = 0,
        training_spans: int = 1,
    ):
        """Builds the component.

        Args:
          input_base: directory (local or gs://) holding the SQuAD files.
          input_config: input splits (file patterns relative to `input_base`, may hold
            `{SPAN}`); default: one split of `*.json*` (Parquet files need a pattern
            that matches them, e.g. `*.parquet`).
          output_config: output splits; a hash split is keyed on the passage unless it
            names `partition_feature_name`; default: `train`:`eval` = 2:1 when there is
            one input split, else the input splits.
          range_config: which spans to read (TFX's `RangeConfig`); default: the latest.
          skip_invalid: False (default): the first invalid question fails the run with
            an error naming the file, the question id and the field. True: invalid
            questions are skipped, counted and listed in `invalid_records.json`. Whole-file
            errors (unreadable, empty, not JSON or Parquet, not SQuAD, a Parquet column
            missing) always fail.
          requested_span: the span to read (input patterns hold `{SPAN}`); 0 = the latest.
            A span without files fails the run, naming the patterns and the spans found.
          training_spans: the spans every input split but 'eval' reads: 1 = the span only,
            N = the last N spans up to it, 0 = all of them (`spans.choose_spans`).
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
            requested_span=requested_span,
            training_spans=training_spans,
            span_patterns=span_patterns(input_config, requested_span, training_spans),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=channel.Channel(type=standard_artifacts.Examples),
        )
        # FileBasedExampleGen.__init__ builds its own spec class, which has no
        # `skip_invalid`; the component still is a FileBasedExampleGen, so the runners
        # (Vertex AI included) run its span-resolving driver.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
