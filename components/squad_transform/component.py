"""SquadTransform: one tf.Example per question -> one tf.Example per sliding window.

A custom Beam component (runs on the DirectRunner locally and on any Beam runner through
the pipeline's `beam_pipeline_args`). Output: `transformed_examples`, a standard Examples
artifact with the input's split names, GZIP TFRecords of window tf.Examples
(docs/architecture.md, "Windows"), the custom properties `num_questions`, `num_windows`,
`num_skipped`, `num_no_windows`, and at its URI `window_stats.json` (counts per split) and
`skipped-<split>.jsonl` (questions skipped because the answer is not in the passage).
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
    }
    INPUTS = {
        executor.EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        executor.TRANSFORMED_EXAMPLES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Examples
        ),
    }


class SquadTransform(base_beam_component.BaseBeamComponent):
    """Cuts each question into BERT's classic SQuAD windows (`components.qa.windows`).

    The vocab is the encoder module's `assets/vocab.txt` (`spec.uri`); `seq_len`,
    `query_len`, `doc_stride` and `do_lower_case` come from the spec. Only these are the
    component's execution property (its cache key): a change of any other spec parameter
    reuses the windows. All splits are windowed in training mode (with answer positions).
    """

    SPEC_CLASS = SquadTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        spec: spec_lib.BertQaSpec | str | data_types.RuntimeParameter,
    ):
        """Builds the component.

        Args:
          examples: SquadExampleGen's questions (Examples, tf.Example payload).
          spec: the model spec, or its JSON (`spec.to_json()`), or a RuntimeParameter
            holding the JSON (then the whole spec is the cache key).
        """
        if isinstance(spec, str):
            spec = spec_lib.spec_from_json(spec)  # fails now, naming the problem, if invalid
        windowing = executor.windowing_json(spec) if isinstance(spec, spec_lib.BertQaSpec) else spec
        super().__init__(spec=SquadTransformSpec(
            examples=examples,
            windowing=windowing,
            transformed_examples=channel.Channel(type=standard_artifacts.Examples),
        ))
