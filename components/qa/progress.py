"""Progress of long work: a tqdm bar on a terminal, a log line every few seconds otherwise.

`mbqa run` and `mbqa demo` send the logs to a file and keep the terminal for a short report;
they register the terminal with `set_console` so that bars still show there.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import IO, Any

import tqdm

# Seconds between two progress lines when the output is not a terminal.
LOG_EVERY_S = 10.0
_LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_console: IO[str] | None = None


def set_console(stream: IO[str] | None) -> None:
    """Draws bars on `stream` (a terminal) instead of stderr; None: back to stderr."""
    global _console
    _console = stream


class _LogLines:
    """A file for tqdm that turns each refresh into one log line."""

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            logging.info("%s", text)

    def flush(self) -> None:
        pass


def on_terminal() -> bool:
    """Whether `progress` draws a bar (on a terminal) rather than logging lines."""
    return (_console or sys.stderr).isatty()


def progress(iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
             unit: str = "it", initial: int = 0) -> tqdm.tqdm:
    """A tqdm progress bar over `iterable` (or updated by hand with `.update(n)`), counting
    from `initial`. Set its postfix with `refresh=False`: a refresh is a log line."""
    if on_terminal():
        return tqdm.tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial,
                         file=_console or sys.stderr, dynamic_ncols=True, leave=False)
    return tqdm.tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial,
                     file=_LogLines(), mininterval=LOG_EVERY_S, bar_format=_LOG_FORMAT)
