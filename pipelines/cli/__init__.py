"""The `mbqa` command line.

Each area registers its subcommands from its own module (`register(subparsers)`);
heavy imports (TensorFlow, TFX) happen inside the handlers so `mbqa --help` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile

# Modules under pipelines/cli/ that define `register(subparsers)`.
_COMMAND_MODULES = ("data", "model", "evaluate", "run", "schema")
# Commands whose handlers import TensorFlow outside a log file (`run` and `demo` have one;
# `compile` and `schema` import it themselves, once their settings are checked).
_TENSORFLOW_COMMANDS = ("make-encoder", "predict", "answer", "deploy")


class CommandParser(argparse.ArgumentParser):
    """The parser of a subcommand: every command takes --verbose."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true",
                          help="show TensorFlow's, TFX's and Beam's start-up and logs, and "
                          "the traceback of an error (default: off)")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mbqa", description="MobileBERT question answering as a TFX pipeline.",
        epilog="`mbqa COMMAND --help` explains a command; `mbqa settings` lists the pipeline's "
        "settings.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"pipelines.cli.{name}").register(subparsers)
    return parser


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its start-up messages (CUDA probing on a CPU machine, CPU
    features) kept off the terminal; they are shown if the import fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mbqa` console script; each handler returns an exit code.

    Errors are one line naming the setting or flag (2 for settings, 1 otherwise); with
    --verbose they raise with their traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from pipelines.config import ConfigError

    if args.command in _TENSORFLOW_COMMANDS and not args.verbose:
        import_tensorflow_quietly()
    try:
        return int(args.handler(args) or 0)
    except Exception as error:
        if args.verbose:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, ConfigError):  # a setting that cannot work
            print(f"mbqa {args.command}: error: {message}", file=sys.stderr)
            return 2
        print(f"mbqa {args.command}: error: {type(error).__name__}: {message} (--verbose "
              "shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
