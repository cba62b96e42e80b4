"""The live status block (LiveConsole): states reported from many threads while it draws,
and lines that fit the terminal it draws on."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios
import threading
from types import TracebackType

from stepframe._orchestrator.console import LiveConsole

NEVER = 3600.0  # the refresh thread's period: the tests draw through the events alone


class WatchedLock:
    """A lock that tells who asked for it, so a test knows a thread waits on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked = threading.Condition()
        self.askers: list[str] = []

    def __enter__(self) -> None:
        with self._asked:
            self.askers.append(threading.current_thread().name)
            self._asked.notify_all()
        self._lock.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def wait_for_asker(self, name: str) -> bool:
        with self._asked:
            return self._asked.wait_for(lambda: name in self.askers, timeout=30)


class PausingName(str):
    """A step name whose drawing waits until the test lets it go on."""

    def __new__(cls, text: str) -> PausingName:
        name = super().__new__(cls, text)
        name.drawing = threading.Event()
        name.go_on = threading.Event()
        return name

    drawing: threading.Event
    go_on: threading.Event

    def __format__(self, spec: str) -> str:
        self.drawing.set()
        assert self.go_on.wait(timeout=30), "the test never let the drawing go on"
        return str.__format__(str(self), spec)


def test_a_state_reported_while_the_block_is_drawn_waits_for_the_drawing() -> None:
    """A worker thread adds a step while another thread draws the states (it used to die
    of "dictionary changed size during iteration")."""
    console = LiveConsole(io.StringIO(), refresh_seconds=NEVER)
    lock = WatchedLock()
    console._lock = lock  # type: ignore[assignment]  # the console's own lock, watched
    first = PausingName("first")
    errors: list[BaseException] = []

    def report(step: str, state: str, text: str) -> None:
        try:
            console.step_state(step, state, text)
        except BaseException as error:
            errors.append(error)

    drawing = threading.Thread(target=report, args=(first, "running", ""), name="draw")
    drawing.start()
    assert first.drawing.wait(timeout=30)  # the block is being drawn, mid-way
    adding = threading.Thread(target=report, args=("second", "running", ""), name="add")
    adding.start()
    assert lock.wait_for_asker("add")  # the second state is being reported
    first.go_on.set()
    drawing.join(timeout=30)
    adding.join(timeout=30)
    assert not drawing.is_alive() and not adding.is_alive()
    console.close()

    assert errors == []
    assert set(console._states) == {"first", "second"}


def _pty_console(columns: int, rows: int) -> tuple[LiveConsole, int, io.TextIOWrapper]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    stream = open(slave, "w", encoding="utf-8")  # closed by the test
    return LiveConsole(stream, refresh_seconds=NEVER), master, stream


def _read_all(master: int, received: list[bytes]) -> None:
    """What the terminal is sent, until its other end is closed (a full pty blocks)."""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end closed
            return
        if not chunk:
            return
        received.append(chunk)


def _screen_lines(data: bytes) -> list[str]:
    """The lines the terminal was sent, without the cursor-moving escape codes."""
    text = re.sub(r"\x1b\[\d*[A-Za-z]", "", data.decode())
    return [line for line in text.replace("\r\n", "\n").split("\n") if line]


def test_the_block_fits_the_terminal_it_draws_on() -> None:
    console, master, stream = _pty_console(columns=40, rows=8)
    received: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, received), daemon=True)
    reader.start()
    try:
        for number in range(20):
            console.step_state(f"step_{number}", "running", "x" * 100 + "\nsecond line")
        console.close()
        block = console._status_block()
    finally:
        stream.close()
        reader.join(timeout=30)
        os.close(master)
    assert not reader.is_alive()
    lines = _screen_lines(b"".join(received))

    assert len(block) == 7  # a row left for the cursor below the block
    assert block[-1] == "   ... and 14 more steps"
    assert block[0].startswith(" > step_0 ")
    assert all(len(line) <= 39 for line in lines), [line for line in lines if len(line) > 39]
    assert not any("second line" in line for line in lines)  # a detail's line break: a space
