"""SquadTransform: one tf.Example per question -> one tf.Example per sliding window.

A custom Beam component (runs on the DirectRunner locally and on any Beam runner through
the pipeline's `beam_pipeline_args`). Output: `transformed_examples`, a standard Examples
artifact with the input's split names, GZIP TFRecords of window tf.Examples
(docs/architecture.md, "Windows"), the custom properties `num_questions`, `num_windows`,
`num_skipped`, `num_no_windows`, and at its URI `window_stats.json` (counts per split, the
length buckets) and `skipped-<split>.jsonl` (questions skipped because the answer is not in
the passage); and `transform_graph`, a TransformGraph artifact: the tf.Transform analysis of
the training windows' lengths into buckets (`components.squad_transform.length_buckets`),
which the Trainer reads to batch windows of similar length.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import channel, component_spec, standard_artifacts

from components.qa import spec as spec_lib
from components.squad_transform import executor


class SquadTransformSpec(types.ComponentSpec):
    """Questions and the windowing settings (JSON) in, windows out."""

    PARAMETERS = {
        executor.WINDOWING_KEY: component_spec.ExecutionParameter(type=str),
        executor.LENGTH_BUCKETS_KEY: component_spec.ExecutionParameter(type=int),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        executor.TRANSFORMED_EXAMPLES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Examples
        ),
        executor.TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.TransformGraph
        ),
    }


class SquadTransform(base_beam_component.BaseBeamComponent):
    """Cuts each question into BERT's classic SQuAD windows (`components.qa.windows`).

    The vocab is the encoder module's `assets/vocab.txt` (`spec.uri`); `seq_len`,
    `query_len`, `doc_stride` and `do_lower_case` come from the spec. Only these are the
    component's execution property (its cache key): a change of any other spec parameter
    reuses the windows. All splits are windowed in training mode (with answer positions).
    The training windows' lengths are analysed into `length_buckets` buckets (0: none).
    """

    SPEC_CLASS = SquadTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        spec: spec_lib.BertQaSpec | str | data_types.RuntimeParameter,
        length_buckets: int,
    ):
        """Builds the component.

        Args:
          examples: SquadExampleGen's questions (Examples, tf.Example payload).
          spec: the model spec, or its JSON (`spec.to_json()`), or a RuntimeParameter
            holding the JSON (then the whole spec is the cache key).
          length_buckets: how many buckets of about equal counts the training windows'
            lengths are split into (tf.Transform quantiles); 0 skips the analysis and
            leaves `transform_graph` empty.
        """
        if length_buckets < 0 or length_buckets == 1:
            raise ValueError(f"SquadTransform: length_buckets={length_buckets} must be 0 (off) "
                             "or >= 2")
        if isinstance(spec, str):
            spec = spec_lib.spec_from_json(spec)  # fails now, naming the problem, if invalid
        windowing = executor.windowing_json(spec) if isinstance(spec, spec_lib.BertQaSpec) else spec
        super().__init__(spec=SquadTransformSpec(
            examples=examples,
            windowing=windowing,
            length_buckets=length_buckets,
            transformed_examples=channel.Channel(type=standard_artifacts.Examples),
            transform_graph=channel.Channel(type=standard_artifacts.TransformGraph),
        ))
