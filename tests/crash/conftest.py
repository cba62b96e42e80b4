"""The crash-consistency suite's harness: a project per case, its processes, its checks.

Every case runs the same three-step pipeline (``first`` in-process, ``middle`` on the
operator under test, ``last`` in-process) with ``stepframe run`` in a process of its own
session, stops it at one boundary of ``middle``'s job (a crash point of
`stepframe._crashpoints`, or the step itself holding), signals it, maybe kills the job
too, then ``stepframe run --resume`` and checks the promises of issue 10: every job ran at
most once per attempt and at least once in the end, nothing outlives a cancelled run, the
outputs are right and verified, and ``runs list`` and ``jobs list`` agree.

The steps count their executions in files (side effects, not timing) in a folder inside
the artifact store, ``crash-suite/``: the one folder a docker job shares with the host
(the docker operator mounts the store at the same path).  The same folder holds the case's
instructions (``case.json``) and the crash points' ``.reached``/``.release`` files.  The
docker image is the same for every case (nothing per case is baked into it), so one build
serves the whole session.

At the end of the session a table lists each case tried and whether it survived.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepframe._processes import process_stat
from stepframe.testing._small_disk import SmallDisk, small_disks

REQUIRE_DOCKER = os.environ.get("STEPFRAME_REQUIRE_DOCKER") == "1"
REGISTRY = os.environ.get("STEPFRAME_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("STEPFRAME_TEST_BASE_IMAGE", "stepframe-test-base:bookworm")
HOW = "start them with `bash .ci/services.sh` (engine, registry on 127.0.0.1:5000, base image)"
# Content-hashed tags: every case, and every later session, reuses the one image.
REPOSITORY_NAMESPACE = "stepframe-crash"
IMAGE_NAME = "crash-suite"

CASE_FOLDER = "crash-suite"
PIPELINE_FILE = "crashsteps.py"
# The boundaries at which the orchestrator itself stops (`stepframe._crashpoints`).
ORCHESTRATOR_POINTS = ("before-intent", "before-submit", "after-submit", "before-finish")
# How long a harness wait may take before the case fails (a step never reached, say).
PATIENCE = 120.0

PIPELINE = '''\
"""The crash suite's pipeline: counts each execution, holds or arms a crash point when
the case asks."""

import json
import os
import re
import socket
import time
import urllib.parse
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


def _case_folder():
    manifest = os.environ.get("STEPFRAME_LAUNCH_MANIFEST")
    if not manifest:  # an in-process step, in the project folder
        return HERE / ".stepframe" / "artifacts" / "crash-suite"
    # A job (maybe in a container): the folder is in the store, beside the manifest.
    for parent in Path(urllib.parse.urlsplit(manifest).path).parents:
        if (parent / "crash-suite").is_dir():
            return parent / "crash-suite"
    raise RuntimeError(f"no crash-suite folder above {manifest}")


def _count(name):
    # One line per execution: its attempt (from the launch manifest's path), host, pid.
    found = re.search(r"/attempt-(\\d+)/", os.environ.get("STEPFRAME_LAUNCH_MANIFEST", ""))
    line = f"{found.group(1) if found else '-'} {socket.gethostname()} {os.getpid()}\\n"
    with open(_case_folder() / f"{name}.runs", "a") as runs:
        runs.write(line)


def _follow_the_case():
    folder = _case_folder()
    case = json.loads((folder / "case.json").read_text())
    if case.get("hold"):  # "while running": the first execution waits for the suite
        try:
            os.close(os.open(folder / "running.reached", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            (folder / "running.reached").write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not (folder / "running.release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
    if case.get("job_point"):
        # Armed here, not in the image's environment, so that one image serves every case.
        os.environ.update(
            STEPFRAME_CRASH_AT=case["job_point"],
            STEPFRAME_CRASH_STEP="middle",
            STEPFRAME_CRASH_DIR=str(folder),
        )


@step
def first() -> int:
    _count("first")
    return 20


@step(operator="OPERATOR"SETTINGS)
def middle(x: int) -> int:
    _count("middle")
    _follow_the_case()
    return x + 1


@step
def last(y: int) -> int:
    _count("last")
    return y * 2


@pipeline
def crash():
    last(middle(first()))
'''
EXPECTED = {"first": 20, "middle": 21, "last": 42}

DOCKER_STACK = """\
active_stack = "containers"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}/{namespace}"

[step_operators.docker]
flavor = "docker"

[stacks.containers]
image_builder = "docker"
container_registry = "local"
step_operators = ["docker"]
"""
# Only the pipeline goes into the image: stepframe.toml and the rest differ per case.
DOCKERIGNORE = f"*\n!{PIPELINE_FILE}\n"


# ---- waiting on side effects ---------------------------------------------------------------


def wait_until(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Poll a side effect (a file, a process state) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def processes_with(variable: str) -> list[int]:
    """Live processes whose environment holds ``variable`` (NAME=value): whatever a
    case's commands started, in whatever session or process group it ended up."""
    found = []
    wanted = variable.encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + wanted) >= 0 and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def session_members(session_id: int) -> list[int]:
    """Live processes of a session (the orchestrator's, started with a session of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session_id and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


# ---- docker ---------------------------------------------------------------------------------


def docker_client() -> Any:
    from stepframe_docker._engine import client_for

    return client_for()


def containers_of(run_id: str, *, running_only: bool = False) -> list[Any]:
    client = docker_client()
    filters = {"label": f"stepframe.run={run_id}"}
    return list(client.containers.list(all=not running_only, filters=filters))


def _unavailable(what: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(f"STEPFRAME_REQUIRE_DOCKER=1 but {what}; {HOW}", pytrace=False)
    pytest.skip(f"{what} (set STEPFRAME_REQUIRE_DOCKER=1 to fail instead)")


def check_docker_services() -> None:
    """The engine, the registry and the base image, or a skip (a failure when required)."""
    try:
        import stepframe_docker  # noqa: F401
    except ImportError:
        _unavailable("stepframe-docker is not installed")
    try:
        client = docker_client()
        client.ping()
    except Exception as error:  # EngineUnavailableError, or the client's own errors
        _unavailable(f"no Docker engine answers: {error}")
        raise
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except (urllib.error.URLError, OSError) as error:
        _unavailable(f"no container registry answers on {REGISTRY} ({error})")
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_IMAGE)
    except ImageNotFound:
        _unavailable(f"the base image {BASE_IMAGE} does not exist")


# ---- one case's project ---------------------------------------------------------------------


class Run:
    """A ``stepframe run`` started in a session of its own, its output in a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str) -> None:
        wait_until(
            lambda: text in self.output() or self.process.poll() is not None,
            f"{text!r} in the run's output",
        )
        assert text in self.output(), f"{text!r} never printed:\n{self.output()}"

    def run_id(self) -> str:
        self.wait_for_output(" of pipeline 'crash'")
        found = re.search(r"^run (\S+) of pipeline 'crash'", self.output(), re.M)
        assert found, self.output()
        return found.group(1)


class CrashProject:
    """A project folder with the pipeline, run on one operator."""

    def __init__(self, root: Path, operator: str, secrets_file: Path) -> None:
        self.root = root
        self.operator = operator
        self.case_folder = root / ".stepframe" / "artifacts" / CASE_FOLDER
        self.secrets_file = secrets_file
        self.runs: list[Run] = []
        settings = ""
        if operator == "docker":
            settings = f', settings={{"docker": {{"image_name": "{IMAGE_NAME}"}}}}'
            (root / "stepframe.toml").write_text(
                DOCKER_STACK.format(
                    base_image=BASE_IMAGE, registry=REGISTRY, namespace=REPOSITORY_NAMESPACE
                )
            )
            (root / ".dockerignore").write_text(DOCKERIGNORE)
        source = PIPELINE.replace("OPERATOR", operator).replace("SETTINGS", settings)
        (root / PIPELINE_FILE).write_text(source)
        self.make_case_folder()

    @property
    def state_dir(self) -> Path:
        return self.root / ".stepframe"

    @property
    def store_root(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "runs.db"

    @property
    def case_variable(self) -> str:
        return f"STEPFRAME_CRASH_CASE={self.root}"

    def make_case_folder(self) -> None:
        """The case's folder in the store (again, after a disk was mounted over it)."""
        self.case_folder.mkdir(parents=True, exist_ok=True)
        self.write_case({})

    # -- running ------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
        env.update(
            # Inherited by every process the case's commands start (see `processes_with`).
            STEPFRAME_CRASH_CASE=str(self.root),
            PYTHONUNBUFFERED="1",
            STEPFRAME_LOAD_PLUGINS="docker" if self.operator == "docker" else "",
            STEPFRAME_SECRETS_FILE=str(self.secrets_file),
        )
        env.pop("COLUMNS", None)
        env.update(extra)
        return env

    def write_case(self, case: dict[str, Any]) -> None:
        (self.case_folder / "case.json").write_text(json.dumps(case))

    def start(self, crash_at: str | None = None) -> Run:
        """``stepframe run`` of the pipeline, stopping at ``crash_at`` in the orchestrator
        (``middle``'s job reaching it)."""
        extra = {}
        if crash_at is not None:
            extra = {
                "STEPFRAME_CRASH_AT": crash_at,
                "STEPFRAME_CRASH_STEP": "middle",
                "STEPFRAME_CRASH_DIR": str(self.case_folder),
            }
        log = self.root / f"run-{len(self.runs) + 1}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "stepframe", "run", PIPELINE_FILE],
                cwd=self.root,
                env=self.env(**extra),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = Run(process, log)
        self.runs.append(run)
        return run

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            cwd=self.root,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- crash points -------------------------------------------------------------------

    def wait_reached(self, point: str, run: Run) -> int:
        """Wait until ``point`` is reached (the run failing first fails the case); the pid
        of the process holding there."""
        marker = self.case_folder / f"{point}.reached"
        wait_until(
            lambda: (marker.exists() and marker.read_text()) or run.process.poll() is not None,
            f"{point} to be reached",
        )
        assert marker.exists() and marker.read_text(), (
            f"the run ended (status {run.process.returncode}) before {point}:\n{run.output()}"
        )
        return int(marker.read_text())

    def release_all(self) -> None:
        """Let whatever holds at a point go on (a job that outlived its orchestrator)."""
        for point in (*ORCHESTRATOR_POINTS, "outputs-written", "running"):
            (self.case_folder / f"{point}.release").touch()

    def kill_job(self, run_id: str, holders: dict[str, int]) -> None:
        """The job dies as a host crash or an OOM killer takes it: SIGKILL, no clean-up.

        :param holders: the pids that hold at each point reached (a local job's among them).
        """
        # After SIGINT or SIGTERM the run's own cancel may get there first: a job already
        # gone is dead enough.
        if self.operator == "docker":
            from docker.errors import APIError

            for container in containers_of(run_id, running_only=True):
                with contextlib.suppress(APIError):  # 409: it stopped meanwhile
                    container.kill()
            return
        pid = holders.get("running") or holders["outputs-written"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), f"the job {pid} to die")

    def wait_job_stopped(self, run_id: str, holders: dict[str, int]) -> None:
        """Wait until the held job no longer runs (a cancel reached it)."""
        if self.operator == "docker":
            wait_until(lambda: not containers_of(run_id, running_only=True), "the job to stop")
            return
        pid = holders.get("running") or holders["outputs-written"]
        wait_until(lambda: not alive(pid), f"the job {pid} to stop")

    # -- what happened ------------------------------------------------------------------

    def executions(self, step: str) -> list[tuple[str, str, int]]:
        """(attempt, host, pid) of each execution of ``step`` the step counted."""
        path = self.case_folder / f"{step}.runs"
        if not path.exists():
            return []
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        return [(attempt, host, int(pid)) for attempt, host, pid in rows]

    def local_job_pids(self) -> set[int]:
        """Job processes on this host: counted executions and marker holders."""
        if self.operator != "local":
            return set()
        host = socket.gethostname()
        pids = {pid for _, h, pid in self.executions("middle") if h == host}
        for point in ("running", "outputs-written"):
            marker = self.case_folder / f"{point}.reached"
            if marker.exists() and marker.read_text():
                pids.add(int(marker.read_text()))
        return pids

    def database(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.database_path}?mode=ro", uri=True)

    def run_ids(self) -> list[str]:
        if not self.database_path.exists():
            return []
        with contextlib.closing(self.database()) as conn:
            # A history that could not be written may hold no tables at all.
            if not conn.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone():
                return []
            return [row[0] for row in conn.execute("SELECT run_id FROM runs")]

    def listed_status(self, run_id: str) -> str:
        """The run's status as `stepframe runs list` shows it."""
        result = self.cli("runs", "list")
        assert result.returncode == 0, result.stdout + result.stderr
        for line in result.stdout.splitlines():
            if line.startswith(run_id):
                return line.split()[2]
        raise AssertionError(f"runs list does not show {run_id}:\n{result.stdout}")

    def running_jobs(self) -> str:
        result = self.cli("jobs", "list", "--running")
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    # -- the promises -------------------------------------------------------------------

    def assert_nothing_outlives(self, run_id: str, runs: list[Run]) -> None:
        """No process of the orchestrators' sessions, no job process, no container."""
        for run in runs:
            left = session_members(run.process.pid)
            assert left == [], f"processes {left} outlive the orchestrator {run.process.pid}"
        jobs = sorted(pid for pid in self.local_job_pids() if alive(pid))
        assert jobs == [], f"job processes {jobs} outlive the run"
        # Helpers that are no job (the local operator's pre-warmed parent) end when they
        # read that their orchestrator ended, a moment later: give them that moment.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not processes_with(self.case_variable), "helpers to end", 30)
        started = [(pid, _command(pid)) for pid in processes_with(self.case_variable)]
        assert started == [], f"processes outlive the run: {started}"
        if self.operator == "docker":
            containers = [(c.name, c.status) for c in containers_of(run_id)]
            assert containers == [], f"containers outlive the run: {containers}"

    def assert_survived(self, run_id: str, *, exactly_once: bool) -> None:
        """The promises after the final resume; every broken one is reported."""
        checks: list[tuple[str, Callable[[], None]]] = [
            ("runs list and jobs list agree", lambda: self.assert_lists_agree(run_id)),
            ("each job ran once", lambda: self.assert_ran_once(run_id, exactly_once)),
            ("the outputs are right and verify", lambda: self.assert_outputs(run_id)),
            ("nothing outlives the run", lambda: self.assert_nothing_outlives(run_id, self.runs)),
        ]
        broken = []
        for promise, check in checks:
            try:
                check()
            except AssertionError as error:
                broken.append(f"{promise}: {error}")
        assert not broken, "\n".join(broken) + "\n" + self.story()

    def story(self) -> str:
        """What each process printed, the counters and the ledger: a failure's context."""
        parts = [f"--- {run.log.name}\n{run.output()}" for run in self.runs]
        parts += [f"--- {step} executions: {self.executions(step)}" for step in EXPECTED]
        with contextlib.closing(self.database()) as conn:
            rows = conn.execute("SELECT run_id, step, attempt, state, job_id, note FROM jobs")
            parts += ["--- ledger", *(str(row) for row in rows)]
        return "\n".join(parts)

    def ledger(self, run_id: str) -> tuple[dict[str, tuple[str, int, str]], list[Any]]:
        """The run's steps (step: status, attempt, job id) and its ledger rows."""
        with contextlib.closing(self.database()) as conn:
            steps = {
                step: (status, attempt, job_id)
                for step, status, attempt, job_id in conn.execute(
                    "SELECT step, status, attempt, job_id FROM steps WHERE run_id = ?", (run_id,)
                )
            }
            ledger = conn.execute(
                "SELECT step, attempt, state, job_id FROM jobs WHERE run_id = ? ORDER BY id",
                (run_id,),
            ).fetchall()
        return steps, ledger

    def assert_lists_agree(self, run_id: str) -> None:
        """The run succeeded, each step's last attempt did in the ledger, no job of the run
        is left running or unknown, and `jobs list` shows the ledger."""
        assert self.listed_status(run_id) == "succeeded"
        running = self.running_jobs()
        assert running == "no running jobs\n", f"jobs list --running says\n{running}"
        steps, ledger = self.ledger(run_id)
        assert {step: s[0] for step, s in steps.items()} == dict.fromkeys(EXPECTED, "succeeded")
        for step, (_status, attempt, job_id) in steps.items():
            rows = [(a, state, j) for s, a, state, j in ledger if s == step]
            attempts = [a for a, _, _ in rows]
            assert len(attempts) == len(set(attempts)), f"{step}: an attempt reused: {rows}"
            assert (attempt, "succeeded", job_id) in rows, (
                f"{step}: the ledger does not say attempt {attempt} (job {job_id}) "
                f"succeeded: {rows}"
            )
        listed = self.cli("jobs", "list")
        assert listed.returncode == 0, listed.stderr
        shown = sorted(
            (parts[1], parts[4])
            for parts in (line.split() for line in listed.stdout.splitlines()[1:])
            if parts and parts[0] == run_id
        )
        assert shown == sorted((s, state) for s, _a, state, _j in ledger), listed.stdout

    def assert_ran_once(self, run_id: str, exactly_once: bool) -> None:
        """At most once per attempt, at least once in the end, and only as an attempt the
        ledger knows of; with ``exactly_once``, once in all."""
        steps, ledger = self.ledger(run_id)
        for step in ("first", "last"):
            assert len(self.executions(step)) == 1, f"{step} ran {self.executions(step)}"
        middle = self.executions("middle")
        per_attempt: dict[str, int] = {}
        for attempt, _, _ in middle:
            per_attempt[attempt] = per_attempt.get(attempt, 0) + 1
        twice = {a: n for a, n in per_attempt.items() if n > 1}
        assert not twice, f"middle ran more than once in attempt(s) {twice}: {middle}"
        recorded = {str(a) for s, a, _state, _j in ledger if s == "middle"}
        assert set(per_attempt) <= recorded, (
            f"middle ran as attempt(s) {sorted(set(per_attempt) - recorded)} the ledger "
            f"does not know: {middle}, ledger {ledger}"
        )
        final = str(steps["middle"][1]) if "middle" in steps else None
        assert per_attempt.get(final or "") == 1, (
            f"the succeeded attempt {final} of middle never ran: {middle}"
        )
        if exactly_once:
            assert len(middle) == 1, f"a job that lived on ran again: {middle}"

    def assert_outputs(self, run_id: str) -> None:
        """Each step's recorded output is in the store, verifies, and has the right value."""
        from stepframe._artifacts.io import load_artifact
        from stepframe._artifacts.local import open_local_store
        from stepframe._artifacts.materializers import MaterializerRegistry
        from stepframe._history.database import RunHistory

        with RunHistory(self.database_path) as history:
            artifacts = {a.step: a.ref for a in history.get_artifacts(run_id)}
        assert set(artifacts) == set(EXPECTED), artifacts
        store = open_local_store(artifacts["last"].uri)
        scratch = self.root / "scratch"
        scratch.mkdir(exist_ok=True)
        for step, ref in artifacts.items():
            assert store.verify(ref) is None, f"{step}'s output does not verify: {ref}"
            value = load_artifact(store, ref, int, MaterializerRegistry(), scratch)
            assert value == EXPECTED[step], f"{step} output {value!r}"

    # -- clean up -----------------------------------------------------------------------

    def clean_up(self) -> None:
        """Whatever a failed case left: held points, processes, containers."""
        with contextlib.suppress(OSError):
            self.release_all()
        for run in self.runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(timeout=30)
            for pid in session_members(run.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid in processes_with(self.case_variable):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.local_job_pids():
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        if self.operator == "docker":
            with contextlib.suppress(Exception):
                for run_id in self.run_ids():
                    for container in containers_of(run_id):
                        container.remove(force=True)


# ---- small disks ----------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Callable[..., SmallDisk]]:
    """``small_disk(path, size)``: a tmpfs of that size mounted at ``path`` for the test."""
    with small_disks() as mount:
        yield mount


@pytest.fixture(scope="session")
def docker_ready(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The services are there and the image is in the registry (built once: the first
    worker builds it by running the pipeline, the others find it there)."""
    check_docker_services()
    shared = tmp_path_factory.getbasetemp().parent
    with open(shared / "crash-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        root = tmp_path_factory.mktemp("image-build")
        project = CrashProject(root, "docker", root / "secrets.json")
        result = project.cli("run", PIPELINE_FILE, timeout=900)
        project.clean_up()
    assert result.returncode == 0, (
        "the docker pipeline does not run at all:\n" + result.stdout + result.stderr
    )


@pytest.fixture
def crash_project(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], CrashProject]]:
    """``crash_project(operator)``: a fresh project whose leftovers are cleaned up after."""
    made: list[CrashProject] = []

    def make(operator: str) -> CrashProject:
        if operator == "docker":
            request.getfixturevalue("docker_ready")
        root = tmp_path / f"project-{len(made) + 1}"
        root.mkdir()
        project = CrashProject(root, operator, tmp_path / "secrets.json")
        made.append(project)
        return project

    yield make
    for project in made:
        project.clean_up()


# ---- the table of cases tried and survived --------------------------------------------------

CASE_PROPERTY = "crash_case"
_outcomes: dict[str, tuple[tuple[str, ...], str]] = {}
_started = time.monotonic()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each case with its table row (carried to the xdist controller by the reports)."""
    for item in items:
        marker = item.get_closest_marker("crash_case")
        if marker is not None:
            item.user_properties.append((CASE_PROPERTY, tuple(marker.args)))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "crash_case(operator, boundary, signal, jobs_die): a row of the crash table"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    case: Any = dict(report.user_properties).get(CASE_PROPERTY)
    if case is None:
        return
    if report.failed:
        outcome = "FAILED"
    elif report.skipped:
        outcome = "xfail (known bug)" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        outcome = "survived"
    else:
        return
    row, before = _outcomes.get(report.nodeid, (tuple(str(cell) for cell in case), ""))
    # A failed teardown after a passed call is still a failure; the first word otherwise.
    if not before or outcome == "FAILED":
        _outcomes[report.nodeid] = (row, outcome)


# Rows in the order of a job's life, then of the signals' violence.
_ORDER = (
    "local",
    "docker",
    "before-intent",
    "before-submit",
    "after-submit",
    "running",
    "outputs-written",
    "before-finish",
    "store full before the run",
    "store full while running",
    "runs.db full before the run",
    "runs.db full while running",
    "SIGKILL",
    "SIGINT",
    "SIGTERM",
    "no",
    "yes",
)


def _table_order(outcome: tuple[tuple[str, ...], str]) -> list[tuple[int, str]]:
    row, _ = outcome
    return [(_ORDER.index(cell) if cell in _ORDER else len(_ORDER), cell) for cell in row]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes:
        return
    header = ("operator", "boundary", "signal", "jobs-die", "result")
    rows = [(*row, result) for row, result in sorted(_outcomes.values(), key=_table_order)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    write = terminalreporter.write_line
    terminalreporter.section("crash-consistency cases")
    for row in [header, *rows]:
        write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    survived = sum(1 for *_, result in rows if result == "survived")
    write(
        f"{survived} of {len(rows)} cases survived; the session took "
        f"{time.monotonic() - _started:.0f}s on {os.cpu_count()} CPUs"
    )
