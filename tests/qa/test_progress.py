"""`components.qa.progress`: log lines off a terminal, a bar on one."""

import io
import itertools
import logging
import re

import pytest
import tqdm

from components.qa import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_console(monkeypatch):
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # no refresh thread on real time
    yield
    progress.set_console(None)


def test_off_a_terminal_logs_a_line_every_log_every_s_and_a_final_count(monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    caplog.set_level(logging.INFO)
    console = io.StringIO()
    progress.set_console(console)
    assert not progress.on_terminal()

    bar = progress.progress(total=100, desc="windows", unit="questions")
    for n in range(1, 101):
        clock[0] += 1.0  # one question a second
        bar.update()
        bar.set_postfix(windows=2 * n, refresh=False)
    bar.close()

    lines = [r.getMessage() for r in caplog.records]
    done = [int(re.match(r"windows: (\d+)/100 questions", line)[1]) for line in lines]
    assert done[0] == 0 and done[-1] == 100
    # Seconds (questions) between two lines; the last one is written by close().
    assert all(b - a >= progress.LOG_EVERY_S for a, b in itertools.pairwise(done[:-1]))
    assert len(lines) <= 2 + 100 / progress.LOG_EVERY_S
    assert "windows=200" in lines[-1]
    assert console.getvalue() == ""


def test_on_a_terminal_draws_a_bar_there_and_logs_nothing(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert progress.on_terminal()
    assert list(progress.progress(range(3), desc="stderr bar", unit="steps")) == [0, 1, 2]
    assert "stderr bar" in terminal.getvalue()

    console = _Terminal()
    progress.set_console(console)  # `mbqa run`: logs to a file, bars on the terminal
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress.on_terminal()
    list(progress.progress(range(3), desc="console bar", unit="steps"))
    assert "console bar" in console.getvalue() and "console bar" not in terminal.getvalue()
    assert caplog.records == []
