"""Give the lockstep distributions a new version: ``python tools/bump_version.py X.Y.Z``.

stepframe-core and its first-party plugins (every ``pyproject.toml`` one folder below the
repository root) release together under one version, and each plugin pins the others it
needs to exactly that version (``stepframe-core==X.Y.Z``).  This rewrites both: the
``__version__`` line of the file each project's ``[tool.hatch.version]`` names (where
hatchling reads the version from), and every dependency of a lockstep project on
another.  Comments and layout are kept: only those strings change.  ``nox -s bump --
X.Y.Z`` runs it; tests/test_versions.py checks the result.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

# tomlkit, not tomllib: the tests run it on Python 3.10 too (stepframe-core requires it).
import tomlkit

# PEP 440's public versions in their normal form: 1.2.3, 1.2.3rc1, 1.2.3.post1, 1.2.3.dev4.
VERSION = re.compile(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?")
VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.MULTILINE)


def _toml(path: Path) -> dict[str, Any]:
    return tomlkit.parse(path.read_text()).unwrap()


def lockstep_projects(root: Path) -> dict[str, Path]:
    """Distribution name -> folder of each lockstep project (a pyproject.toml one level down)."""
    projects = {}
    for pyproject in sorted(root.glob("*/pyproject.toml")):
        name = _toml(pyproject)["project"]["name"]
        projects[name] = pyproject.parent
    return projects


def version_file(project: Path) -> Path:
    """The file hatchling reads the project's version from (``[tool.hatch.version] path``)."""
    config = _toml(project / "pyproject.toml")
    path = config.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
    if path is None:
        raise SystemExit(
            f"bump: {project.name}/pyproject.toml has no [tool.hatch.version] path; give it one"
            ' and dynamic = ["version"], as stepframe-core/pyproject.toml does'
        )
    return project / str(path)


def _pin_pattern(names: list[str]) -> re.Pattern[str]:
    # "stepframe-core==0.1.0", "stepframe-core[numpy]>=0.1": the name and extras are kept,
    # the version specifier (up to a marker's `;` or the closing quote) replaced.
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf'"(?P<name>{alternatives})(?P<extras>\[[^\]]*\])?\s*[=<>!~][^";]*')


def bump(root: Path, version: str) -> list[Path]:
    """Write ``version`` into every lockstep project; return the files changed."""
    projects = lockstep_projects(root)
    pins = _pin_pattern(sorted(projects, key=len, reverse=True))
    changed = []
    for project in projects.values():
        source = version_file(project)
        text, count = VERSION_LINE.subn(f'__version__ = "{version}"', source.read_text())
        if count != 1:
            raise SystemExit(f'bump: {source}: one `__version__ = "..."` line, not {count}')
        changed += _write_if_changed(source, text)
        pyproject = project / "pyproject.toml"
        text = pins.sub(rf'"\g<name>\g<extras>=={version}', pyproject.read_text())
        changed += _write_if_changed(pyproject, text)
    return changed


def _write_if_changed(path: Path, text: str) -> list[Path]:
    if path.read_text() == text:
        return []
    path.write_text(text)
    return [path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the new version, e.g. 0.2.0")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    if not VERSION.fullmatch(args.version):
        print(
            f"bump: {args.version!r} is not a release version; give one like 0.2.0 or 0.2.0rc1",
            file=sys.stderr,
        )
        return 2
    for path in bump(args.root, args.version):
        print(f"bump: {path.relative_to(args.root)} -> {args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
