"""`stepframe.Runs`: recorded runs and their outputs, read back in a later process.

The runs are real (inprocess and ``local`` steps); the reading happens in a fresh Python
process, as a user's notebook would do it the next day.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from stepframe import JobHandle, Runs
from stepframe._history.database import RunHistory
from stepframe.exceptions import ArtifactCorruptedError, UsageError

PIPELINE = """
    from stepframe import pipeline, step

    @step
    def load(rows: int = 6) -> list[int]:
        return list(range(rows))

    @step(outputs=["low", "high"])
    def split(xs: list[int]) -> tuple[list[int], list[int]]:
        return xs[:3], xs[3:]

    @step(operator="local")
    def total(low: list[int], high: list[int]) -> dict[str, int]:
        print("summing", len(low) + len(high), "numbers")
        return {"sum": sum(low) + sum(high)}

    @pipeline
    def numbers(rows: int = 6) -> None:
        low, high = split(load(rows))
        total(low, high)
"""


def fresh_python(project, code: str, subprocess_env) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter in the project folder (core plugins only)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=project.root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_outputs_logs_and_job_in_a_fresh_process(project, run, subprocess_env) -> None:
    result = run(project.load(PIPELINE))

    done = fresh_python(
        project,
        """
        import json
        from stepframe import Runs
        run = Runs().latest("numbers")
        total = run.step("total")
        job = total.job
        print(json.dumps({
            "run_id": run.run_id,
            "status": run.status,
            "steps": list(run.steps),
            "total": total.output(),
            "high": run.step("split").output("high"),
            "logs": total.logs(),
            "job": [job.operator, job.flavor, job.job_id, job.state, job.attempt],
            "inprocess_logs": run.step("load").logs(),
        }))
        """,
        subprocess_env,
    )

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["run_id"] == result.run_id
    assert seen["status"] == "succeeded"
    assert seen["steps"] == ["load", "split", "total"]
    assert seen["total"] == {"sum": 15}
    assert seen["high"] == [3, 4, 5]
    assert "summing 6 numbers" in seen["logs"]
    operator, flavor, job_id, state, attempt = seen["job"]
    assert (operator, flavor, state, attempt) == ("local", "local", "succeeded", 1)
    with RunHistory(project.database_path) as history:
        assert job_id == {s.step: s.job_id for s in history.get_steps(result.run_id)}["total"]
    assert seen["inprocess_logs"] == ""  # kept for in-process steps too; it printed nothing


def test_a_step_with_several_outputs_wants_a_name(project, run) -> None:
    run(project.load(PIPELINE))
    split = Runs(project.root).latest().step("split")
    with pytest.raises(UsageError, match=r"has outputs high, low; name one"):
        split.output()
    with pytest.raises(UsageError, match=r"no output 'middle'"):
        split.output("middle")
    with pytest.raises(UsageError, match=r"no step 'nope'; its steps: load, split, total"):
        Runs(project.root).latest().step("nope")


def test_a_changed_artifact_is_refused_not_loaded(project, run) -> None:
    run(project.load(PIPELINE))
    runs = Runs(project.root)
    total = runs.latest().step("total")
    path = Path(total.artifacts["output"].uri.removeprefix("file://"))
    os.chmod(path, 0o644)
    path.write_text(json.dumps({"sum": 16}))

    with pytest.raises(ArtifactCorruptedError, match="is corrupted: expected sha256"):
        total.output()


def test_runs_by_unique_part_of_the_id_pipeline_and_status(project, run) -> None:
    first = run(project.load(PIPELINE), use_cache=False)
    failing = project.load(
        """
        from stepframe import pipeline, step

        @step
        def explode() -> int:
            raise ValueError("no luck")

        @pipeline
        def broken() -> None:
            explode()
        """
    )
    second = run(failing, raise_on_failure=False)
    runs = Runs(project.root)

    assert runs.get(first.run_id[-6:]).run_id == first.run_id  # a unique substring
    assert runs.get(first.run_id).pipeline == "numbers"
    with pytest.raises(UsageError, match="is ambiguous"):
        runs.get(first.run_id[:8])  # both runs started today
    with pytest.raises(UsageError, match="no run 'zzz'"):
        runs.get("zzz")
    assert [r.run_id for r in runs.list()] == [second.run_id, first.run_id]
    assert [r.run_id for r in runs.list(pipeline="numbers")] == [first.run_id]
    assert [r.run_id for r in runs.list(status="failed")] == [second.run_id]
    assert "no luck" in (runs.latest("broken").step("explode").error or "")
    with pytest.raises(UsageError, match="stored no outputs"):
        runs.latest("broken").step("explode").output()
    with pytest.raises(UsageError, match="unknown run status 'done'"):
        runs.list(status="done")
    with pytest.raises(UsageError, match=r"no succeeded run of pipeline 'broken'"):
        runs.latest("broken", status="succeeded")


def test_reading_never_waits_for_a_writer_and_never_writes(project, run) -> None:
    run(project.load(PIPELINE))
    database = project.database_path
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    writer.execute("UPDATE runs SET error = 'being written'")
    try:
        answered = threading.Event()

        def read() -> None:
            runs = Runs(project.root)
            assert runs.latest().step("total").output() == {"sum": 15}
            runs.close()
            answered.set()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=20)
        assert answered.is_set(), "the reader waited for the writer"
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    elsewhere = project.root / "empty"
    elsewhere.mkdir()
    with pytest.raises(UsageError, match="no runs recorded at"):
        Runs(elsewhere).latest()
    assert not (elsewhere / ".stepframe").exists()


def test_a_job_console_url_comes_from_its_handle(project, run) -> None:
    result = run(project.load(PIPELINE))
    with RunHistory(project.database_path) as history:
        row = history.record_job_intent(
            result.run_id, "total", attempt=2, flavor="remote", operator="cloud"
        )
        handle = JobHandle(
            "remote", "cloud", "job-42", {"console_url": "https://console.example/job-42"}
        )
        history.record_job_submitted(row, handle)

    job = Runs(project.root).latest().step("total").job
    assert job is not None
    assert (job.operator, job.job_id, job.state, job.attempt) == ("cloud", "job-42", "pending", 2)
    assert job.console_url == "https://console.example/job-42"


# ---- a store behind a connector ---------------------------------------------------------

TOKEN_PLUGIN = '''
"""A store that opens only with its connector's token: tok://NAME maps to $TOK_ROOT/NAME."""
import contextlib, os, urllib.parse
from pathlib import Path
import attrs
from stepframe import ArtifactStore, ComponentKind, Credentials, Flavor, hookimpl
from stepframe.exceptions import ArtifactExistsError, ArtifactNotFoundError, ConnectorError

TOKEN = "open-sesame"

@attrs.frozen
class TokConnectorConfig:
    token: str

@attrs.frozen
class TokStoreConfig:
    path: str

class TokStore(ArtifactStore):
    def _path(self, uri):
        parts = urllib.parse.urlsplit(uri)
        return Path(os.environ["TOK_ROOT"]) / parts.netloc / parts.path.lstrip("/")

    @contextlib.contextmanager
    def open_write(self, uri):
        path = self._path(uri)
        if path.exists():
            raise ArtifactExistsError(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as stream:
            yield stream

    def open_read(self, uri):
        try:
            return open(self._path(uri), "rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(uri) from None

    def exists(self, uri):
        return self._path(uri).is_file()

@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.CONNECTOR, name="tok", config_class=TokConnectorConfig))
    register(Flavor(kind=ComponentKind.ARTIFACT_STORE, name="tokstore",
                    config_class=TokStoreConfig, uri_schemes=("tok",)))

@hookimpl
def authenticate(connector, resource):
    return Credentials(connector.name, resource, {"token": connector.config.token})

@hookimpl
def open_artifact_store(uri, credentials):
    if credentials is None or credentials.values.get("token") != TOKEN:
        raise ConnectorError(f"{uri}: the tok store needs its connector's token")
    return TokStore(uri)
'''

TOKEN_STACK = """
active_stack = "tok"

[connectors.vault]
flavor = "tok"
token = "open-sesame"

[artifact_stores.remote]
flavor = "tokstore"
path = "tok://bucket/stepframe"
connector = "vault"

[stacks.tok]
artifact_store = "remote"
"""


def test_an_artifact_loads_from_the_store_that_recorded_it_through_its_connector(
    project, make_plugins, run, tmp_path, subprocess_env, monkeypatch
) -> None:
    monkeypatch.setenv("TOK_ROOT", str(tmp_path / "tok"))
    module = project.module(TOKEN_PLUGIN)
    (project.root / "stepframe.toml").write_text(TOKEN_STACK)
    pipeline = project.load(PIPELINE.replace('@step(operator="local")', "@step"))
    result = run(pipeline, plugins=make_plugins((module.__name__, module)))
    assert result.status == "succeeded"
    assert all(
        a.uri.startswith("tok://bucket/stepframe/")
        for a in RunHistory(project.database_path).get_artifacts(result.run_id)
    )

    code = f"""
        import json, {module.__name__} as tok
        from stepframe import Runs, load_plugins
        plugins = load_plugins(extra=[("tok", tok)], env={{"STEPFRAME_LOAD_PLUGINS": ""}})
        print(json.dumps(Runs(plugins=plugins).latest().step("total").output()))
    """
    done = fresh_python(project, code, lambda: subprocess_env(TOK_ROOT=str(tmp_path / "tok")))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sum": 15}

    # Without the connector's token, the same store does not open: the token was used.
    (project.root / "stepframe.toml").write_text(TOKEN_STACK.replace("open-sesame", "wrong"))
    done = fresh_python(project, code, lambda: subprocess_env(TOK_ROOT=str(tmp_path / "tok")))
    assert done.returncode != 0
    assert "needs its connector's token" in done.stderr
