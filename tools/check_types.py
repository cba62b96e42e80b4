"""mypy over the whole repository: ``python tools/check_types.py`` (``nox -s types`` runs it).

Two profiles, both from ``mypy.ini`` (per-module overrides for untyped libraries live
there):

- ``--strict`` for the code others import or run: every distribution's package, the
  example plugin, ``bench/``, ``tools/``, the examples' pipelines and the noxfile;
- for the tests, strict but for annotations: a test function may leave its parameters
  (fixtures) unannotated, yet every body is checked (``check_untyped_defs``).

Test folders are checked one at a time, since most of them hold a ``conftest.py`` (mypy
refuses two modules of one name in a run).  ``tests/typing`` is left to
stepframe-core/tests/test_typing.py: half of its files must fail.  Extra arguments go to
every mypy run.  Exits non-zero when any run found an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The packages of every distribution (a folder with a pyproject.toml at the top) and of
# the example plugins; ``src`` layout throughout.
PACKAGE_PATTERNS = ("*/src/*/__init__.py", "examples/plugins/*/src/*/__init__.py")
OTHER_STRICT_TARGETS = ["bench", "tools", "noxfile.py", "examples/quickstart/pipeline.py"]
# A second pipeline.py: mypy checks it in a run of its own.
SEPARATE_STRICT_TARGETS = ["examples/sagemaker/pipeline.py"]


def packages() -> list[Path]:
    return sorted({init.parent for pattern in PACKAGE_PATTERNS for init in REPO.glob(pattern)})


# Strict, except that test functions and fixtures need no annotations.
TEST_RELAXATIONS = [
    "--allow-untyped-defs",
    "--allow-incomplete-defs",
    "--allow-untyped-calls",
    "--no-warn-return-any",
    "--check-untyped-defs",
    # The packages the tests import were checked by the strict run: not again, relaxed.
    "--follow-imports=silent",
]
NOT_CHECKED_AS_TESTS = {"tests/typing"}


def folders_of_tests() -> list[str]:
    """Every folder under a ``tests`` folder that holds Python files, repository-relative."""
    folders = {
        path.parent.relative_to(REPO).as_posix()
        for pattern in ("*/tests/**/*.py", "tests/**/*.py", "examples/plugins/*/tests/**/*.py")
        for path in REPO.glob(pattern)
        if not {".nox", ".venv", ".stepframe", "__pycache__"} & set(path.parts)
    }
    return sorted(folders - NOT_CHECKED_AS_TESTS)


def main(extra: list[str]) -> int:
    found = packages()
    strict = [package.relative_to(REPO).as_posix() for package in found]
    # (what the run checks, its arguments)
    runs = [("the packages, bench, tools and the noxfile", [*strict, *OTHER_STRICT_TARGETS])]
    runs += [(target, [target]) for target in SEPARATE_STRICT_TARGETS]
    runs = [(label, ["--strict", *arguments]) for label, arguments in runs]
    # A test folder's own files, not its subfolders (each has its own conftest.py).
    runs += [
        (folder, [*TEST_RELAXATIONS, *sorted(str(f) for f in (REPO / folder).glob("*.py"))])
        for folder in folders_of_tests()
    ]
    # Each package's src folder, also of a distribution mypy.ini's mypy_path does not name.
    source_folders = [str(package.parent) for package in found]
    env = {**os.environ, "MYPYPATH": os.pathsep.join(source_folders)}
    failed = []
    for label, arguments in runs:
        print(f"mypy: {label}", flush=True)
        command = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", *arguments, *extra]
        if subprocess.run(command, cwd=REPO, env=env, check=False).returncode != 0:
            failed.append(label)
    if failed:
        print(f"mypy found errors in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
