"""The run history and ``stepframe runs`` against real SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
import pytest
from click.testing import CliRunner

from stepframe._cli.runs import runs
from stepframe._history import database
from stepframe._history.database import SCHEMA_VERSION, RunHistory, new_run_id
from stepframe._types import ArtifactRef, JobHandle, JobState
from stepframe.exceptions import UsageError

SRC = Path(database.__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".stepframe" / "history.db"


@pytest.fixture
def history(db_path: Path) -> Iterator[RunHistory]:
    with RunHistory(db_path) as opened:
        yield opened


def _schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


# -- schema ------------------------------------------------------------------------------


def test_schema_is_created_once_and_reopening_keeps_data(db_path: Path) -> None:
    with RunHistory(db_path) as first:
        first.create_run("r1", "pipe", project_root="/p")
    schema = _schema(db_path)
    assert {"runs", "steps", "jobs", "artifacts", "steps_cache_key"} <= {n for n, _ in schema}

    with RunHistory(db_path) as second:
        assert second.get_run("r1").pipeline == "pipe"
    assert _schema(db_path) == schema

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_newer_schema_is_refused_with_advice(db_path: Path) -> None:
    RunHistory(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match="upgrade stepframe-core"):
        RunHistory(db_path)


def test_foreign_keys_are_enforced(history: RunHistory) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        history.set_step("no-such-run", "train", status="running")


# -- runs --------------------------------------------------------------------------------


def test_run_round_trip(history: RunHistory, tmp_path: Path) -> None:
    before = time.time()
    history.create_run("r1", "training", project_root=tmp_path, params={"lr": 0.1, "p": Path("x")})
    run = history.get_run("r1")
    assert run.pipeline == "training"
    assert run.status == "running"
    assert before <= run.started_at <= time.time()
    assert run.ended_at is None
    assert run.pid == os.getpid()
    assert run.hostname
    assert run.project_root == str(tmp_path)
    assert run.params == {"lr": 0.1, "p": "x"}

    history.finish_run("r1", "failed", error="step 'train' failed")
    run = history.get_run("r1")
    assert run.status == "failed"
    assert run.ended_at is not None and run.ended_at >= run.started_at
    assert run.error == "step 'train' failed"


def test_finish_run_checks_status_and_run(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")
    with pytest.raises(ValueError, match="running"):
        history.finish_run("r1", "running")
    with pytest.raises(UsageError, match="no run 'r2'"):
        history.finish_run("r2", "succeeded")


def test_list_runs_newest_first_with_limit(history: RunHistory) -> None:
    for name in ("a", "b", "c"):
        history.create_run(name, "p", project_root="/p")
    assert [r.run_id for r in history.list_runs()] == ["c", "b", "a"]
    assert [r.run_id for r in history.list_runs(limit=2)] == ["c", "b"]


def test_new_run_id_is_sortable_and_unique() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    date, clock, suffix = ids[0].split("-")
    assert (len(date), len(clock), len(suffix)) == (8, 6, 6)
    assert time.strftime("%Y%m%d", time.gmtime()) <= date


def test_get_run_accepts_a_unique_prefix(history: RunHistory, db_path: Path) -> None:
    for run_id in ("20260101-000000-aaaaaa", "20260101-000000-aabbbb", "20260102-000000-cccccc"):
        history.create_run(run_id, "p", project_root="/p")
    assert history.get_run("20260102").run_id == "20260102-000000-cccccc"
    assert history.get_run("20260101-000000-aab").run_id == "20260101-000000-aabbbb"

    with pytest.raises(UsageError) as ambiguous:
        history.get_run("20260101")
    message = str(ambiguous.value)
    assert "ambiguous" in message
    assert "20260101-000000-aaaaaa" in message and "20260101-000000-aabbbb" in message

    with pytest.raises(UsageError) as missing:
        history.get_run("2027")
    assert str(missing.value) == f"no run '2027' in {db_path}; see `stepframe runs list`"
    with pytest.raises(UsageError, match="no run ''"):
        history.get_run("")


# -- steps -------------------------------------------------------------------------------


def test_set_step_upserts_only_the_given_fields(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")
    history.set_step("r1", "load")
    history.set_step(
        "r1",
        "train",
        status="running",
        operator="gpu",
        flavor="sagemaker",
        attempt=1,
        started_at=100.0,
    )
    history.set_step("r1", "train", job_id="job-1")
    history.set_step(
        "r1",
        "train",
        status="failed",
        ended_at=160.0,
        error="ValueError: bad\n\nTraceback ...",
        cache_key="abc",
    )

    load, train = history.get_steps("r1")
    assert (load.step, load.status, load.attempt, load.operator) == ("load", "pending", 0, None)
    assert train.status == "failed"
    assert (train.operator, train.flavor, train.job_id) == ("gpu", "sagemaker", "job-1")
    assert (train.attempt, train.started_at, train.ended_at) == (1, 100.0, 160.0)
    assert train.error == "ValueError: bad\n\nTraceback ..."
    assert train.cache_key == "abc"

    history.set_step("r1", "train", error=None)
    assert history.get_steps("r1")[1].error is None
    assert history.get_steps("r1")[1].job_id == "job-1"


def test_set_step_rejects_unknown_fields_and_statuses(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")
    with pytest.raises(TypeError, match="colour"):
        history.set_step("r1", "s", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="'done'"):
        history.set_step("r1", "s", status="done")  # type: ignore[arg-type]
    assert history.get_steps("r1") == []


def test_threads_share_one_history(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")

    def write(worker: int) -> None:
        for i in range(50):
            history.set_step("r1", f"t{worker}-{i}", status="running")
            history.set_step("r1", f"t{worker}-{i}", status="succeeded")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    steps = history.get_steps("r1")
    assert len(steps) == 200
    assert {s.status for s in steps} == {"succeeded"}


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from stepframe._history.database import RunHistory

    db, run_id, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    Path(f"{go}.{run_id}.ready").touch()  # imported, about to wait for the go file
    while not go.exists():
        time.sleep(0.001)
    with RunHistory(db) as history:
        history.create_run(run_id, "p", project_root="/p")
        for i in range(200):
            history.set_step(run_id, f"step-{i}", status="running", started_at=time.time())
        history.finish_run(run_id, "succeeded")
    """
)


def test_two_processes_write_one_file_at_once(db_path: Path, tmp_path: Path) -> None:
    """Both processes also create the schema of a file that does not exist yet."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db_path), f"w{n}", str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    # Both interpreters started and wait at the go file, so that they write at once.
    ready = [tmp_path / f"go.w{n}.ready" for n in range(len(workers))]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in ready):
        assert all(worker.poll() is None for worker in workers), "a worker died at start"
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.01)
    go.touch()
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert err == ""

    with RunHistory(db_path) as history:
        assert {r.run_id: r.status for r in history.list_runs()} == {
            "w0": "succeeded",
            "w1": "succeeded",
        }
        for run_id in ("w0", "w1"):
            steps = history.get_steps(run_id)
            assert [s.step for s in steps] == [f"step-{i}" for i in range(200)]


# -- artifacts ---------------------------------------------------------------------------


def test_artifact_round_trip(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")
    model = ArtifactRef(
        uri="file:///a/model",
        sha256="ab" * 32,
        size=1536,
        materializer="pickle",
        type_name="sklearn.Model",
    )
    data = ArtifactRef(uri="file:///a/data", sha256="cd" * 32, size=10, materializer="json")
    history.record_artifact("r1", "train", "model", model)
    history.record_artifact("r1", "load", "data", data)

    records = history.get_artifacts("r1")
    assert [(a.step, a.output) for a in records] == [("train", "model"), ("load", "data")]
    assert records[0].ref == model
    assert records[1].ref == data
    assert [a.ref for a in history.get_artifacts("r1", step="load")] == [data]

    retried = attrs.evolve(model, uri="file:///b/model")
    history.record_artifact("r1", "train", "model", retried)
    assert [a.ref for a in history.get_artifacts("r1", step="train")] == [retried]


# -- the job ledger ----------------------------------------------------------------------


def test_job_intent_then_handle_then_states(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")
    first = history.record_job_intent(
        "r1", "train", attempt=1, flavor="sagemaker", operator="gpu", image_digest="sha256:beef"
    )
    second = history.record_job_intent(
        "r1", "eval", attempt=1, flavor="local", operator="local", region="eu-west-1"
    )
    assert first != second

    (intent, _) = history.list_jobs()
    assert (intent.id, intent.state, intent.job_id, intent.handle) == (
        first,
        "submitting",
        None,
        None,
    )
    assert intent.is_active
    assert intent.image_digest == "sha256:beef"

    handle = JobHandle(
        flavor="sagemaker",
        operator="gpu",
        job_id="p-train-1",
        data={"region": "us-east-1", "logs": {"group": "/aws/sm", "n": [1]}},
    )
    history.record_job_submitted(first, handle)
    job = history.list_jobs()[0]
    assert job.handle == handle
    assert (job.job_id, job.state, job.region) == ("p-train-1", "pending", "us-east-1")
    assert job.updated_at >= job.created_at

    history.update_job_state(first, JobState.RUNNING)
    assert history.list_jobs()[0].state == "running"
    history.update_job_state(("sagemaker", "p-train-1"), "succeeded")
    assert history.list_jobs()[0].state == "succeeded"

    active = history.list_jobs(running_only=True)
    assert [(j.id, j.state, j.region) for j in active] == [(second, "submitting", "eu-west-1")]
    assert history.list_jobs(run_id="r1") == history.list_jobs()
    assert history.list_jobs(run_id="other") == []


def test_a_reused_job_id_updates_the_latest_job(history: RunHistory) -> None:
    history.create_run("r1", "p", project_root="/p")
    rows = []
    for attempt in (1, 2):
        row = history.record_job_intent(
            "r1", "s", attempt=attempt, flavor="local", operator="local"
        )
        history.record_job_submitted(row, JobHandle("local", "local", "4242"))
        rows.append(row)
    history.update_job_state(rows[0], JobState.FAILED)
    history.update_job_state(("local", "4242"), JobState.SUCCEEDED)
    assert [j.state for j in history.list_jobs()] == ["failed", "succeeded"]


def test_job_updates_name_what_is_missing(history: RunHistory) -> None:
    with pytest.raises(UsageError, match="no sagemaker job 'x'"):
        history.update_job_state(("sagemaker", "x"), JobState.RUNNING)
    with pytest.raises(UsageError, match="no job ledger row 7"):
        history.update_job_state(7, JobState.RUNNING)
    with pytest.raises(UsageError, match="no job ledger row 7"):
        history.record_job_submitted(7, JobHandle("local", "local", "1"))
    with pytest.raises(ValueError, match="unknown job state 'lost'"):
        history.update_job_state(7, "lost")


# -- the CLI -----------------------------------------------------------------------------


def _cli(db_path: Path) -> click.Group:
    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.obj = {"history": lambda: RunHistory(db_path)}

    cli.add_command(runs)
    return cli


def _fill(db_path: Path) -> str:
    run_id = "20261122-031500-3fa9c1"
    with RunHistory(db_path) as history:
        history.create_run("20261121-101010-000000", "older", project_root="/p")
        history.create_run(run_id, "training", project_root="/p", params={"epochs": 3})
        history.set_step(
            run_id, "load", status="succeeded", operator="local", started_at=1000.0, ended_at=1002.5
        )
        history.set_step(
            run_id,
            "train",
            status="failed",
            operator="gpu",
            job_id="sm-job-7",
            started_at=1003.0,
            ended_at=1065.0,
            error="ValueError: loss is nan\n\nTraceback from where it ran:\n  x",
        )
        history.set_step(run_id, "report", status="skipped")
        history.record_artifact(
            run_id,
            "load",
            "data",
            ArtifactRef(
                uri="file:///store/load/data",
                sha256="0123456789abcdef" * 4,
                size=1536,
                materializer="pickle",
            ),
        )
        history.finish_run(run_id, "failed", error="step 'train' failed")
    return run_id


def test_cli_runs_list(db_path: Path) -> None:
    run_id = _fill(db_path)
    result = CliRunner().invoke(_cli(db_path), ["runs", "list"])
    assert result.exit_code == 0, result.output
    header, newest, older = result.output.splitlines()
    assert header.split() == ["RUN", "ID", "PIPELINE", "STATUS", "STARTED", "DURATION"]
    assert newest.split()[:3] == [run_id, "training", "failed"]
    assert older.split()[:3] == ["20261121-101010-000000", "older", "running"]
    assert "so far" in older

    limited = CliRunner().invoke(_cli(db_path), ["runs", "list", "--limit", "1", "--json"])
    assert limited.exit_code == 0, limited.output
    (only,) = json.loads(limited.output)
    assert (only["run_id"], only["status"], only["params"]) == (run_id, "failed", {"epochs": 3})


def test_cli_runs_list_empty(db_path: Path) -> None:
    result = CliRunner().invoke(_cli(db_path), ["runs", "list"])
    assert result.exit_code == 0
    assert result.output == f"no runs recorded yet in {db_path}\n"


def test_cli_runs_show(db_path: Path) -> None:
    run_id = _fill(db_path)
    result = CliRunner().invoke(_cli(db_path), ["runs", "show", "20261122"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"run       {run_id}\n" in out
    assert "pipeline  training\n" in out
    assert "status    failed\n" in out
    with RunHistory(db_path) as history:
        started_at = history.get_run(run_id).started_at
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at))
    assert f"started   {started}\n" in out
    assert "error     step 'train' failed\n" in out

    lines = out.splitlines()
    steps = lines[lines.index("steps") + 1 : lines.index("steps") + 5]
    assert steps[0].split() == [
        "STEP", "STATUS", "OPERATOR", "ATTEMPT", "JOB", "ID", "DURATION", "ERROR"
    ]  # fmt: skip
    assert steps[1].split() == ["load", "succeeded", "local", "-", "-", "2.5s"]
    assert steps[2].split() == [
        "train",
        "failed",
        "gpu",
        "-",
        "sm-job-7",
        "1m02s",
        "ValueError:",
        "loss",
        "is",
        "nan",
    ]
    assert steps[3].split() == ["report", "skipped", "-", "-", "-", "-"]
    assert "Traceback" not in out

    artifacts = lines[lines.index("artifacts") + 1 :]
    assert artifacts[0].split() == ["OUTPUT", "MATERIALIZER", "SIZE", "SHA256", "URI"]
    assert artifacts[1].split() == [
        "load.data",
        "pickle",
        "1.5",
        "KiB",
        "0123456789ab",
        "file:///store/load/data",
    ]


def test_cli_runs_show_json(db_path: Path) -> None:
    run_id = _fill(db_path)
    result = CliRunner().invoke(_cli(db_path), ["runs", "show", run_id, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["run"]["pipeline"] == "training"
    assert [s["step"] for s in document["steps"]] == ["load", "train", "report"]
    assert document["steps"][1]["error"].startswith("ValueError: loss is nan\n")
    assert document["artifacts"][0]["sha256"] == "0123456789abcdef" * 4


def test_cli_runs_show_unknown_run(db_path: Path) -> None:
    _fill(db_path)
    result = CliRunner().invoke(_cli(db_path), ["runs", "show", "1999"])
    assert result.exit_code == 1
    assert "no run '1999'" in result.output
    assert "stepframe runs list" in result.output
    assert "Traceback" not in result.output

    ambiguous = CliRunner().invoke(_cli(db_path), ["runs", "show", "2026"])
    assert ambiguous.exit_code == 1
    assert "ambiguous" in ambiguous.output


def test_an_attempt_number_is_never_handed_out_twice(history: RunHistory) -> None:
    """Attempt 2 is allocated but never submitted (its build failed); a resume takes up
    attempt 1's job, which then turns out lost: the next attempt is 3, not 2 again."""
    history.create_run("r1", "training", project_root="/p")
    assert history.allocate_attempt("r1", "train") == 1
    row = history.record_job_intent("r1", "train", attempt=1, flavor="local", operator="local")
    history.record_job_submitted(row, JobHandle("local", "local", "41"))
    assert history.allocate_attempt("r1", "train") == 2  # its image build fails
    history.set_step("r1", "train", job_id="41", attempt=1)  # --resume takes up attempt 1
    assert history.allocate_attempt("r1", "train") == 3
    (step,) = history.get_steps("r1")
    assert step.attempt == 3
