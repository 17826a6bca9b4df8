"""`mbqa schema`: the questions' schema, inferred from the latest run's statistics and made
what SQuAD allows, written for a person to review and approve (the `schema_file` setting)."""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from pipelines.cli.run import _SET_HELP, _SETTINGS_EPILOG

_EPILOG = _SETTINGS_EPILOG + """
examples:
  mbqa run --set data_root=data/squad                  # a first run: its statistics
  mbqa schema --set data_root=data/squad --out schema/questions.pbtxt
  mbqa run --set data_root=data/squad --set schema_file=schema/questions.pbtxt

exit status: 0 written; 1 no statistics of the pipeline (run it first); 2 invalid settings,
or --out exists without --overwrite.
"""
# The node and output key whose artifact holds the statistics (`pipelines.pipeline`).
STATISTICS_NODE = "StatisticsGen"
STATISTICS_KEY = "statistics"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `mbqa schema`."""
    schema = subparsers.add_parser(
        "schema", help="write the questions' schema of the latest run, to approve as "
        "schema_file",
        description="Infers the schema of the questions from the statistics of the latest "
        "run of the configured\npipeline (its last StatisticsGen output in ML Metadata, all "
        "splits), as SchemaGen does, then\nmakes it what SQuAD allows in later spans: no "
        "lists of allowed texts, one value of id, title\n(may be empty), context, question "
        "and is_impossible (0 or 1), any number of answers (at least\none unless the data "
        "has unanswerable questions), offsets >= 0. Writes it as text (.pbtxt) to\nreview, "
        "commit and set as schema_file: runs then validate every span against it and stop\n"
        "before training on anomalies (stop_on_anomalies).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.add_argument("--out", required=True, help="the .pbtxt file to write")
    schema.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists (default: refuse)")
    schema.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=_SET_HELP)
    schema.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from pipelines import report
    from pipelines.cli import import_tensorflow_quietly
    from pipelines.cli.run import _config

    config = _config(args.set)
    out = os.path.abspath(os.path.expanduser(args.out))
    if os.path.exists(out) and not args.overwrite:
        print(f"mbqa schema: {out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    statistics = report.latest_output(config, STATISTICS_NODE, STATISTICS_KEY)
    if statistics is None:
        print(f"mbqa schema: no statistics of pipeline {config.pipeline_name!r} in "
              f"{config.resolved_metadata_path()}: run it first (`mbqa run` with "
              "with_data_validation=true and the same settings)", file=sys.stderr)
        return 1
    if not args.verbose:
        import_tensorflow_quietly()
    text, splits = schema_text(statistics)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"Wrote the schema of the questions to {out}\n  inferred from {statistics.uri} "
          f"(splits {', '.join(splits)}); review it, then set schema_file={out}")
    return 0


def schema_text(statistics) -> tuple[str, list[str]]:
    """The approved-schema file's text from an MLMD ExampleStatistics artifact, and its
    splits."""
    from google.protobuf import text_format
    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types import standard_artifacts

    from components.qa import data_validation

    artifact = standard_artifacts.ExampleStatistics()
    artifact.set_mlmd_artifact(statistics)
    splits = data_validation.split_names(artifact.split_names)
    schema = data_validation.infer_squad_schema(
        [stats_artifact_utils.load_statistics(artifact, split).proto() for split in splits])
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    header = (f"# The questions' schema (tensorflow_metadata Schema), written by `mbqa schema` "
              f"at {stamp}\n# from the statistics {statistics.uri} (splits "
              f"{', '.join(splits)}).\n# Review it, then set schema_file to this file.\n")
    return header + text_format.MessageToString(schema), splits
