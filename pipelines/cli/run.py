"""`mbqa run`, `mbqa compile`, `mbqa deploy submit|schedule`, `mbqa demo`, `mbqa settings`."""

from __future__ import annotations

import argparse
import textwrap

_SET_HELP = ("a setting as KEY=VALUE (repeatable), e.g. train_steps=500, spec.seq_len=128, "
             "spec.is_tf2=true; applied over the MBQA_<SETTING> environment variables "
             "(default: none)")
_EXIT_STATUSES = """
exit status: 0 a model was pushed; 3 the run finished but nothing was pushed (not blessed);
4 stopped before training on data anomalies (stop_on_anomalies); 5 stopped before training:
no new data since the last blessed model (force_retrain trains anyway); 1 a component failed
(see the log file); 2 invalid settings or arguments.
"""
_SETTINGS_EPILOG = """\
Settings: defaults, then MBQA_<SETTING> environment variables, then --set KEY=VALUE
(booleans: true/false, yes/no or 1/0). `mbqa settings` lists every setting and its
default; spec parameters are set as spec.<name>=VALUE.
"""
_RUN_EPILOG = _SETTINGS_EPILOG + """
examples:
  mbqa run --set data_root=data/squad --set train_steps=500
  mbqa make-encoder --out encoders/tiny --format tf1
  mbqa run --set spec.uri=encoders/tiny --set spec.is_tf2=false
  MBQA_PIPELINE_ROOT=/runs/squad mbqa run --set spec.seq_len=128
"""
_COMPILE_EPILOG = _SETTINGS_EPILOG + """
examples:
  export MBQA_PIPELINE_ROOT=gs://b/root MBQA_DATA_ROOT=gs://b/squad \\
      MBQA_PUSH_DESTINATION=gs://b/serving MBQA_IMAGE=gcr.io/p/mbqa:1
  mbqa compile --target vertex --out pipeline.json --set gcp_project=p
  mbqa compile --target kubeflow --out pipeline.yaml --set train_steps=5000
"""
_DEMO_EPILOG = _SETTINGS_EPILOG + """
examples:
  mbqa demo --out /tmp/mbqa-demo
  mbqa demo --out /tmp/mbqa-demo --train-steps 200 --set quantizations=dynamic,float16
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the pipeline subcommands and `mbqa settings`."""
    run = subparsers.add_parser(
        "run", help="run the whole pipeline locally (Beam DirectRunner)",
        description="Checks the settings, then runs every component of the pipeline on this "
        "machine\n(TFX's LocalDagRunner or BeamDagRunner, see local_orchestrator).",
        epilog=_RUN_EPILOG + _EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    run.set_defaults(handler=_run)

    compile_ = subparsers.add_parser(
        "compile", help="compile the pipeline for Kubeflow Pipelines or Vertex AI Pipelines",
        description="Checks the settings for the target, then writes the compiled pipeline "
        "(Kubeflow Pipelines\npackage or Vertex AI PipelineJob JSON) for `mbqa deploy` or the "
        "Kubeflow UI.",
        epilog=_COMPILE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compile_.add_argument("--target", choices=("kubeflow", "vertex"), required=True,
                          help="the orchestrator to compile for")
    compile_.add_argument("--out", required=True,
                          help="output file (.tar.gz/.yaml for kubeflow, .json for vertex)")
    compile_.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help=_SET_HELP)
    compile_.set_defaults(handler=_compile)

    deploy = subparsers.add_parser(
        "deploy", help="submit or schedule runs on Vertex AI, or run a compiled pipeline here",
        description="Submits or schedules runs of a PipelineJob JSON of `mbqa compile --target "
        "vertex` on Vertex AI Pipelines (needs google-cloud-aiplatform and credentials), or "
        "runs a compiled pipeline (Vertex AI or Kubeflow) on this machine first (local-run).",
    )
    actions = deploy.add_subparsers(dest="deploy_action", required=True)
    submit = actions.add_parser(
        "submit", help="submit one run of a compiled PipelineJob JSON",
        description="Submits one run of the compiled pipeline and prints its resource name.",
    )
    schedule = actions.add_parser(
        "schedule", help="schedule runs of a compiled PipelineJob JSON",
        description="Creates a Vertex AI schedule that runs the compiled pipeline on a cron "
        "schedule and prints its resource name.",
    )
    for parser in (submit, schedule):
        parser.add_argument("--pipeline-json", required=True,
                            help="the file of `mbqa compile --target vertex`")
        parser.add_argument("--project", required=True, help="Google Cloud project")
        parser.add_argument("--region", required=True, help="Vertex AI region")
        _add_parameter_argument(parser, "e.g. train_args=...")
        parser.add_argument("--service-account", default=None,
                            help="service account of the runs (default: the project's "
                            "Compute Engine default service account)")
        parser.add_argument("--pipeline-root", default=None,
                            help="gs:// root overriding the compiled one (default: the "
                            "compiled one)")
    local_run = actions.add_parser(
        "local-run", help="run a compiled pipeline on this machine, as Vertex AI or Kubeflow "
        "would",
        description="Runs every task of a PipelineJob JSON (`mbqa compile --target vertex`) "
        "or a Kubeflow\npackage (`--target kubeflow`) here, in dependency order, through the "
        "commands and\nentrypoints compiled into it (Vertex AI: TFX's container entrypoint, "
        "the ExampleGen\ndriver, the resolver queries, the Trainer's CustomJob with its "
        "replicas as local\nprocesses; Kubeflow: TFX's Kubeflow entrypoint against ML "
        "Metadata over gRPC), gs://\npaths mapped to local directories. Artifacts are kept "
        "across runs in an ML Metadata\nstore. See deploy/README.md, 'Before you submit: "
        "run it locally'.",
        epilog=_EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compiled = local_run.add_mutually_exclusive_group(required=True)
    compiled.add_argument("--pipeline-json", help="the file of `mbqa compile --target vertex`")
    compiled.add_argument("--kubeflow-package",
                          help="the file of `mbqa compile --target kubeflow`")
    local_run.add_argument("--local-bucket", action="append", default=[], required=True,
                           metavar="gs://BUCKET=DIR",
                           help="a bucket's local stand-in directory (repeatable)")
    _add_parameter_argument(local_run, "as for submit; Kubeflow: only pipeline-root")
    local_run.add_argument("--registry", default=None,
                           help="the ML Metadata SQLite file kept across runs (default: "
                           "metadata.sqlite under the local pipeline root)")
    local_run.set_defaults(handler=_local_run)
    submit.add_argument("--no-cache", action="store_true",
                        help="run every step again (default: reuse cached steps as compiled)")
    submit.set_defaults(handler=_submit)
    schedule.add_argument("--cron", required=True, help='e.g. "0 3 * * 1" (Mondays, 03:00)')
    schedule.add_argument("--display-name", default=None,
                          help="the schedule's name (default: <pipeline display name>-schedule)")
    schedule.add_argument("--max-concurrent-runs", type=int, default=1,
                          help="runs at the same time at most (default: 1)")
    schedule.add_argument("--max-runs", type=int, default=None,
                          help="runs in all before the schedule ends (default: no limit)")
    schedule.set_defaults(handler=_schedule)

    demo = subparsers.add_parser(
        "demo", help="synthetic data + a tiny encoder, the whole pipeline locally, one answer",
        description="Writes synthetic SQuAD data and a tiny random MobileBERT encoder under "
        "--out, runs the\nwhole pipeline locally, then prints the evaluation, the pushed "
        ".tflite file and one\nanswer. Rerun with more data under <out>/data/span-2 to see "
        "a warm-started update.",
        epilog=_DEMO_EPILOG + _EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", required=True, help="directory of everything the demo writes")
    demo.add_argument("--train-steps", type=int, default=None,
                      help="training steps (default: 800, the demo's)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="further settings, as for `mbqa run` (default: none)")
    demo.set_defaults(handler=_demo)

    settings = subparsers.add_parser(
        "settings", help="list every pipeline setting: type, default, variable, meaning",
        description="Lists every setting of the pipeline (pipelines/config.py) with its type, "
        "default and environment variable. Set them as MBQA_<SETTING> variables or with "
        "`--set KEY=VALUE`; spec parameters as spec.<name>=VALUE.",
    )
    settings.set_defaults(handler=_settings)

    runner_path = subparsers.add_parser(
        "runner-path", help="print the absolute path of a TFX CLI runner file",
        description="Prints the absolute path of the runner file of ENGINE, for the TFX CLI's "
        "--pipeline_path: it then works from any directory.",
    )
    runner_path.add_argument("engine", choices=("local", "kubeflow", "vertex"))
    runner_path.set_defaults(handler=_runner_path)


def _runner_path(args: argparse.Namespace) -> int:
    """Handler of `mbqa runner-path`: the runner file Python imports, not executed."""
    import importlib.util

    print(importlib.util.find_spec(f"pipelines.{args.engine}_runner").origin)
    return 0


def _settings(args: argparse.Namespace) -> int:
    """Handler of `mbqa settings`: two lines a setting, the second its description."""
    from pipelines.config import list_settings

    for setting in list_settings():
        print(f"{setting.name} ({setting.type}, default {setting.default or repr('')}, "
              f"{setting.env_var})")
        print(textwrap.fill(setting.description, width=100, initial_indent="    ",
                            subsequent_indent="    "))
    return 0


def _config(overrides: list[str]):
    from pipelines.config import PipelineConfig

    return PipelineConfig.from_env().with_overrides(overrides)


def _run(args: argparse.Namespace) -> int:
    from pipelines.run_console import run_and_report

    config = _config(args.set)
    config.validate("local")  # before TensorFlow is imported
    return run_and_report(config, verbose=args.verbose)


def _compile(args: argparse.Namespace) -> int:
    from pipelines.cli import import_tensorflow_quietly

    config = _config(args.set)
    config.validate(args.target)  # before TensorFlow is imported
    if not args.verbose:
        import_tensorflow_quietly()
    if args.target == "kubeflow":
        from pipelines.kubeflow_runner import compile_kubeflow

        path = compile_kubeflow(config, args.out)
    else:
        from pipelines.vertex_runner import compile_vertex

        path = compile_vertex(config, args.out)
    print(f"Compiled for {args.target}: {path}")
    return 0


def _add_parameter_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """`--parameter NAME=VALUE` (repeatable): a compiled pipeline's runtime parameter."""
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help=f"a runtime parameter value (repeatable), {example} (default: "
                        "the compiled values)")


def _parameters(args: argparse.Namespace) -> dict:
    from deploy.vertex import parse_parameters

    return parse_parameters(args.pipeline_json, args.parameter)


def _submit(args: argparse.Namespace) -> int:
    from deploy.vertex import submit_pipeline

    job = submit_pipeline(
        args.pipeline_json, args.project, args.region, parameters=_parameters(args),
        service_account=args.service_account, pipeline_root=args.pipeline_root,
        enable_caching=False if args.no_cache else None,
    )
    print(f"Submitted {args.pipeline_json} to Vertex AI: {getattr(job, 'resource_name', job)}")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from deploy.vertex import schedule_pipeline

    schedule = schedule_pipeline(
        args.pipeline_json, args.project, args.region, args.cron,
        parameters=_parameters(args), display_name=args.display_name,
        service_account=args.service_account, pipeline_root=args.pipeline_root,
        max_concurrent_run_count=args.max_concurrent_runs, max_run_count=args.max_runs,
    )
    print(f"Scheduled {args.pipeline_json} on Vertex AI ({args.cron!r}): "
          f"{getattr(schedule, 'resource_name', schedule)}")
    return 0


def _local_run(args: argparse.Namespace) -> int:
    from deploy.local_vertex import LocalVertexJob, parse_bucket_map
    from pipelines.run_console import run_and_report

    buckets = parse_bucket_map(args.local_bucket)
    if args.kubeflow_package:
        from deploy.local_kubeflow import LocalKubeflowJob

        job = LocalKubeflowJob(args.kubeflow_package, buckets, args.parameter)
    else:
        job = LocalVertexJob(args.pipeline_json, buckets, args.parameter)
    config = job.report_config(args.registry)
    return run_and_report(config, verbose=args.verbose, run=lambda: job.run(config))


def _demo(args: argparse.Namespace) -> int:
    from pipelines import demo

    return demo.run_demo(args.out, train_steps=args.train_steps, overrides=args.set,
                         verbose=args.verbose)
