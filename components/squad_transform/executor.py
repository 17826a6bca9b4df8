"""SquadTransform's executor: one question tf.Example in, its window tf.Examples out, on Beam.

Every split is windowed in training mode (answer positions set), since the Trainer's eval
loss needs them too. Questions whose answer cannot be found in the passage's words are
skipped as BERT's run_squad.py does: counted, logged and listed in `skipped-<split>.jsonl`.

Why a Beam job rather than tf.Transform for the windows: they must be exactly BERT's classic
preprocessing (whitespace words tokenized one by one, `_improve_answer_span`, max-context
flags), which is plain Python over `components.qa.windows` (shared with the evaluator and
`mbqa predict`); an in-graph tokenizer would be a second implementation to keep identical.
What tf.Transform does here is the full-pass analysis it is made for: in the same Beam job,
`length_buckets.AnalyzeWindowLengths` splits the training windows' lengths into quantile
buckets and writes the analysed graph as the `transform_graph` output.

The Beam work itself (the DoFn, tf.Example decoding and encoding) is in
`components.squad_transform.windowing`, which does not import TensorFlow or TFX: that module
is what each worker process loads. On the DirectRunner the executor skips TFX's ephemeral
package of its own installation (`components.beam_executor`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from absl import logging
from apache_beam.metrics.metric import MetricsFilter
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components import beam_executor
from components.qa import contracts, encoders
from components.qa import spec as spec_lib
from components.qa import windows as windows_lib
from components.squad_transform import length_buckets, windowing

EXAMPLES_KEY = "examples"
TRANSFORMED_EXAMPLES_KEY = "transformed_examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
WINDOWING_KEY = "windowing"
LENGTH_BUCKETS_KEY = "length_buckets"
# The split whose windows' lengths make the buckets (TFX Transform's default `analyze`).
ANALYZED_SPLIT = "train"
# The transform_graph's custom property: the buckets' padded lengths, comma-separated.
PADDED_LENGTHS_PROPERTY = "padded_lengths"
# The spec parameters that change the windows: the encoder (its vocab) and the cutting.
WINDOWING_PARAMS = ("uri", "seq_len", "query_len", "doc_stride", "do_lower_case")

OUTPUT_FILE_PREFIX = "data_tfrecord"


def windowing_json(spec: spec_lib.BertQaSpec) -> str:
    """The spec's `WINDOWING_PARAMS` as canonical JSON: the Transform's cache key, so that
    changing any other parameter (a learning rate, a strategy) reuses the windows."""
    return json.dumps({name: getattr(spec, name) for name in WINDOWING_PARAMS}, sort_keys=True)


def read_windowing(text: str) -> tuple[str, windows_lib.WindowConfig]:
    """`(encoder uri, WindowConfig)` from `windowing_json` or a whole spec's JSON (a Vertex
    AI RuntimeParameter holds the whole spec)."""
    data = json.loads(text)
    if "class" in data:
        spec = spec_lib.spec_from_dict(data)
        return spec.uri, windows_lib.WindowConfig.from_spec(spec)
    if sorted(data) != sorted(WINDOWING_PARAMS):
        raise ValueError(f"SquadTransform: windowing {text!r} must have exactly the keys "
                         f"{list(WINDOWING_PARAMS)}")
    settings = {k: v for k, v in data.items() if k != "uri"}
    return data["uri"], windows_lib.WindowConfig(**settings)


class Executor(beam_executor.SkipEphemeralPackageOnDirectRunner,
               base_beam_executor.BaseBeamExecutor):
    """Windows every split of `examples` into `transformed_examples`."""

    def Do(  # noqa: N802 (TFX API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Runs the Beam job, then records the counts and buckets (custom properties and a
        JSON file)."""
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        output = artifact_utils.get_single_instance(output_dict[TRANSFORMED_EXAMPLES_KEY])
        graph = artifact_utils.get_single_instance(output_dict[TRANSFORM_GRAPH_KEY])
        num_buckets = int(exec_properties.get(LENGTH_BUCKETS_KEY) or 0)
        payload_format = examples_utils.get_payload_format(examples)
        if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE:
            raise ValueError(
                f"SquadTransform reads tf.Example questions; the examples at {examples.uri} "
                f"have payload format {examples_utils.get_payload_format_string(examples)}"
            )
        uri, config = read_windowing(exec_properties[WINDOWING_KEY])
        vocab_path = encoders.module_vocab_path(uri)
        splits = artifact_utils.decode_split_names(examples.split_names)
        if not splits:
            raise ValueError(f"The examples at {examples.uri} have no splits")
        if num_buckets and ANALYZED_SPLIT not in splits:
            raise ValueError(f"SquadTransform: length_buckets={num_buckets} analyses the "
                             f"{ANALYZED_SPLIT!r} split; the examples at {examples.uri} have "
                             f"only {splits} (or set length_buckets=0)")
        logging.info("SquadTransform: windowing splits %s with %s, vocab %s",
                     splits, config, vocab_path)

        output.split_names = artifact_utils.encode_split_names(splits)
        examples_utils.set_payload_format(output, example_gen_pb2.FORMAT_TF_EXAMPLE)
        pipeline = self._make_beam_pipeline()
        with tft_beam.Context(temp_dir=os.path.join(self._get_tmp_dir(), "tft")):
            for split in splits:
                lengths = _window_split(pipeline, examples, output, split, vocab_path, config)
                if num_buckets and split == ANALYZED_SPLIT:
                    _ = lengths | "LengthBuckets" >> length_buckets.AnalyzeWindowLengths(
                        num_buckets, config.seq_len, graph.uri)
        result = pipeline.run()
        result.wait_until_finish()

        stats = _read_counters(result, splits)
        stats["source"] = source_of(examples)
        stats["config"] = {**vars(config), "vocab": vocab_path}
        stats["length_buckets"] = _bucket_stats(graph.uri, config.seq_len) if num_buckets else None
        stats_path = os.path.join(output.uri, contracts.WINDOW_STATS_FILE)
        with tf.io.gfile.GFile(stats_path, "w") as f:
            json.dump(stats, f, indent=1)
        for name in windowing.COUNTERS:
            output.set_int_custom_property(f"num_{name}", stats[f"num_{name}"])
        logging.info(
            "SquadTransform: %d questions -> %d windows; %d skipped (answer not found, listed "
            "in %s), %d without passage tokens; stats in %s",
            stats["num_questions"], stats["num_windows"], stats["num_skipped"],
            os.path.join(output.uri, contracts.SKIPPED_QUESTIONS_PREFIX + "<split>.jsonl"),
            stats["num_no_windows"], stats_path,
        )
        if num_buckets:
            graph.set_string_custom_property(PADDED_LENGTHS_PROPERTY, ",".join(
                map(str, stats["length_buckets"]["padded_lengths"])))
            logging.info("SquadTransform: %d length buckets of the %s windows (tf.Transform "
                         "graph in %s): padded lengths %s", num_buckets, ANALYZED_SPLIT,
                         graph.uri, stats["length_buckets"]["padded_lengths"])


def _window_split(pipeline: beam.Pipeline, examples: types.Artifact, output: types.Artifact,
                  split: str, vocab_path: str,
                  config: windows_lib.WindowConfig) -> beam.PCollection:
    """Adds the windowing of `split` to the pipeline; returns its window lengths."""
    (pattern,) = examples_utils.get_split_file_patterns([examples], split)
    results = (
        pipeline
        | f"Read[{split}]" >> beam.io.ReadFromTFRecord(pattern)
        | f"Window[{split}]" >> windowing.WindowQuestions(vocab_path, config, split)
    )
    _ = results.windows | f"Write[{split}]" >> beam.io.WriteToTFRecord(
        os.path.join(artifact_utils.get_split_uri([output], split), OUTPUT_FILE_PREFIX),
        file_name_suffix=".gz",
    )
    _ = results[windowing.SKIPPED_TAG] | f"WriteSkipped[{split}]" >> beam.io.WriteToText(
        os.path.join(output.uri, contracts.SKIPPED_QUESTIONS_PREFIX + split),
        file_name_suffix=".jsonl",
        shard_name_template="",
    )
    return results[windowing.LENGTHS_TAG]


def _bucket_stats(transform_graph_dir: str, seq_len: int) -> dict[str, Any]:
    """The distinct padded lengths of the analysed buckets."""
    table = length_buckets.read_padded_lengths(transform_graph_dir, seq_len)
    return {"padded_lengths": sorted(set(table))}


def source_of(examples: types.Artifact) -> dict[str, Any]:
    """Which data the questions are: their Examples artifact, span and SquadExampleGen's
    `spans` (the spans read, with their questions) and `data_fingerprint`."""
    return {
        "examples": examples.uri,
        "span": (examples.get_int_custom_property("span")  # as TFX's ExampleGen drivers set it
                 if examples.has_custom_property("span") else None),
        contracts.DATA_FINGERPRINT_PROPERTY:
            examples.get_string_custom_property(contracts.DATA_FINGERPRINT_PROPERTY) or None,
        contracts.SPANS_PROPERTY: contracts.spans_read(examples)}


def _read_counters(result: beam.runners.runner.PipelineResult, splits: list[str]) -> dict:
    """The Beam metrics as {'splits': {split: {name: n}}, 'num_<name>': total,
    'qa_statistics': {split: `qa_statistics`}}."""
    metrics = result.metrics().query(MetricsFilter().with_namespace(windowing.METRICS_NAMESPACE))
    committed = {}
    for counter in metrics["counters"]:
        committed[counter.key.metric.name] = committed.get(counter.key.metric.name, 0) + (
            counter.committed or 0
        )
    distributions = {d.key.metric.name: d.committed for d in metrics["distributions"]
                     if d.committed is not None}
    names = windowing.COUNTERS + windowing.QA_COUNTERS
    per_split = {split: {name: committed.get(f"{split}/{name}", 0) for name in names}
                 for split in splits}
    stats: dict[str, Any] = {"splits": {
        split: {name: counts[name] for name in windowing.COUNTERS}
        for split, counts in per_split.items()}}
    for name in windowing.COUNTERS:
        stats[f"num_{name}"] = sum(counts[name] for counts in per_split.values())
    stats["qa_statistics"] = {
        split: qa_statistics(counts, {name: distributions.get(f"{split}/{name}")
                                      for name in windowing.QA_DISTRIBUTIONS})
        for split, counts in per_split.items()}
    return stats


def qa_statistics(counts: dict[str, int], distributions: dict[str, Any]) -> dict[str, Any]:
    """A split's questions as a reviewer reads them: how many, the unanswerable share, the
    passage and question lengths in tokens (mean, max), windows per question and the share
    of questions whose answer lies beyond the first window (which the Task Library, reading
    one window, cannot answer). Lengths and shares count the questions that were windowed."""
    windowed = distributions["passage_tokens"].count if distributions["passage_tokens"] else 0

    def lengths(distribution) -> dict[str, float] | None:
        if not distribution or not distribution.count:
            return None
        return {"mean": round(distribution.sum / distribution.count, 1),
                "max": int(distribution.max)}

    return {
        "questions": counts["questions"],
        "unanswerable_share": round(counts["unanswerable"] / windowed, 4) if windowed else None,
        "passage_tokens": lengths(distributions["passage_tokens"]),
        "question_tokens": lengths(distributions["question_tokens"]),
        "windows_per_question": round(counts["windows"] / windowed, 3) if windowed else None,
        "beyond_first_window_share": (round(counts["beyond_first_window"] / windowed, 4)
                                      if windowed else None),
    }
