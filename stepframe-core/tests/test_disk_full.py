"""A full disk, for real: under the run history, the artifact store and the jobs folder.

Each test mounts a small tmpfs where the project keeps that state, fills it (before the
run, or from inside a step at a chosen point), and runs ``stepframe run`` in a separate
process.  Whatever the level at which the write fails, the user sees one line naming what
is full and where, no traceback, a non-zero exit; and the run either ends recorded, or,
when the history itself cannot be written, stays resumable with no half-written row.

Mounting needs root (as on CI).  Where it is not permitted the tests skip, unless
``STEPFRAME_REQUIRE_MOUNT=1`` or ``CI=true`` makes that a failure.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest

from stepframe._artifacts.io import load_artifact, save_artifact
from stepframe._artifacts.local import LocalArtifactStore
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._cli.errors import reports_errors
from stepframe._history.database import RunHistory
from stepframe.exceptions import StorageFullError
from stepframe.testing._small_disk import SmallDisk, small_disks

EXIT_FAILED = 1

PIPELINE = """
import os

from stepframe import pipeline, step


def fill_disk():
    # Fill the disk named by FILL_DIR from inside the step named by FILL_IN.
    from stepframe.testing._small_disk import fill

    fill(os.environ["FILL_DIR"], f"filler-{os.getpid()}")


def maybe_fill(name):
    if os.environ.get("FILL_IN") == name:
        fill_disk()


@step
def make() -> int:
    maybe_fill("make")
    return 1


@step(operator="local")
def remote(x: int) -> int:
    maybe_fill("remote")
    return x + 1


@step
def last(x: int) -> int:
    maybe_fill("last")
    return x * 10


@pipeline
def three():
    last(remote(make()))
"""


@pytest.fixture
def small_disk() -> Iterator[Callable[..., SmallDisk]]:
    """``small_disk(path, size="2m", inodes=None)``: a tmpfs mounted at ``path``."""
    with small_disks() as mount:
        yield mount


@pytest.fixture
def history_disk(project, small_disk) -> SmallDisk:
    """``.stepframe/`` (the history and the jobs folder) on a small disk of its own; the
    artifact store on another, roomy one, so that only the history fills."""
    disk = small_disk(project.state_dir, "2m")
    small_disk(project.state_dir / "artifacts", "16m")
    return disk


@pytest.fixture
def store_disk(project, small_disk) -> SmallDisk:
    """The project's artifact store on a small disk of its own."""
    return small_disk(project.state_dir / "artifacts", "1m")


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The process failed with one line on stderr and no traceback anywhere."""
    assert result.returncode == EXIT_FAILED, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stepframe: error: "), result.stderr
    return lines[0]


def recorded(project) -> tuple[list[tuple[str, str, str | None]], dict[str, str]]:
    """The runs (id, status, error) and the latest run's step statuses, read directly."""
    if not project.database_path.exists():
        return [], {}
    with sqlite3.connect(project.database_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        if not conn.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone():
            return [], {}
        runs = conn.execute("SELECT run_id, status, error FROM runs ORDER BY started_at").fetchall()
        steps = dict(
            conn.execute(
                "SELECT step, status FROM steps WHERE run_id = ?", (runs[-1][0],)
            ).fetchall()
            if runs
            else []
        )
    return runs, steps


# ---- the run history ---------------------------------------------------------------------


def test_history_disk_full_before_the_first_run(project, cli, history_disk) -> None:
    path = project.write(PIPELINE)
    history_disk.fill()
    line = one_error_line(cli("run", str(path)))
    assert f"the run history at {project.database_path} cannot be written: the disk is full" in (
        line
    )
    history_disk.free()
    assert recorded(project) == ([], {})


def test_history_disk_full_when_a_run_starts(project, cli, history_disk) -> None:
    path = project.write(PIPELINE)
    assert cli("run", str(path)).returncode == 0
    [(first, status, _)] = recorded(project)[0]
    assert status == "succeeded"
    history_disk.fill()
    line = one_error_line(cli("run", str(path), "--no-cache"))
    assert f"the run history at {project.database_path} cannot be written" in line
    assert "the disk is full" in line
    history_disk.free()
    runs, _ = recorded(project)
    assert [(run_id, status) for run_id, status, _ in runs] == [(first, "succeeded")]


@pytest.mark.parametrize("command", [("runs", "list"), ("jobs", "list")])
def test_listing_with_the_history_disk_full(project, cli, history_disk, command) -> None:
    path = project.write(PIPELINE)
    assert cli("run", str(path)).returncode == 0
    history_disk.fill()  # reading needs room too: SQLite's shared-memory file
    result = cli(*command)
    assert result.returncode == EXIT_FAILED, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"the run history at {project.database_path} cannot be written" in line


@pytest.mark.parametrize(
    "fill_in",
    [
        "make",  # in-process: the job ledger's and the step's rows after the step returns
        "remote",  # a local job fills it: the orchestrator's next ledger write
        "last",  # the last step: the writes that end the run
    ],
)
def test_history_disk_fills_during_a_run(project, cli, history_disk, fill_in) -> None:
    path = project.write(PIPELINE)
    fill = {"FILL_IN": fill_in, "FILL_DIR": str(project.state_dir)}
    line = one_error_line(cli("run", str(path), env=fill))
    assert f"the run history at {project.database_path} cannot be written" in line
    assert "the disk is full" in line
    assert "--resume" in line

    # Nothing half-written: the run is recorded as started and not finished, which
    # `runs list` shows as interrupted now that its process is gone, and it resumes.
    history_disk.free()
    [(run_id, status, error)] = recorded(project)[0]
    assert (status, error) == ("running", None)
    listing = cli("runs", "list")
    assert run_id in listing.stdout and "interrupted" in listing.stdout, listing.stdout
    resumed = cli("run", "--resume", run_id)
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    runs, steps = recorded(project)
    assert [(r, s) for r, s, _ in runs] == [(run_id, "succeeded")]
    assert set(steps.values()) == {"succeeded"}


PARALLEL = """
import os
import time

from stepframe import pipeline, step

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for(name):
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(HERE, name)) and time.monotonic() < deadline:
        time.sleep(0.01)


@step
def filler() -> int:
    if os.environ.get("FILL_DIR"):
        wait_for("slow-started")  # the local job is running when the history fills
        try:
            with open(os.path.join(os.environ["FILL_DIR"], "filler-step"), "ab") as f:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
        except OSError:
            pass
    return 1


@step(operator="local")
def slow() -> int:
    open(os.path.join(HERE, "slow-started"), "w").close()
    wait_for("slow-go")
    with open(os.path.join(HERE, "slow-runs"), "a") as f:
        f.write("x")
    return 2


@step
def join(a: int, b: int) -> int:
    return a + b


@pipeline
def parallel():
    join(filler(), slow())
"""


def test_history_disk_fills_while_a_local_job_runs(project, cli, history_disk) -> None:
    path = project.write(PARALLEL)
    line = one_error_line(cli("run", str(path), env={"FILL_DIR": str(project.state_dir)}))
    assert f"the run history at {project.database_path} cannot be written" in line
    history_disk.free()
    # The job is not stopped behind the ledger's back: --resume re-attaches to it.
    [(run_id, status, _)] = recorded(project)[0]
    assert f"stepframe run --resume {run_id}" in line
    (project.root / "slow-go").touch()
    assert status == "running"
    resumed = cli("run", "--resume", run_id)
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    runs, steps = recorded(project)
    assert [(r, s) for r, s, _ in runs] == [(run_id, "succeeded")]
    assert set(steps.values()) == {"succeeded"}
    assert (project.root / "slow-runs").read_text() == "x"  # the job ran once, in the end


def _history_with_a_run(path: Path) -> RunHistory:
    history = RunHistory(path)
    history.create_run("run-1", "three", project_root="/p")
    history.set_step("run-1", "make", status="running")
    history.list_runs()  # the WAL's files exist before the disk fills
    return history


WRITES: dict[str, Callable[[RunHistory], object]] = {
    "create_run": lambda h: h.create_run("run-2", "three", project_root="/p"),
    "set_step": lambda h: h.set_step("run-1", "make", status="succeeded", error="x" * 3000),
    "record_job_intent": lambda h: h.record_job_intent(
        "run-1", "make", attempt=1, flavor="local", operator="local"
    ),
    "finish_run": lambda h: h.finish_run("run-1", "failed", error="y" * 3000),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_each_history_write_on_a_full_disk(project, small_disk, write) -> None:
    disk = small_disk(project.state_dir, "1m")
    history = _history_with_a_run(project.database_path)
    try:
        disk.fill()
        with pytest.raises(StorageFullError) as raised:
            WRITES[write](history)
        assert str(raised.value).startswith(
            f"the run history at {project.database_path} cannot be written: the disk is full"
        )
        assert "\n" not in str(raised.value)
    finally:
        history.close()
    disk.free()
    with RunHistory(project.database_path) as reopened:
        [run] = reopened.list_runs()
        assert (run.run_id, run.status, run.error) == ("run-1", "running", None)
        [make] = reopened.get_steps("run-1")
        assert (make.status, make.error) == ("running", None)
        assert reopened.list_jobs() == []


def test_opening_the_history_on_a_full_disk(project, small_disk) -> None:
    disk = small_disk(project.state_dir, "256k")
    disk.fill()
    with pytest.raises(StorageFullError) as raised:
        RunHistory(project.database_path)
    assert raised.value.path == str(project.database_path)
    assert "the disk is full" in str(raised.value)


# ---- the artifact store ------------------------------------------------------------------


def test_store_disk_full_before_the_first_run(project, cli, store_disk) -> None:
    path = project.write(PIPELINE)
    store_disk.fill()
    line = one_error_line(cli("run", str(path)))
    store_root = project.state_dir / "artifacts"
    assert f"the artifact store at {store_root} cannot be written: the disk is full" in line
    assert f"while writing {store_root}/" in line


def test_store_disk_full_when_a_step_starts(project, cli, store_disk) -> None:
    path = project.write(PIPELINE)
    assert cli("run", str(path)).returncode == 0  # the store exists, with its marker
    store_disk.fill()
    result = cli("run", str(path), "--no-cache")
    assert result.returncode == EXIT_FAILED, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    runs, steps = recorded(project)
    run_id, status, error = runs[-1]
    assert status == "failed"
    assert steps == {"make": "failed", "remote": "skipped", "last": "skipped"}
    store_root = project.state_dir / "artifacts"
    assert error is not None and "\n" not in error
    assert f"the artifact store at {store_root} cannot be written: the disk is full" in error
    assert f"runs/{run_id}/make/attempt-1/launch.json" in error


@pytest.mark.parametrize("fill_in", ["make", "last"])
def test_store_disk_fills_in_an_in_process_step(project, cli, store_disk, fill_in) -> None:
    path = project.write(PIPELINE)
    fill = {"FILL_IN": fill_in, "FILL_DIR": str(project.state_dir / "artifacts")}
    result = cli("run", str(path), env=fill)
    assert result.returncode == EXIT_FAILED, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    runs, steps = recorded(project)
    [(run_id, status, error)] = runs
    assert status == "failed" and steps[fill_in] == "failed"
    store_root = project.state_dir / "artifacts"
    assert error is not None and "\n" not in error
    assert f"the artifact store at {store_root} cannot be written: the disk is full" in error
    assert f"runs/{run_id}/{fill_in}/attempt-1/" in error


def test_store_disk_fills_in_a_local_job(project, cli, store_disk) -> None:
    path = project.write(PIPELINE)
    fill = {"FILL_IN": "remote", "FILL_DIR": str(project.state_dir / "artifacts")}
    result = cli("run", str(path), env=fill)
    assert result.returncode == EXIT_FAILED, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    runs, steps = recorded(project)
    [(run_id, status, _error)] = runs
    assert status == "failed"
    assert steps == {"make": "succeeded", "remote": "failed", "last": "skipped"}
    # The job could not write its result either: the one line is in its log.
    store_root = project.state_dir / "artifacts"
    [line] = [line for line in result.stdout.splitlines() if "cannot be written" in line]
    assert f"the artifact store at {store_root} cannot be written: the disk is full" in line
    assert f"runs/{run_id}/remote/attempt-1/" in line


def test_loading_an_artifact_with_no_room_for_scratch_files(tmp_path, small_disk) -> None:
    store = LocalArtifactStore.at(tmp_path / "store", create=True)
    registry = MaterializerRegistry()
    ref = save_artifact(store, store.uri_for("value"), {"a": 1}, dict, registry)
    disk = small_disk(tmp_path / "state", "256k", inodes=1)  # not one more file or folder
    with pytest.raises(StorageFullError) as raised:
        load_artifact(store, ref, dict, registry, disk.path / "loaded")
    assert str(raised.value).startswith(
        f"the scratch folder for loaded artifacts at {disk.path / 'loaded'} cannot be written: "
        "the disk is full"
    )


# ---- the jobs folder ---------------------------------------------------------------------


def test_jobs_folder_without_room_for_a_log(project, cli, small_disk) -> None:
    path = project.write(PIPELINE)
    small_disk(project.state_dir / "jobs", "256k", inodes=1)  # the folder itself is the one
    result = cli("run", str(path))
    assert result.returncode == EXIT_FAILED, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    runs, steps = recorded(project)
    [(_run_id, status, error)] = runs
    assert status == "failed"
    assert steps == {"make": "succeeded", "remote": "failed", "last": "skipped"}
    assert error is not None and "\n" not in error
    assert str(project.state_dir / "jobs") in error
    assert "No space left on device" in error


# ---- whatever else the CLI meets ---------------------------------------------------------


def test_the_cli_reports_a_full_disk_met_anywhere_in_one_line(capsys) -> None:
    @reports_errors
    def command() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/p/.stepframe/loaded/x")

    with pytest.raises(SystemExit) as exited:
        click.Context(click.Command("run")).invoke(command)
    assert exited.value.code == EXIT_FAILED
    err = capsys.readouterr().err
    assert err == (
        "stepframe: error: cannot write /p/.stepframe/loaded/x: the disk is full "
        "(No space left on device); free space on that disk and retry\n"
    )


def test_the_shared_small_disk_fills_to_the_last_byte_frees_and_unmounts(tmp_path) -> None:
    """The one tmpfs helper this file and the crash suite use (`stepframe.testing`)."""
    folder = tmp_path / "disk"
    with small_disks() as mount:
        disk = mount(folder, "256k")
        disk.fill()  # checks that not one byte is left
        with pytest.raises(OSError) as full:
            (folder / "more").write_bytes(b"x")
        assert full.value.errno == errno.ENOSPC
        disk.free()
        (folder / "more").write_bytes(b"x")
        assert os.path.ismount(folder)
    assert not os.path.ismount(folder)
