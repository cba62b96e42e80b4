"""Resuming a killed run, the job ledger commands, step caching, dry runs and the
settings layers, all through the ``stepframe`` command in real processes.

Steps count their executions by appending their process id to a file, so a test can tell
"ran again", "ran once" and "the same process finished it" apart.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def executions(project, step: str) -> list[int]:
    """The process ids that ran ``step``, in order."""
    path = project.root / f"{step}.runs"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def job_rows(project) -> int:
    if not project.database_path.exists():
        return 0
    with sqlite3.connect(project.database_path) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


def wait_for(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


class Output:
    """What a process prints, read on a thread so that waiting for a line can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stream = process.stdout
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not printed; got:\n" + "\n".join(self.lines))
            try:
                line = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{text!r} not printed; got:\n" + "\n".join(self.lines))
            self.lines.append(line)

    def rest(self) -> str:
        while (line := self._queue.get(timeout=30)) is not None:
            self.lines.append(line)
        return "\n".join(self.lines)


# ---- resume ------------------------------------------------------------------------------

RESUMABLE = """
import os
import time
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


def _count(name):
    with open(HERE / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")


@step
def first() -> int:
    _count("first")
    return 20


@step(operator="local")
def middle(x: int) -> int:
    _count("middle")
    print("started", flush=True)
    deadline = time.monotonic() + 60
    while not (HERE / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("released", flush=True)
    return x + 1


@step
def last(y: int) -> int:
    _count("last")
    print("result", y * 2)
    return y * 2


@pipeline
def resumable():
    last(middle(first()))
"""


@pytest.fixture
def killed_run(project, cli_popen):
    """Start ``stepframe run`` on RESUMABLE, let ``middle`` start, SIGKILL the run.

    Returns the run id and the pid of ``middle``'s still running job process."""
    started: list[int] = []

    def start(*options: str, kill: bool = True) -> tuple[str, int, subprocess.Popen[str]]:
        path = project.write(RESUMABLE, name=f"resumable_{uuid.uuid4().hex[:8]}")
        process = cli_popen("run", str(path), *options)
        output = Output(process)
        output.wait_for("middle | started")
        (job,) = executions(project, "middle")
        started.append(job)
        with project.history() as history:
            (run,) = history.list_runs()
        if kill:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert not gone(job)  # the job outlives the orchestrator
        return run.run_id, job, process

    yield start
    (project.root / "release").touch()
    for pid in started:  # never leave a step process behind
        if not gone(pid):
            os.killpg(pid, signal.SIGKILL)


def test_a_killed_run_resumes_reattaching_to_its_running_job(
    project, cli, cli_popen, killed_run
) -> None:
    run_id, job, _ = killed_run()

    running = ok(cli("jobs", "list", "--running")).splitlines()
    assert running[0].split() == [
        "RUN",
        "STEP",
        "FLAVOR",
        "JOB",
        "ID",
        "STATE",
        "STARTED",
        "DURATION",
    ]
    assert [line.split()[:5] for line in running[1:]] == [
        [run_id, "middle", "local", str(job), "running"]
    ]

    resumed = cli_popen("run", "--resume", run_id)  # no FILE: the run record has it
    output = Output(resumed)
    output.wait_for(f"[middle] running (re-attached to local job {job})")
    assert not gone(job)
    (project.root / "release").touch()
    assert resumed.wait(timeout=30) == 0
    text = output.rest()

    assert f"resuming {run_id} of pipeline 'resumable'" in text
    assert "[first] succeeded (done before the interruption)" in text
    assert "middle | released" in text
    assert f"run {run_id} succeeded" in text
    assert len(executions(project, "first")) == 1  # taken from its recorded artifact
    assert executions(project, "middle") == [job]  # never started again
    assert len(executions(project, "last")) == 1
    assert "last | result 42" in text
    with project.history() as history:
        run = history.get_run(run_id)
        steps = {s.step: (s.status, s.attempt, s.job_id) for s in history.get_steps(run_id)}
        jobs = history.list_jobs(run_id=run_id)
    assert run.status == "succeeded" and run.pid == resumed.pid
    assert steps["middle"] == ("succeeded", 1, str(job))
    assert [(j.step, j.attempt, j.state) for j in jobs] == [
        ("first", 1, "succeeded"),
        ("middle", 1, "succeeded"),
        ("last", 1, "succeeded"),
    ]
    assert ok(cli("jobs", "list", "--running")) == "no running jobs\n"

    result = cli("run", "--resume", run_id)
    assert result.returncode == 2
    assert f"run {run_id} already succeeded; there is nothing to resume" in result.stderr


def test_a_job_that_ended_while_nobody_watched_is_not_run_again(project, cli, killed_run) -> None:
    """The job finished after its orchestrator died: the resume reads its result."""
    run_id, job, _ = killed_run()
    (project.root / "release").touch()
    wait_for(lambda: gone(job), what="the job to end")
    out = ok(cli("run", "--resume", run_id))
    assert f"[middle] running (re-attached to local job {job})" in out
    assert "last | result 42" in out
    assert executions(project, "middle") == [job]
    assert len(executions(project, "first")) == 1


def test_a_resumed_run_keeps_its_stack_and_run_config(project, cli, killed_run) -> None:
    ok(cli("artifact-store", "register", "elsewhere", "-f", "local", "--path", "elsewhere"))
    ok(cli("stack", "register", "alt", "-a", "elsewhere"))
    config = '[steps.last.settings.local]\nenvironment = { FROM = "run-config" }\n'
    (project.root / "run.toml").write_text(config)
    run_id, job, _ = killed_run("--stack", "alt", "--config", "run.toml")
    (project.root / "run.toml").unlink()  # the settings were recorded with the run
    (project.root / "release").touch()

    out = ok(cli("run", "--resume", run_id))

    assert f"resuming {run_id} of pipeline 'resumable' (3 steps, stack 'alt')" in out
    assert f"[middle] running (re-attached to local job {job})" in out
    assert len(executions(project, "first")) == 1  # its output was found in alt's store
    assert executions(project, "middle") == [job]
    launch = project.root / "elsewhere" / "runs" / run_id / "last" / "attempt-1" / "launch.json"
    assert json.loads(launch.read_text())["settings"]["local"] == {
        "environment": {"FROM": "run-config"}
    }


def test_a_run_whose_orchestrator_lives_is_not_resumed(project, cli, killed_run) -> None:
    run_id, job, process = killed_run(kill=False)
    result = cli("run", "--resume", run_id[:15])  # a unique prefix of the id will do
    assert result.returncode == 2
    assert f"run {run_id} is still being run by process {process.pid}" in result.stderr
    assert executions(project, "middle") == [job]
    (project.root / "release").touch()
    assert process.wait(timeout=30) == 0
    assert len(executions(project, "first")) == 1


def test_a_resumed_run_restarts_steps_that_died_with_the_orchestrator(
    project, cli, cli_popen
) -> None:
    """In-process steps die with their orchestrator: they run again, as attempt 2, and the
    ledger no longer shows the dead attempt as running."""
    source = RESUMABLE.replace('@step(operator="local")', "@step")
    path = project.write(source, name=f"inproc_{uuid.uuid4().hex[:8]}")
    process = cli_popen("run", str(path))
    Output(process).wait_for("middle | started")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    with project.history() as history:
        (run,) = history.list_runs()
    assert "middle" in ok(cli("jobs", "list", "--running"))

    (project.root / "release").touch()
    ok(cli("run", "--resume", run.run_id))
    assert len(executions(project, "first")) == 1
    assert len(executions(project, "middle")) == 2
    with project.history() as history:
        jobs = [(j.step, j.attempt, j.state) for j in history.list_jobs(run_id=run.run_id)]
    assert ("middle", 2, "succeeded") in jobs
    assert ("middle", 1, "failed") in jobs  # it died with the killed orchestrator
    assert ok(cli("jobs", "list", "--running")) == "no running jobs\n"


# ---- jobs stop / attach --------------------------------------------------------------------


def test_jobs_stop_stops_a_job_nobody_follows(project, cli, killed_run) -> None:
    run_id, job, _ = killed_run()
    out = ok(cli("jobs", "stop", str(job)))
    assert f"stopped local job {job} (step middle of run {run_id})" in out
    assert gone(job)
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
    assert row.state == "cancelled"
    assert ok(cli("jobs", "list", "--running")) == "no running jobs\n"
    assert "already ended (cancelled)" in ok(cli("jobs", "stop", str(job)))
    result = cli("jobs", "stop", "999999999")
    assert result.returncode == 2 and "no job '999999999' in the ledger" in result.stderr


def test_jobs_attach_follows_a_job_to_its_end(project, cli_popen, killed_run) -> None:
    run_id, job, _ = killed_run()
    attached = cli_popen("jobs", "attach", str(job))
    output = Output(attached)
    output.wait_for(f"following local job {job} (step middle of run {run_id})")
    output.wait_for("middle | started")  # the log so far
    (project.root / "release").touch()
    assert attached.wait(timeout=30) == 0
    text = output.rest()
    assert "middle | released" in text
    assert text.endswith(f"job {job} succeeded")
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
    assert row.state == "succeeded"


# ---- caching -------------------------------------------------------------------------------

COUNTING = """
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def count(name):
    with open(HERE / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")
"""

STEPS_A = (
    COUNTING
    + """
from stepframe import step


def helper(value):
    return value * 2


@step
def first(x: int) -> int:
    count("first")
    return x + 1


@step(operator="local")
def second(y: int) -> int:
    count("second")
    return helper(y)
"""
)

STEPS_B = (
    COUNTING
    + """
from stepframe import step


@step
def third(label: str) -> str:
    count("third")
    return label.upper()


@step(cache=False)
def always(label: str) -> str:
    count("always")
    return label
"""
)

PIPELINE = """
from stepframe import pipeline

from {a} import first, second
from {b} import always, third

START = 1
SECOND = second


@pipeline
def cached():
    SECOND(first(START))
    always(third("fixed"))
"""


def test_unchanged_steps_are_cached_and_each_kind_of_change_reruns(project, cli) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = f"steps_a_{tag}", f"steps_b_{tag}"
    module_a = project.write(STEPS_A, name=a)
    project.write(STEPS_B, name=b)
    path = project.write(PIPELINE.format(a=a, b=b), name=f"cached_{tag}")
    counted = ("first", "second", "third", "always")

    def run(*options: str) -> tuple[str, dict[str, int]]:
        before = {name: len(executions(project, name)) for name in counted}
        out = ok(cli("run", str(path), *options))
        after = {name: len(executions(project, name)) - before[name] for name in counted}
        return out, after

    out, ran = run()
    assert ran == {"first": 1, "second": 1, "third": 1, "always": 1}
    rows = job_rows(project)
    assert rows == 4

    # Unchanged: nothing dispatched, nothing executed (but the cache=False step).
    out, ran = run()
    assert ran == {"first": 0, "second": 0, "third": 0, "always": 1}
    assert "[first] cached (outputs of run" in out and "[second] cached" in out
    assert "succeeded: 3 cached, 1 succeeded" in out
    assert job_rows(project) == rows + 1  # only `always`
    rows = job_rows(project)

    # A changed input: `first` and the step it feeds run again, the rest is cached.
    path.write_text(path.read_text().replace("START = 1", "START = 2"))
    out, ran = run()
    assert ran == {"first": 1, "second": 1, "third": 0, "always": 1}
    assert job_rows(project) == rows + 3
    rows = job_rows(project)

    # Changed code: the step's own body.
    module_a.write_text(module_a.read_text().replace("return helper(y)", "return helper(y) + 0"))
    out, ran = run()
    assert ran["second"] == 1 and ran["third"] == 0

    # Changed code: a helper in the step's module.
    module_a.write_text(module_a.read_text().replace("value * 2", "value * 3"))
    out, ran = run()
    assert ran["second"] == 1 and ran["third"] == 0

    # A changed setting.
    with_setting = 'second.with_options(settings={"local": {"environment": {"K": "%s"}}})'
    path.write_text(path.read_text().replace("SECOND = second", "SECOND = " + with_setting % 1))
    out, ran = run()
    assert ran == {"first": 0, "second": 1, "third": 0, "always": 1}
    path.write_text(path.read_text().replace('"K": "1"', '"K": "2"'))
    out, ran = run()
    assert ran == {"first": 0, "second": 1, "third": 0, "always": 1}

    # --no-cache runs everything.
    rows = job_rows(project)
    out, ran = run("--no-cache")
    assert ran == {"first": 1, "second": 1, "third": 1, "always": 1}
    assert "] cached" not in out
    assert job_rows(project) == rows + 4


def test_a_helper_edited_in_a_long_lived_process_reruns_the_step(project, run) -> None:
    """A notebook runs a pipeline, edits a module and reloads it: the edit counts."""
    source = """
from stepframe import pipeline, step


def helper():
    return 1


@step
def use_helper() -> int:
    return helper()


@pipeline
def edited():
    use_helper()
"""
    module = project.module(source)
    assert run(module.edited).steps["use_helper"].status == "succeeded"
    assert run(module.edited).steps["use_helper"].status == "cached"
    path = Path(module.__file__)
    path.write_text(path.read_text().replace("return 1", "return 1000"))
    module = importlib.reload(module)
    result = run(module.edited)
    assert result.steps["use_helper"].status == "succeeded"
    assert result.output("use_helper") == 1000


def test_a_run_without_the_cache_refreshes_what_later_runs_reuse(project, run) -> None:
    """A step that reads what its cache key cannot see (a file) is refreshed with
    ``--no-cache``; the next run must reuse the fresh outputs, not the stale ones."""
    (project.root / "data.txt").write_text("old")
    module = project.module(
        """
from pathlib import Path

from stepframe import pipeline, step


@step
def read() -> str:
    return Path("data.txt").read_text()


@pipeline
def reads_a_file():
    read()
"""
    )
    assert run(module.reads_a_file).output("read") == "old"
    (project.root / "data.txt").write_text("new")
    cached = run(module.reads_a_file)
    assert cached.steps["read"].status == "cached" and cached.output("read") == "old"
    assert run(module.reads_a_file, use_cache=False).output("read") == "new"
    again = run(module.reads_a_file)
    assert again.steps["read"].status == "cached"
    assert again.output("read") == "new"


def test_a_step_moved_to_another_operator_runs_again(project, run) -> None:
    module = project.module(
        """
from stepframe import pipeline, step


@step
def where() -> int:
    import os

    return os.getpid()


@pipeline
def here():
    where()


@pipeline
def elsewhere():
    where.with_options(operator="local")()
"""
    )
    first = run(module.here)
    assert run(module.here).steps["where"].status == "cached"
    moved = run(module.elsewhere)
    assert moved.steps["where"].status == "succeeded"
    assert moved.output("where") not in (first.output("where"), os.getpid())
    assert run(module.elsewhere).steps["where"].status == "cached"


# ---- dry runs and settings layers ----------------------------------------------------------

LAYERED = """
import os

from stepframe import pipeline, step


def report(name):
    print(f"{name} LEVEL={os.environ.get('LEVEL', 'unset')}")


@step(operator="local")
def plain() -> None:
    report("plain")


@step(operator="local", settings={"local": {"environment": {"LEVEL": "step"}}})
def own() -> None:
    report("own")


@step(operator="local", settings={"local": {"environment": {"LEVEL": "step"}}})
def targeted() -> None:
    report("targeted")


@step
def here() -> None:
    pass


@pipeline(settings={"local": {"environment": {"LEVEL": "pipeline"}}})
def layered():
    plain()
    own()
    targeted()
    here()
"""

RUN_CONFIG = """
[settings.local]
environment = { LEVEL = "run" }

[steps.targeted.settings.local]
environment = { LEVEL = "run-step" }
"""


def dry_run_settings(out: str) -> dict[str, tuple[str, str]]:
    """step -> (operator line, its settings.local line) from --dry-run output."""
    found: dict[str, tuple[str, str]] = {}
    current = ""
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.split(":")[0]
            found[current] = (line, "")
        elif line.strip().startswith("settings.local = "):
            found[current] = (found[current][0], line.strip().removeprefix("settings.local = "))
    return found


def test_settings_layers_pipeline_step_run_config_and_step_run_config(project, cli) -> None:
    path = project.write(LAYERED, name=f"layered_{uuid.uuid4().hex[:8]}")
    out = ok(cli("run", str(path), "--dry-run"))
    pipeline, step = '{"environment": {"LEVEL": "pipeline"}}', '{"environment": {"LEVEL": "step"}}'
    assert dry_run_settings(out) == {
        "plain": ("plain: operator local (flavor local)", pipeline),
        "own": ("own: operator local (flavor local)", step),
        "targeted": ("targeted: operator local (flavor local)", step),
        # Settings for every flavor are resolved (and recorded) for every step.
        "here": ("here: operator inprocess (flavor inprocess)", pipeline),
    }
    assert not project.state_dir.exists()  # a dry run writes nothing

    config = project.root / "run.toml"
    config.write_text(RUN_CONFIG)
    out = ok(cli("run", str(path), "--dry-run", "--config", str(config)))
    assert {step: values for step, (_, values) in dry_run_settings(out).items()} == {
        "plain": '{"environment": {"LEVEL": "run"}}',
        "own": '{"environment": {"LEVEL": "run"}}',
        "targeted": '{"environment": {"LEVEL": "run-step"}}',
        "here": '{"environment": {"LEVEL": "run"}}',
    }
    assert not project.state_dir.exists()

    # What the steps' processes see.
    out = ok(cli("run", str(path), "--config", str(config)))
    assert "plain | plain LEVEL=run" in out
    assert "own | own LEVEL=run" in out
    assert "targeted | targeted LEVEL=run-step" in out
    out = ok(cli("run", str(path), "--no-cache"))
    assert "plain | plain LEVEL=pipeline" in out
    assert "own | own LEVEL=step" in out
    assert "targeted | targeted LEVEL=step" in out


COMPONENT_DEFAULTS = """
import os

from stepframe import pipeline, step


@step(operator="batch")
def defaults() -> None:
    print("LEVEL", os.environ.get("LEVEL"), "SPOT", os.environ.get("ACME_SPOT"))


@step(operator="batch", settings={"acme": {"environment": {"LEVEL": "step"}}})
def overridden() -> None:
    print("LEVEL", os.environ.get("LEVEL"), "SPOT", os.environ.get("ACME_SPOT"))


@pipeline
def component_defaults():
    defaults()
    overridden()
"""


def test_settings_start_from_the_operator_components_defaults(project, cli, acme) -> None:
    env = acme.env
    ok(
        cli(
            "step-operator", "register", "batch", "-f", "acme", "--project", "p",
            "--spot", "true", "--environment", '{"LEVEL": "component"}', env=env,
        )
    )  # fmt: skip
    ok(cli("stack", "register", "acme", "-s", "batch", "--set", env=env))
    path = project.write(COMPONENT_DEFAULTS, name=f"defaults_{uuid.uuid4().hex[:8]}")
    out = ok(cli("run", str(path), "--dry-run", env=env))
    assert out.splitlines() == [
        "defaults: operator batch (flavor acme)",
        '    settings.acme = {"environment": {"LEVEL": "component"}, "spot": true}',
        "    cache: runs (no runs recorded yet)",
        "overridden: operator batch (flavor acme)",
        '    settings.acme = {"environment": {"LEVEL": "step"}, "spot": true}',
        "    cache: runs (no runs recorded yet)",
    ]
    out = ok(cli("run", str(path), env=env))
    assert "defaults | LEVEL component SPOT true" in out
    assert "overridden | LEVEL step SPOT true" in out


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (
            "[steps.nope.settings.local]\nenvironment = {}\n",
            "the run config has settings for step(s) nope, which pipeline 'layered' does not "
            "have (its steps: plain, own, targeted, here)",
        ),
        (
            "stack = 'x'\n",
            "run.toml: unknown key(s) stack; a run config holds [parameters], [settings.FLAVOR]",
        ),
        ("[steps.own]\noperator = 'local'\n", "run.toml: steps.own: unknown key(s) operator"),
        (
            "[settings.local]\nenviron = {}\n",
            "step 'plain' settings.local: unknown key(s) environ",
        ),
        (
            "[settings.local]\nenvironment = 'LEVEL=x'\n",
            "step 'plain' settings.local.environment: expected a table, got str 'LEVEL=x'",
        ),
        (
            "[settings.lcoal]\nenvironment = {}\n",
            "step 'plain' has settings for 'lcoal', which is not an installed flavor",
        ),
        ("[settings.local\n", "run.toml:1:"),
    ],
    ids=[
        "unknown-step",
        "unknown-key",
        "unknown-step-key",
        "unknown-setting",
        "wrong-type",
        "unknown-flavor",
        "syntax",
    ],
)
def test_a_bad_run_config_is_refused_before_anything_runs(project, cli, config, error) -> None:
    path = project.write(LAYERED, name=f"layered_{uuid.uuid4().hex[:8]}")
    (project.root / "run.toml").write_text(config)
    # (--dry-run checks the same way: see the layers test.)
    result = cli("run", str(path), "--config", "run.toml")
    assert result.returncode != 0
    assert error in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not project.state_dir.exists()


def test_a_history_from_before_resume_options_is_upgraded(project) -> None:
    """A version 1 run history (no stack or run settings per run) opens, and its runs
    read back with neither."""
    from stepframe._history.database import _MIGRATIONS, RunHistory

    project.state_dir.mkdir()
    with sqlite3.connect(project.database_path) as conn:
        _MIGRATIONS[1](conn)
        conn.execute(
            "INSERT INTO runs (run_id, pipeline, status, started_at, pid, hostname,"
            " project_root) VALUES ('old', 'p', 'failed', 1.0, 1, 'h', '/p')"
        )
        conn.execute("PRAGMA user_version = 1")
    with RunHistory(project.database_path) as history:
        old = history.get_run("old")
        assert (old.stack, old.run_settings) == (None, None)
        history.create_run("new", "p", project_root="/p", stack="s", run_settings={"x": {}})
        new = history.get_run("new")
        assert (new.stack, new.run_settings) == ("s", {"x": {}})
