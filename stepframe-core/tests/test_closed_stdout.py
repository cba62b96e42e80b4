"""``stepframe run ... | head -3``: a reader that goes away never fails a step or the run.

The console stops writing once stdout is a closed pipe; the run goes on, is recorded as
it ended, and the exit status follows the run, not the pipe.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from stepframe._orchestrator.console import PlainConsole

PIPELINE = """
import os
import time

from stepframe import pipeline, step

GO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go")


@step
def talk() -> int:
    # Wait until the test has closed its end of stdout, so every line below meets EPIPE.
    deadline = time.monotonic() + 60
    while not os.path.exists(GO) and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(50):
        print("talk line", i)
    return 1


@step(operator="local")
def talk_more(x: int) -> int:
    for i in range(50):
        print("local line", i)
    return x + 1


@step
def last(x: int) -> int:
    print("last line")
    return x * 10


@pipeline
def chatty():
    last(talk_more(talk()))
"""


def test_a_closed_stdout_fails_no_step_and_the_run_ends_recorded(project, subprocess_env) -> None:
    path = project.write(PIPELINE)
    process = subprocess.Popen(
        [sys.executable, "-m", "stepframe", "run", str(path)],
        cwd=project.root,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        assert first.startswith("run "), first
        process.stdout.close()  # what `| head -1` does once it has its line
        (project.root / "go").touch()
        stderr = process.stderr.read()
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert "Traceback" not in stderr, stderr
    assert "BrokenPipe" not in stderr, stderr
    assert code == 0, stderr
    with sqlite3.connect(project.database_path) as conn:
        runs = conn.execute("SELECT status, error FROM runs").fetchall()
        steps = dict(conn.execute("SELECT step, status FROM steps").fetchall())
        errors = [e for (e,) in conn.execute("SELECT error FROM steps") if e]
    assert runs == [("succeeded", None)]
    assert steps == {"talk": "succeeded", "talk_more": "succeeded", "last": "succeeded"}
    assert errors == []


def test_the_console_stops_writing_into_a_closed_pipe() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w")
    try:
        console = PlainConsole(stream)
        console.message("nobody reads this")  # EPIPE: swallowed
        console.step_state("a", "running")
        console.step_log("a", "a log line")
        console.step_state("a", "succeeded")
        console.close()
        stream.write("what the interpreter flushes at exit\n")
        stream.flush()  # goes to /dev/null now, not into the closed pipe
    finally:
        stream.close()
