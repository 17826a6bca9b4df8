"""`mbqa run`, `mbqa compile`, `mbqa deploy submit|schedule` and `mbqa demo`."""

from __future__ import annotations

import argparse

_SET_HELP = ("a setting as key=value (repeatable), e.g. train_steps=500, spec.seq_len=128, "
             "data_root=gs://b/squad; defaults come from MBQA_<SETTING> environment variables")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the pipeline subcommands."""
    run = subparsers.add_parser("run", help="run the whole pipeline locally (Beam DirectRunner)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    run.set_defaults(handler=_run)

    compile_ = subparsers.add_parser(
        "compile", help="compile the pipeline for Kubeflow Pipelines or Vertex AI Pipelines"
    )
    compile_.add_argument("--target", choices=("kubeflow", "vertex"), required=True)
    compile_.add_argument("--out", required=True,
                          help="output file (.tar.gz/.yaml for kubeflow, .json for vertex)")
    compile_.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help=_SET_HELP)
    compile_.set_defaults(handler=_compile)

    deploy = subparsers.add_parser("deploy", help="submit or schedule runs on Vertex AI")
    actions = deploy.add_subparsers(dest="deploy_action", required=True)
    submit = actions.add_parser("submit", help="submit one run of a compiled PipelineJob JSON")
    schedule = actions.add_parser("schedule", help="schedule runs of a compiled PipelineJob JSON")
    for parser in (submit, schedule):
        parser.add_argument("--pipeline-json", required=True,
                            help="the file of `mbqa compile --target vertex`")
        parser.add_argument("--project", required=True, help="Google Cloud project")
        parser.add_argument("--region", required=True, help="Vertex AI region")
        parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                            help="a runtime parameter value (repeatable), e.g. train_args=...")
        parser.add_argument("--service-account", default=None)
        parser.add_argument("--pipeline-root", default=None,
                            help="gs:// root overriding the compiled one")
    submit.add_argument("--no-cache", action="store_true", help="run every step again")
    submit.set_defaults(handler=_submit)
    schedule.add_argument("--cron", required=True, help='e.g. "0 3 * * 1" (Mondays, 03:00)')
    schedule.add_argument("--display-name", default=None)
    schedule.add_argument("--max-concurrent-runs", type=int, default=1)
    schedule.add_argument("--max-runs", type=int, default=None)
    schedule.set_defaults(handler=_schedule)

    demo = subparsers.add_parser(
        "demo", help="synthetic data + a tiny encoder, the whole pipeline locally, one answer"
    )
    demo.add_argument("--out", required=True, help="directory of everything the demo writes")
    demo.add_argument("--train-steps", type=int, default=None,
                      help="training steps (default: the demo's)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="further settings, as for `mbqa run`")
    demo.set_defaults(handler=_demo)


def _config(overrides: list[str]):
    from pipelines.config import PipelineConfig

    return PipelineConfig.from_env().with_overrides(overrides)


def _run(args: argparse.Namespace) -> int:
    from pipelines.local_runner import run_local

    config = _config(args.set)
    run_local(config)
    print(f"Pipeline artifacts: {config.pipeline_root}")
    print(f"ML Metadata:        {config.resolved_metadata_path()}")
    print(f"Pushed models:      {config.push_destination}")
    return 0


def _compile(args: argparse.Namespace) -> int:
    config = _config(args.set)
    if args.target == "kubeflow":
        from pipelines.kubeflow_runner import compile_kubeflow

        path = compile_kubeflow(config, args.out)
    else:
        from pipelines.vertex_runner import compile_vertex

        path = compile_vertex(config, args.out)
    print(f"Compiled for {args.target}: {path}")
    return 0


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


def _demo(args: argparse.Namespace) -> int:
    from pipelines import demo

    return demo.run_demo(args.out, train_steps=args.train_steps, overrides=args.set)
