"""A user's mypy checks step and pipeline calls (the cases in tests/typing/, see its README).

One mypy run over the folder; the cases say which lines must give which error codes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="the typing cases need mypy (the `types` nox session has it)")

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "typing"
EXPECTED = re.compile(r"#\s*E:\s*([\w-]+(?:\s*,\s*[\w-]+)*)\s*$")
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def _expected_errors() -> dict[tuple[str, int], set[str]]:
    expected: dict[tuple[str, int], set[str]] = {}
    for path in sorted(CASES.glob("*.py")):
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            found = EXPECTED.search(text)
            if found:
                assert path.name.startswith("fail_"), f"{path.name}:{number} expects an error"
                codes = {code.strip() for code in found.group(1).split(",")}
                expected[(path.name, number)] = codes
    return expected


@pytest.fixture(scope="module")
def mypy_errors() -> dict[tuple[str, int], set[str]]:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--strict", str(CASES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 2: mypy itself failed
    errors: dict[tuple[str, int], set[str]] = defaultdict(set)
    for line in run.stdout.splitlines():
        found = ERROR.match(line)
        if found:
            key = (Path(found["file"]).name, int(found["line"]))
            errors[key].add(found["code"])
        elif ": error:" in line:
            pytest.fail(f"mypy error without a code: {line}")
    return dict(errors)


def test_the_folder_has_cases_both_ways() -> None:
    names = [path.name for path in CASES.glob("*.py")]
    assert any(name.startswith("pass_") for name in names)
    assert any(name.startswith("fail_") for name in names)
    assert all(name.startswith(("pass_", "fail_")) for name in names), names


def test_accepted_cases_type_check(mypy_errors: dict[tuple[str, int], set[str]]) -> None:
    unexpected = {key: codes for key, codes in mypy_errors.items() if key[0].startswith("pass_")}
    assert unexpected == {}


def test_refused_cases_give_exactly_the_expected_errors(
    mypy_errors: dict[tuple[str, int], set[str]],
) -> None:
    got = {key: codes for key, codes in mypy_errors.items() if key[0].startswith("fail_")}
    assert got == _expected_errors()
