"""A ``local`` job gets the artifact store's credentials, and no environment ever holds them.

The project installs (as a user would, through an entry point) a store that opens only
with a connector's token, and a connector that reads the token from a file only its
owner can read.  ``stepframe run`` runs a ``local`` step -- forked by the zygote, or in a
fresh interpreter -- that waits for the test while it runs.  Meanwhile no process's
initial environment (``/proc/PID/environ``: the orchestrator's, the zygote's, the job's)
and not the step's own ``os.environ`` holds the token, and the job holds no pipe open
any more; then the step finishes and its output is in the store, which the job could
only reach with the token.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from stepframe._builtin.local_zygote import STORE_CREDENTIALS_FD_ENV as ZYGOTE_FD_ENV
from stepframe.entrypoint import STORE_CREDENTIALS_FD_ENV

PLUGIN = '''
"""A store that opens only with the vault connector's token (checked by its hash)."""

import contextlib
import hashlib
import os
from pathlib import Path

import attrs

from stepframe import ArtifactStore, ComponentKind, Credentials, Flavor, StepframeError, hookimpl
from stepframe.exceptions import ArtifactExistsError, ArtifactNotFoundError

TOKEN_SHA256 = {token_sha256!r}
SCHEME = "vaulted"


@attrs.frozen
class VaultConfig:
    token_file: str


@attrs.frozen
class StoreConfig:
    path: str


class VaultedStore(ArtifactStore):
    MARKER = ".vaulted-root"

    def __init__(self, root_uri):
        super().__init__(root_uri)
        self.root = Path(root_uri[len(SCHEME) + 3 :])
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / self.MARKER).touch()

    @classmethod
    def open(cls, uri):
        """The store whose root ``uri`` is in (a job opens it from a manifest's URI)."""
        path = Path(uri[len(SCHEME) + 3 :])
        for folder in (path, *path.parents):
            if (folder / cls.MARKER).is_file():
                return cls(f"{{SCHEME}}://{{folder}}")
        return cls(uri)

    def _path(self, uri):
        return Path(uri[len(SCHEME) + 3 :])

    @contextlib.contextmanager
    def _write(self, path, uri):
        if path.exists():
            raise ArtifactExistsError(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".tmp-{{os.getpid()}}-{{path.name}}"
        with temporary.open("wb") as stream:
            yield stream
        os.replace(temporary, path)

    def open_write(self, uri):
        return self._write(self._path(uri), uri)

    def open_read(self, uri):
        try:
            return self._path(uri).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(uri) from None

    def exists(self, uri):
        return self._path(uri).is_file()

    def list(self, prefix_uri):
        for path in sorted(self.root.rglob("*")):
            uri = f"{{SCHEME}}://{{path}}"
            if path.is_file() and path.name != self.MARKER and uri.startswith(prefix_uri):
                yield uri


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.CONNECTOR, name="vault", config_class=VaultConfig))
    register(Flavor(kind=ComponentKind.ARTIFACT_STORE, name=SCHEME, config_class=StoreConfig))


@hookimpl
def authenticate(connector, resource):
    if connector.flavor != "vault":
        return None
    token = Path(connector.config.token_file).read_text()
    return Credentials(connector.name, resource, {{"token": token}})


@hookimpl
def open_artifact_store(uri, credentials):
    if not uri.startswith(f"{{SCHEME}}://"):
        return None
    token = (credentials.values.get("token") if credentials is not None else None) or ""
    if hashlib.sha256(token.encode()).hexdigest() != TOKEN_SHA256:
        raise StepframeError(f"{{uri}}: the vault connector's token is needed to open it")
    return VaultedStore.open(uri)
'''

PIPELINE = """
import json
import os
import time
from pathlib import Path

from stepframe import pipeline, step

EVENTS = Path({events!r})


@step(operator="local")
def guarded() -> int:
    (EVENTS / "environ.json").write_text(json.dumps({{"pid": os.getpid(), **os.environ}}))
    while not (EVENTS / "go").exists():
        time.sleep(0.01)
    return 42


@pipeline
def locked():
    guarded.with_options(settings={{"local": {{"fresh_interpreter": {fresh}}}}})()
"""


def _initial_environment(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def _open_pipes(pid: int) -> list[str]:
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return [link for link in links if link.startswith("pipe:")]


def _wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if text:
                return text
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def test_the_pipe_is_named_alike_on_both_sides() -> None:
    assert ZYGOTE_FD_ENV == STORE_CREDENTIALS_FD_ENV


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh-interpreter"])
def test_a_local_job_reaches_the_store_with_credentials_no_environment_holds(
    project, cli_popen, tmp_path: Path, fresh: bool
) -> None:
    token = f"vault-token-{uuid.uuid4().hex}"
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    sha = hashlib.sha256(token.encode()).hexdigest()
    (project.root / "vaultstore_plugin.py").write_text(PLUGIN.format(token_sha256=sha))
    info = project.root / "vaultstore-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vaultstore\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[stepframe]\nvaultstore = vaultstore_plugin\n")
    store_root = tmp_path / "vault"
    (project.root / "stepframe.toml").write_text(
        f"""
[connectors.vault]
flavor = "vault"
token_file = "{token_file}"

[artifact_stores.vaulted]
flavor = "vaulted"
connector = "vault"
path = "vaulted://{store_root}"

[stacks.locked]
artifact_store = "vaulted"
step_operators = ["local"]
"""
    )
    events = tmp_path / "events"
    events.mkdir()
    path = project.write(PIPELINE.format(events=str(events), fresh=fresh))
    # The project folder holds the plugin's distribution, as site-packages would.
    python_path = os.pathsep.join(filter(None, [str(project.root), os.environ.get("PYTHONPATH")]))
    process = cli_popen(
        "run",
        "--stack",
        "locked",
        str(path),
        env={"PYTHONPATH": python_path, "STEPFRAME_LOAD_PLUGINS": "vaultstore"},
    )
    job_pid = None
    try:
        seen_by_step = json.loads(_wait_for_file(events / "environ.json"))
        job_pid = int(seen_by_step.pop("pid"))

        secret = token.encode()
        assert not any(token in value for value in seen_by_step.values())
        assert STORE_CREDENTIALS_FD_ENV not in seen_by_step
        assert secret not in _initial_environment(job_pid)
        assert secret not in _initial_environment(process.pid)  # the orchestrator
        zygotes = [
            pid
            for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if _is_zygote_of(pid, process.pid)
        ]
        assert bool(zygotes) is not fresh
        for zygote in zygotes:
            assert secret not in _initial_environment(zygote)
        assert _open_pipes(job_pid) == []  # read, closed: nothing left to read them from
    finally:
        (events / "go").touch()
        if job_pid is None:
            process.kill()

    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    results = list(store_root.rglob("guarded/attempt-1/result.json"))
    assert results, output
    assert token not in output


def _is_zygote_of(pid: int, orchestrator: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    parent = int(stat.rsplit(")", 1)[1].split()[1])
    return parent == orchestrator and b"stepframe._builtin.local_zygote" in cmdline
