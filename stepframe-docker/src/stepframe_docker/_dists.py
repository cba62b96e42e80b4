"""The stepframe distributions an image gets: the very bytes the client runs.

Each first-party distribution goes in as a wheel:

- installed normally (from an index, a wheel, or ``pip install ./stepframe-core``): a
  wheel rebuilt from the files its ``RECORD`` lists, read from site-packages as they are
  now, so the image gets what the client imports, not what a checkout says today;
- installed editable: the client imports the checkout itself, so a wheel built from it
  (cached by a hash of its source tree).

Either way the wheel's content hash (`_parity.wheel_hash`) goes into the image's tag and
into the parity check that runs in the image.  The third-party distributions they need are
pinned to the client's versions by a constraints file (`constraints`).  Requirements,
markers and names are read with ``packaging``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import IO

import attrs
from packaging.markers import Marker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stepframe_docker import _parity
from stepframe_docker._context import IgnoreRules, collect, tree_digest
from stepframe_docker._errors import DockerBuildError

__all__ = [
    "DistributionSource",
    "canonical",
    "constraints",
    "default_packages",
    "requirements_of",
    "resolve_packages",
    "wheel_cache_dir",
]

ENTRY_POINT_GROUP = "stepframe"
CORE = "stepframe-core"
# The builder itself has no business inside a job.
BUILDER_DISTRIBUTION = "stepframe-docker"
# Every member of a rebuilt wheel gets this time, so equal files make equal wheels.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Source-tree files that never change a wheel.
_SOURCE_IGNORED = IgnoreRules.of(
    ".git",
    "__pycache__",
    "*.pyc",
    ".nox",
    ".tox",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".stepframe",
)


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Foo.Bar_baz`` is ``foo-bar-baz``)."""
    return str(canonicalize_name(name))


@attrs.frozen
class DistributionSource:
    """How one stepframe distribution gets into the image.

    :param name: the distribution's canonical name.
    :param version: the version the wheel holds (the one the client runs).
    :param wheel: the wheel to install.
    :param content_hash: `_parity.wheel_hash` of the wheel: what the image must have.
    :param origin: where the wheel's files came from, for messages.
    """

    name: str
    version: str
    wheel: Path
    content_hash: str
    origin: str = ""


def wheel_cache_dir() -> Path:
    base = os.environ.get("STEPFRAME_DOCKER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stepframe-docker"
    )
    return Path(base) / "wheels"


def requirements_of(
    name: str, extras: Iterable[str] = (), dist: metadata.Distribution | None = None
) -> list[Requirement]:
    """What the installed distribution ``name`` (or ``dist``) requires here: its
    requirements whose markers hold in this environment with none of, or one of,
    ``extras`` asked for."""
    try:
        lines = (dist or metadata.distribution(name)).requires or []
    except metadata.PackageNotFoundError:
        return []
    wanted = ["", *extras]
    found = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue  # an installer accepted it; not ours to judge
        marker = requirement.marker
        if marker is None or any(_holds(marker, extra) for extra in wanted):
            found.append(requirement)
    return found


def _holds(marker: Marker, extra: str) -> bool:
    try:
        return marker.evaluate({"extra": extra})
    except UndefinedEnvironmentName:
        return False


def default_packages() -> list[str]:
    """``stepframe-core`` and every distribution with a ``stepframe`` entry point, except
    this builder, unless one of the others requires it (stepframe-aws does)."""
    plugins = {CORE}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        if dist is not None:
            plugins.add(canonical(dist.metadata["Name"]))
    names = plugins - {BUILDER_DISTRIBUTION}
    # A first-party requirement must come from the client's own copy too: pip in the
    # image would look for it on an index, where a checkout's version does not exist.
    pending = sorted(names)
    while pending:
        for requirement in requirements_of(pending.pop()):
            required = canonical(requirement.name)
            if required in plugins and required not in names:
                names.add(required)
                pending.append(required)
    return sorted(names)


def constraints(first_party: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` of every third-party distribution the ``first_party`` ones need
    (transitively, with the extras asked for), as installed here.  What is not installed
    here (a marker for another platform) is left to pip."""
    first = {canonical(name) for name in first_party}
    pins: dict[str, str] = {}
    installed: dict[str, metadata.Distribution | None] = {}

    def find(name: str) -> metadata.Distribution | None:
        if name not in installed:
            try:
                installed[name] = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                installed[name] = None
        return installed[name]

    seen: set[tuple[str, frozenset[str]]] = set()
    pending: list[tuple[str, frozenset[str]]] = [(name, frozenset()) for name in sorted(first)]
    while pending:
        name, extras = pending.pop()
        dist = find(name)
        if (name, extras) in seen or dist is None:
            continue
        seen.add((name, extras))
        for requirement in requirements_of(name, extras, dist):
            required = canonical(requirement.name)
            found = find(required)
            if found is None:
                continue  # not installed here: a marker for another platform, say
            if required not in first:
                pins[required] = found.version
            pending.append((required, frozenset(requirement.extras)))
    return dict(sorted(pins.items()))


def constraints_text(pins: dict[str, str]) -> bytes:
    header = "# The client's versions of what stepframe needs (generated by stepframe-docker).\n"
    return (header + "".join(f"{name}=={version}\n" for name, version in pins.items())).encode()


def resolve_packages(names: Iterable[str]) -> list[DistributionSource]:
    """A wheel of each named distribution holding exactly what the client runs."""
    return [_resolve(name) for name in names]


def _resolve(name: str) -> DistributionSource:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise DockerBuildError(
            f"the image should contain {name}, but it is not installed here; install it "
            "(the image gets the versions the client runs) or leave it out of "
            "settings docker.stepframe_packages"
        ) from None
    version = dist.version
    project = _editable_project(dist)
    if project is None:
        wheel = _wheel_from_installed(dist)
        origin = f"installed files of {canonical(name)} {version}"
    else:
        wheel = _wheel_from_checkout(canonical(name), project)
        version = wheel.name.split("-")[1]
        origin = f"the editable checkout {project}"
    return DistributionSource(canonical(name), version, wheel, _parity.wheel_hash(wheel), origin)


def _editable_project(dist: metadata.Distribution) -> Path | None:
    """The project folder of an editable install, or None for a normal one."""
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    info = json.loads(raw)
    if not (info.get("dir_info") or {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    name = dist.metadata["Name"]
    if not url.startswith("file:") or not (
        (path / "pyproject.toml").is_file() or (path / "setup.py").is_file()
    ):
        raise DockerBuildError(
            f"{name} {dist.version} is installed editable from {url}, which is no longer a "
            "project folder; reinstall it, so the image can get the same code"
        )
    return path


def _wheel_tag(dist: metadata.Distribution) -> str:
    """The compressed tag of the wheel ``dist`` was installed from (its WHEEL file)."""
    text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    if not tags:
        return "py3-none-any"
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def _wheel_from_installed(dist: metadata.Distribution) -> Path:
    """A wheel of the files an installed distribution has now (cached by their hash)."""
    name = dist.metadata["Name"]
    try:
        files = _parity.installed_files(dist)
        contents = [(relative, path.read_bytes()) for relative, path in files]
    except (LookupError, FileNotFoundError) as error:
        cause = error if isinstance(error, LookupError) else f"{error.filename} is missing"
        raise DockerBuildError(
            f"{name} {dist.version} cannot be copied into the image: {cause}; reinstall it "
            f"with pip (`pip install --force-reinstall {name}=={dist.version}`)"
        ) from None
    info_dirs = {relative.split("/")[0] for relative, _ in contents if ".dist-info/" in relative}
    if len(info_dirs) != 1:
        raise DockerBuildError(
            f"{name} {dist.version} cannot be copied into the image: its RECORD lists "
            f"{len(info_dirs)} .dist-info folders; reinstall it with pip"
        )
    info_dir = info_dirs.pop()
    content = _parity.content_hash((r, hashlib.sha256(b).hexdigest()) for r, b in contents)
    target = wheel_cache_dir() / "installed" / content.split(":")[1][:32]
    wheel_name = f"{info_dir.removesuffix('.dist-info')}-{_wheel_tag(dist)}.whl"
    wheel = target / wheel_name
    if wheel.is_file():
        return wheel
    target.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=".wheel-", dir=target)
    with os.fdopen(fd, "wb") as stream:
        _write_wheel(stream, contents, info_dir)
    os.replace(scratch, wheel)  # atomic: a concurrent builder writes the same bytes
    return wheel


def _write_wheel(stream: IO[bytes], contents: list[tuple[str, bytes]], info_dir: str) -> None:
    """A reproducible wheel: sorted members, fixed times, a fresh RECORD last."""
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, data in sorted(contents):
            info = zipfile.ZipInfo(relative, _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            writer.writerow([relative, f"sha256={hashed.decode()}", len(data)])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        info = zipfile.ZipInfo(f"{info_dir}/RECORD", _ZIP_TIME)
        info.external_attr = 0o644 << 16
        archive.writestr(info, record.getvalue())


def _wheel_from_checkout(name: str, project: Path) -> Path:
    """A wheel of ``project``, built once per state of its source tree."""
    source = tree_digest(collect(project, _SOURCE_IGNORED))[:24]
    target = wheel_cache_dir() / f"{name}-{source}"
    wheels = sorted(target.glob("*.whl")) if target.is_dir() else []
    if wheels:
        return wheels[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _build_wheel(name, project, scratch)
        built = sorted(scratch.glob("*.whl"))
        if len(built) != 1:
            raise DockerBuildError(f"building a wheel of {name} from {project} made {built}")
        try:
            os.rename(scratch, target)
        except OSError:  # another process built it at the same time
            if not any(target.glob("*.whl")):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(target.glob("*.whl"))[0]


def _build_wheel(name: str, project: Path, out: Path) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    if _backend_importable(project):
        command.append("--no-build-isolation")
    command.append(str(project))
    result = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise DockerBuildError(
            f"could not build a wheel of {name} from {project} (it is installed editable "
            f"from there, so the image needs that same code):\n  $ {' '.join(command)}\n{tail}"
        )


def _backend_importable(project: Path) -> bool:
    """Whether the project's build backend can run without an isolated environment."""
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        return False
    import tomlkit  # the core's own TOML library: Python 3.10 has no tomllib

    system = tomlkit.parse(pyproject.read_text()).unwrap().get("build-system", {})
    backend = str(system.get("build-backend", "")).split(":")[0]
    if not backend:
        return False
    import importlib.util

    try:
        return importlib.util.find_spec(backend.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def describe(sources: Iterable[DistributionSource]) -> str:
    return ", ".join(f"{s.name} {s.version} ({s.origin})" for s in sources)
