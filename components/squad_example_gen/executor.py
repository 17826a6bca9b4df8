"""SquadExampleGen's executor: SQuAD files to tf.Examples, one per question.

Per input split, a Beam pipeline lists the split's files, parses each one, by its name as
nested SQuAD JSON, JSON lines or Parquet (`components.qa.squad_json`, `squad_flat`), drops
nothing silently (an invalid question fails the run, or with `skip_invalid` is counted
and reported), checks that no question id is used twice in the split and emits
`components.qa.squad.to_tf_example` records; TFX's base executor then partitions (hash
split keyed on the passage, see `component.py`) and writes them.

The report `<examples uri>/invalid_records.json` holds the counts and every skipped
record (file, question id, location: JSON path, line or row, field, reason); the counts
are also custom properties of the Examples artifact: `num_questions` = `num_examples` +
`num_skipped`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, driver, input_processor, utils
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import beam_executor
from components.qa import contracts, squad, squad_json
from components.squad_example_gen import spans

SKIP_INVALID_KEY = "skip_invalid"
# Exec property (added by `Executor.Do`, like TFX's '_beam_pipeline_args') naming the
# directory where each input split's Beam pipeline writes its partial report.
_PARTIAL_REPORTS_DIR_KEY = "_squad_partial_reports_dir"
# Exec property added by `Executor.Do`: per resolved split pattern, {span: its pattern} of
# the spans the split reads (`spans.choose_spans`).
_SPAN_WINDOWS_KEY = "_squad_span_windows"
_INVALID = "invalid"


def skip_invalid_setting(exec_properties: dict[str, Any]) -> bool:
    """The `skip_invalid` exec property as a bool (runners may pass it as 0/1 or as the
    JSON text 'true'/'false'; `bool('false')` would be True)."""
    value = exec_properties.get(SKIP_INVALID_KEY)
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value in (0, 1):  # also True and False
        return bool(value)
    raise ValueError(f"Exec property {SKIP_INVALID_KEY!r} = {value!r} must be true or false")


def with_resolved_span(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """`exec_properties` whose `{SPAN}`/`{VERSION}`/date patterns are resolved, with `span`,
    `version` and `input_fingerprint`, as TFX's ExampleGen drivers resolve them.

    Runners run a driver before the executor that does this (locally and on Kubeflow, TFX's
    ExampleGen driver; on Vertex AI, `file_based_example_gen.driver` as the task's
    pre-cache check, whose output reaches the executor only if the service merges it into
    the executor's input). A pattern still unresolved here is resolved with the same TFX
    input processor, so the executor reads the span the driver would have chosen.
    """
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    if not any(re.search(utils.SPAN_FULL_REGEX, split.pattern)
               or re.search(utils.VERSION_FULL_REGEX, split.pattern)
               or any(date in split.pattern
                      for date in (utils.YEAR_SPEC, utils.MONTH_SPEC, utils.DAY_SPEC))
               for split in input_config.splits):
        return exec_properties
    range_config = None
    if exec_properties.get(standard_component_specs.RANGE_CONFIG_KEY):
        range_config = range_config_pb2.RangeConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.RANGE_CONFIG_KEY],
                                  range_config)
    processor = input_processor.FileBasedInputProcessor(
        exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config.splits,
        range_config)
    span, version = processor.resolve_span_and_version()
    for split in input_config.splits:
        split.pattern = processor.get_pattern_for_span_version(split.pattern, span, version)
    logging.info("Resolved the input patterns here (no driver output reached the executor): "
                 "span %s, version %s", span, version)
    return {**exec_properties,
            standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
            utils.SPAN_PROPERTY_NAME: span, utils.VERSION_PROPERTY_NAME: version,
            utils.FINGERPRINT_PROPERTY_NAME: processor.get_input_fingerprint(span, version)}


def with_span_windows(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """`exec_properties` read as the span settings say (`span_patterns` set): the input
    patterns resolved for the target span (`requested_span`, else the driver's span, else
    the latest with files), and each split's window of spans (`training_spans`) under
    `_SPAN_WINDOWS_KEY`, with TFX's `span` and `input_fingerprint` of the target span.

    Raises:
      spans.SpanNotFoundError: the requested span has no files (the message names the
        patterns and the spans that exist).
    """
    patterns = json.loads(exec_properties[spans.SPAN_PATTERNS_KEY])
    requested = int(exec_properties.get(spans.REQUESTED_SPAN_KEY) or 0)
    training_spans = exec_properties.get(spans.TRAINING_SPANS_KEY)
    resolved = exec_properties.get(utils.SPAN_PROPERTY_NAME)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    choice = spans.choose_spans(
        input_base, patterns, requested, 1 if training_spans is None else int(training_spans),
        latest=None if requested or resolved is None else int(resolved))
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    windows = {}
    for split in input_config.splits:
        split.pattern = spans.pattern_for_span(patterns[split.name], choice.target)
        windows[split.pattern] = dict(zip(choice.spans_by_split[split.name],
                                          choice.patterns(split.name, patterns[split.name]),
                                          strict=True))
    logging.info("Span %d%s; the splits read spans %s", choice.target,
                 " (asked for)" if requested else " (the latest)", choice.spans_by_split)
    target_only = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
        start_span_number=choice.target, end_span_number=choice.target))
    processor = input_processor.FileBasedInputProcessor(
        input_base, [example_gen_pb2.Input.Split(name=split.name, pattern=patterns[split.name])
                     for split in input_config.splits], target_only)
    processor.resolve_span_and_version()
    return {**exec_properties,
            standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
            utils.SPAN_PROPERTY_NAME: choice.target, utils.VERSION_PROPERTY_NAME: None,
            utils.FINGERPRINT_PROPERTY_NAME: processor.get_input_fingerprint(choice.target, None),
            _SPAN_WINDOWS_KEY: windows}


def _spans_by_split(exec_properties: dict[str, Any], partials: list[dict]) -> dict:
    """{input split name: {span: questions read}} of the splits that read spans."""
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    by_pattern = {p["pattern"]: p["spans"] for p in partials}
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    found = {split.name: by_pattern.get(os.path.join(base, split.pattern))
             for split in input_config.splits}
    return {name: counts for name, counts in found.items() if counts}


def data_fingerprint(files: list[str]) -> str:
    """A sha256 over the files' names and contents: the same data, the same fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(files):
        content = hashlib.sha256()
        with tf.io.gfile.GFile(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                content.update(block)
        digest.update(f"{os.path.basename(path)}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()


class _ParseFile(beam.DoFn):
    """A SQuAD file (any format) to its valid questions, keyed by id, and its invalid
    records; logs how many questions it read."""

    def __init__(self, skip_invalid: bool):
        self._skip_invalid = skip_invalid

    def process(self, path: str):
        num_questions = 0
        for parsed in squad_json.parse_squad_file(path):
            num_questions += 1
            if parsed.invalid is None:
                yield parsed.example.id, parsed
            elif self._skip_invalid:
                yield beam.pvalue.TaggedOutput(_INVALID, parsed.invalid)
            else:
                raise squad_json.InvalidQuestionError(parsed.invalid.message())
        logging.info("Read %d questions from %s", num_questions, path)


class _KeepFirstOfEachId(beam.DoFn):
    """Of the questions sharing an id, keeps the first; the others are invalid records."""

    def __init__(self, skip_invalid: bool):
        self._skip_invalid = skip_invalid

    def process(self, id_and_questions):
        _, questions = id_and_questions
        first, duplicates = squad_json.first_and_duplicates(questions)
        if duplicates and not self._skip_invalid:
            raise squad_json.InvalidQuestionError(duplicates[0].message())
        for record in duplicates:
            yield beam.pvalue.TaggedOutput(_INVALID, record)
        yield squad.to_tf_example(first.example)


def _write_partial_report(
    _, path: str, pattern: str, files: list[str], num_read: int, num_examples: int,
    invalid: list[squad_json.InvalidRecord], span_counts: list[tuple[int, int]],
) -> None:
    if num_read != num_examples + len(invalid):
        raise RuntimeError(
            f"{pattern}: {num_read} questions read but {num_examples} written and "
            f"{len(invalid)} skipped: some were lost"
        )
    records = sorted((r.to_dict() for r in invalid), key=lambda r: (r["file"], r["location"]))
    report = {
        "pattern": pattern,
        "spans": {str(span): count for span, count in sorted(span_counts)},
        "files": files,
        "num_questions": num_read,
        "num_examples": num_examples,
        "num_skipped": len(records),
        "skipped": records,
    }
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(report, f)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _SquadToExample(  # noqa: N802 (Beam PTransform naming, as in TFX)
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads the SQuAD files matching `split_pattern` under `input_base` into tf.Examples;
    with a span window (`_SPAN_WINDOWS_KEY`), the files of each span of the window."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    skip_invalid = skip_invalid_setting(exec_properties)
    pattern = os.path.join(input_base, split_pattern)
    window = exec_properties.get(_SPAN_WINDOWS_KEY, {}).get(split_pattern, {})
    span_of_file = {}
    for span, span_pattern in (window.items() or [(None, split_pattern)]):
        found = tf.io.gfile.glob(os.path.join(input_base, span_pattern))
        if not found:
            raise ValueError(f"Input split pattern {span_pattern!r} matches no file: nothing "
                             f"found at {os.path.join(input_base, span_pattern)}")
        span_of_file.update({path: span for path in found})
    files = sorted(span_of_file)
    logging.info("Reading %d SQuAD file(s) matching %s%s", len(files), pattern,
                 f" and spans {sorted(window)}" if window else "")

    parsed = (
        pipeline
        | "ListFiles" >> beam.Create(files)
        | "ParseFiles" >> beam.ParDo(_ParseFile(skip_invalid)).with_outputs(_INVALID, main="ok")
    )
    unique = (
        parsed.ok
        | "GroupById" >> beam.GroupByKey()
        | "KeepFirstOfEachId"
        >> beam.ParDo(_KeepFirstOfEachId(skip_invalid)).with_outputs(_INVALID, main="ok")
    )
    invalid = (parsed[_INVALID], unique[_INVALID]) | "FlattenInvalid" >> beam.Flatten()
    read = (parsed.ok, parsed[_INVALID]) | "FlattenRead" >> beam.Flatten()
    span_counts = (
        read
        | "SpanOfQuestion" >> beam.Map(
            lambda item: span_of_file[item[1].file if isinstance(item, tuple) else item.file])
        | "CountPerSpan" >> beam.combiners.Count.PerElement()
        | "ListSpanCounts" >> beam.combiners.ToList()
    ) if window else pipeline | "NoSpans" >> beam.Create([[]])

    report_name = hashlib.sha256(split_pattern.encode("utf-8")).hexdigest()[:16] + ".json"
    report_path = os.path.join(exec_properties[_PARTIAL_REPORTS_DIR_KEY], report_name)
    _ = (
        pipeline
        | "ReportTrigger" >> beam.Create([None])
        | "WriteReport"
        >> beam.Map(
            _write_partial_report,
            report_path,
            pattern,
            files,
            beam.pvalue.AsSingleton(read | "CountRead" >> beam.combiners.Count.Globally()),
            beam.pvalue.AsSingleton(unique.ok | "CountExamples" >> beam.combiners.Count.Globally()),
            beam.pvalue.AsSingleton(invalid | "ListInvalid" >> beam.combiners.ToList()),
            beam.pvalue.AsSingleton(span_counts),
        )
    )
    return unique.ok


class Executor(beam_executor.SkipEphemeralPackageOnDirectRunner,
               base_example_gen_executor.BaseExampleGenExecutor):
    """TFX ExampleGen executor for SQuAD v1.1/v2.0: nested JSON (also .json.gz), JSON
    lines (also .jsonl.gz) and Parquet."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        """The PTransform reading one split's SQuAD files into tf.Examples."""
        return _SquadToExample

    def Do(  # noqa: N802 (TFX API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes the splits, then the report and the counts (custom properties)."""
        exec_properties = (with_span_windows(exec_properties)
                           if exec_properties.get(spans.SPAN_PATTERNS_KEY)
                           else with_resolved_span(exec_properties))
        partial_dir = os.path.join(self._get_tmp_dir(), "squad_reports")
        tf.io.gfile.makedirs(partial_dir)
        super().Do(input_dict, output_dict, {**exec_properties,
                                              _PARTIAL_REPORTS_DIR_KEY: partial_dir})

        partials = []
        for name in sorted(tf.io.gfile.listdir(partial_dir)):
            with tf.io.gfile.GFile(os.path.join(partial_dir, name)) as f:
                partials.append(json.load(f))
        tf.io.gfile.rmtree(partial_dir)
        report = {
            key: sum(p[key] for p in partials)
            for key in ("num_questions", "num_examples", "num_skipped")
        }
        report["inputs"] = [{k: v for k, v in p.items() if k != "skipped"} for p in partials]
        report["skipped"] = [r for p in partials for r in p["skipped"]]

        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        report_path = os.path.join(examples.uri, contracts.INVALID_RECORDS_FILE)
        with tf.io.gfile.GFile(report_path, "w") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
        for key in ("num_questions", "num_examples", "num_skipped"):
            examples.set_int_custom_property(key, report[key])
        examples.set_string_custom_property(
            contracts.DATA_FINGERPRINT_PROPERTY,
            data_fingerprint([path for p in partials for path in p["files"]]))
        spans_read = _spans_by_split(exec_properties, partials)
        if spans_read:
            examples.set_string_custom_property(contracts.SPANS_PROPERTY,
                                                json.dumps(spans_read, sort_keys=True))
        if exec_properties.get(utils.SPAN_PROPERTY_NAME) is not None:
            # The span, version and fingerprint on the artifact, as the drivers set them
            # (also where the runner ran no driver or did not pass its output on).
            version = exec_properties.get(utils.VERSION_PROPERTY_NAME)
            driver.update_output_artifact(
                {**exec_properties,
                 utils.SPAN_PROPERTY_NAME: int(exec_properties[utils.SPAN_PROPERTY_NAME]),
                 utils.VERSION_PROPERTY_NAME: None if version is None else int(version)},
                examples.mlmd_artifact)
        logging.info(
            "Read %d questions: wrote %d examples, skipped %d invalid ones (listed in %s)",
            report["num_questions"], report["num_examples"], report["num_skipped"], report_path,
        )
