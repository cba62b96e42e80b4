"""The stepframe distributions an image gets: the very versions the client runs.

A distribution installed from an index goes in as ``name==version``.  One installed from a
checkout (editable, or ``pip install ./stepframe-core``) goes in as a wheel built from that
checkout: its ``direct_url.json`` says where the source is.  Nothing is ever left to
pip to pick from an index on its own.  Built wheels are cached by a hash of their source
tree, so an unchanged checkout is not built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import attrs

from stepframe_docker._context import IgnoreRules, collect, tree_digest
from stepframe_docker._errors import DockerBuildError

__all__ = [
    "DistributionSource",
    "default_packages",
    "describe",
    "resolve_packages",
    "wheel_cache_dir",
    "wheel_content_digest",
]

ENTRY_POINT_GROUP = "stepframe"
CORE = "stepframe-core"
# The builder itself has no business inside a job.
BUILDER_DISTRIBUTION = "stepframe-docker"
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


@attrs.frozen
class DistributionSource:
    """How one stepframe distribution gets into the image.

    :param name: the distribution's name.
    :param version: the version the client runs.
    :param wheel: a wheel file to install, or None to install ``name==version`` from the
        index.
    :param wheel_digest: a hash of the wheel's contents (not its zip timestamps).
    """

    name: str
    version: str
    wheel: Path | None = None
    wheel_digest: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def wheel_cache_dir() -> Path:
    base = os.environ.get("STEPFRAME_DOCKER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stepframe-docker"
    )
    return Path(base) / "wheels"


def default_packages() -> list[str]:
    """``stepframe-core`` and every distribution with a ``stepframe`` entry point, except
    this builder, unless one of the others requires it (stepframe-aws does)."""
    plugins = {CORE}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        if dist is not None:
            plugins.add(_canonical(dist.metadata["Name"]))
    names = plugins - {BUILDER_DISTRIBUTION}
    # A first-party requirement must come from the client's own copy too: pip in the
    # image would look for it on an index, where a checkout's version does not exist.
    pending = sorted(names)
    while pending:
        for required in _requirement_names(pending.pop()):
            if required in plugins and required not in names:
                names.add(required)
                pending.append(required)
    return sorted(names)


def _requirement_names(name: str) -> list[str]:
    """The distributions ``name`` requires unconditionally (no extras, no markers)."""
    try:
        requirements = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for requirement in requirements:
        if ";" in requirement:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match:
            found.append(_canonical(match.group(1)))
    return found


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def resolve_packages(names: list[str]) -> list[DistributionSource]:
    """Where each named distribution comes from, building wheels from checkouts."""
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
    raw = dist.read_text("direct_url.json")
    if not raw:
        return DistributionSource(_canonical(name), version)  # from an index: pin it
    info = json.loads(raw)
    url = str(info.get("url", ""))
    if not url.startswith("file:"):
        # From a VCS or an archive URL: the same URL would do, but a pin is clearer.
        return DistributionSource(_canonical(name), version)
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if "dir_info" in info:
        if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
            raise DockerBuildError(
                f"{name} {version} was installed from {path}, which is no longer a project "
                "folder; reinstall it, so the image can get the same code"
            )
        wheel = _wheel_from_checkout(_canonical(name), path)
    elif path.suffix == ".whl" and path.is_file():
        wheel = path
    else:
        raise DockerBuildError(
            f"{name} {version} was installed from {path}, which cannot be used to install it "
            "in the image (not a project folder or a wheel that still exists); reinstall it"
        )
    return DistributionSource(_canonical(name), version, wheel, wheel_content_digest(wheel))


def wheel_content_digest(wheel: Path) -> str:
    """A hash of a wheel's member names and contents, whatever its zip timestamps."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            digest.update(member.encode() + b"\0")
            digest.update(hashlib.sha256(archive.read(member)).digest())
    return digest.hexdigest()


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
            f"could not build a wheel of {name} from {project} (it is installed from there, "
            f"so the image needs that same code):\n  $ {' '.join(command)}\n{tail}"
        )


def _backend_importable(project: Path) -> bool:
    """Whether the project's build backend can run without an isolated environment."""
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # Python 3.10
        return False
    system = tomllib.loads(pyproject.read_text()).get("build-system", {})
    backend = str(system.get("build-backend", "")).split(":")[0]
    if not backend:
        return False
    import importlib.util

    try:
        return importlib.util.find_spec(backend.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def describe(sources: list[DistributionSource]) -> str:
    return ", ".join(
        f"{s.name} {s.version} ({'wheel ' + s.wheel.name if s.wheel else 'index'})" for s in sources
    )
