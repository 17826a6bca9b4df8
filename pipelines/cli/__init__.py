"""The `mbqa` command line.

Each area registers its subcommands from its own module (`register(subparsers)`);
heavy imports (TensorFlow, TFX) happen inside the handlers so `mbqa --help` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules under pipelines/cli/ that define `register(subparsers)`.
_COMMAND_MODULES = ("data", "model", "evaluate", "run")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mbqa", description="MobileBERT question answering as a TFX pipeline.",
        epilog="`mbqa COMMAND --help` explains a command; `mbqa settings` lists the pipeline's "
        "settings.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"pipelines.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mbqa` console script; each handler returns an exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from pipelines.config import ConfigError

    try:
        return int(args.handler(args) or 0)
    except ConfigError as error:  # a setting that cannot work: one line, no traceback
        if getattr(args, "verbose", False):
            raise
        print(f"mbqa {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
