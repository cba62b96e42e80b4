"""What a run shows while it goes: step states, elapsed times and streamed log lines.

On a terminal a status block is redrawn in place below the scrolling log lines; when
stdout is a pipe or a file every event is one plain line, so CI logs stay readable.

The block is redrawn by moving the cursor up over as many lines as it drew, so each of
its lines must take exactly one row: they are cropped to the terminal's width, and the
block to its height.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import TextIO

__all__ = ["Console", "LiveConsole", "PlainConsole", "QuietConsole", "make_console"]

_SYMBOLS = {
    "pending": ".",
    "running": ">",
    "succeeded": "+",
    "cached": "=",
    "failed": "x",
    "skipped": "-",
    "cancelled": "!",
}


class Console:
    """The events a run reports; the base class shows nothing."""

    def step_state(self, step: str, state: str, detail: str = "") -> None:
        """A step entered ``state`` (see ``_SYMBOLS``); ``detail`` is shown beside it."""

    def step_log(self, step: str, line: str) -> None:
        """One log line the step's job wrote."""

    def message(self, text: str) -> None:
        """A line from the orchestrator itself."""

    def close(self) -> None:
        """The run is over; stop redrawing."""


QuietConsole = Console


class PlainConsole(Console):
    """One line per event, for pipes, files and CI.

    When the reader goes away (``stepframe run ... | head -3``) the console stops writing
    and the run goes on: what a run shows is never a reason for a step to fail.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._reader_gone = False

    def _write(self, text: str) -> None:
        with self._lock:
            self._emit(text + "\n")

    def _emit(self, text: str) -> None:
        """Write and flush, with ``self._lock`` held; after EPIPE, write nothing more."""
        if self._reader_gone:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone = True
            _discard_further_output(self._stream)

    def step_state(self, step: str, state: str, detail: str = "") -> None:
        if state == "pending":
            return  # every step starts pending; saying so line by line is noise
        now = time.monotonic()
        if state == "running":
            self._started.setdefault(step, now)
        elapsed = ""
        if state not in ("pending", "running") and step in self._started:
            elapsed = f" in {now - self._started[step]:.1f}s"
        suffix = f" ({detail})" if detail else ""
        self._write(f"[{step}] {state}{elapsed}{suffix}")

    def step_log(self, step: str, line: str) -> None:
        self._write(f"{step} | {line}")

    def message(self, text: str) -> None:
        self._write(text)


class LiveConsole(PlainConsole):
    """A status block redrawn in place, with log lines scrolling above it."""

    def __init__(self, stream: TextIO | None = None, refresh_seconds: float = 0.25) -> None:
        super().__init__(stream)
        # The states, the times and what was drawn: read and changed with ``self._lock``
        # held, since worker threads report states while the refresh thread draws them.
        self._states: dict[str, tuple[str, str]] = {}
        self._ended: dict[str, float] = {}
        self._drawn_lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._refresh_loop, args=(refresh_seconds,), daemon=True
        )
        self._thread.start()

    def _status_block(self) -> list[str]:
        """The block's lines, each one row of the terminal; with ``self._lock`` held."""
        now = time.monotonic()
        width = max((len(name) for name in self._states), default=0)
        columns, rows = _terminal_size(self._stream)
        lines = []
        for name, (state, detail) in self._states.items():
            started = self._started.get(name)
            elapsed = ""
            if started is not None:
                elapsed = f"{self._ended.get(name, now) - started:6.1f}s"
            symbol = _SYMBOLS.get(state, "?")
            line = f" {symbol} {name:<{width}}  {state:<9} {elapsed:>7}  {_one_line(detail)}"
            lines.append(line.rstrip())
        # The cursor cannot go up past the top of the screen: keep the block below it,
        # with a row left for the cursor under the block.
        if len(lines) > rows - 1:
            shown = max(rows - 2, 0)
            lines = [*lines[:shown], f"   ... and {len(lines) - shown} more steps"]
        # One column short of the width: some terminals wrap a line that fills the row.
        return [line[: max(columns - 1, 1)] for line in lines]

    def _redraw(self, above: str = "") -> None:
        with self._lock:
            out = []
            if self._drawn_lines:
                out.append(f"\x1b[{self._drawn_lines}F\x1b[J")
            if above:
                out.append(above + "\n")
            block = self._status_block()
            out.extend(line + "\n" for line in block)
            self._drawn_lines = len(block)
            self._emit("".join(out))

    def _refresh_loop(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            with self._lock:
                running = any(state == "running" for state, _ in self._states.values())
            if running:
                self._redraw()

    def step_state(self, step: str, state: str, detail: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            if state == "running":
                self._started.setdefault(step, now)
            elif state != "pending":
                self._ended[step] = now
            self._states[step] = (state, detail)
        self._redraw()

    def step_log(self, step: str, line: str) -> None:
        self._redraw(f"{step} | {line}")

    def message(self, text: str) -> None:
        self._redraw(text)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self._redraw()


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    """The columns and rows of the terminal ``stream`` writes to (80 x 24 if unknown)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        size = shutil.get_terminal_size()
    # A terminal that says 0 x 0 (some do, over serial lines or in containers): the default.
    return (size.columns or 80, size.lines or 24)


def _one_line(text: str) -> str:
    """``text`` on one row: a line break in a detail would push the block down a row."""
    return " ".join(text.splitlines())


def _discard_further_output(stream: TextIO) -> None:
    """Point the closed pipe's file descriptor at ``/dev/null``.

    The stream's buffer still holds what could not be written, and Python flushes it at
    exit: into a closed pipe that prints "Exception ignored ... BrokenPipeError" and
    turns the exit status into 120, whatever the run's outcome.
    """
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a file (a StringIO, say): nothing will flush it into a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def make_console(stream: TextIO | None = None) -> Console:
    """A live console on a terminal, plain lines otherwise (or when ``TERM=dumb``)."""
    stream = stream or sys.stdout
    if stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb"):
        return LiveConsole(stream)
    return PlainConsole(stream)
