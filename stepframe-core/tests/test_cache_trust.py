"""Cached results you can trust (issue 10, items 12-14): a cache hit is a hit in the run's
own artifact store, its outputs are verified (size and sha256) before they are reused,
and its key covers the code the step can run: its module and the project's modules it
imports, with comments, formatting and docstrings not counting.

Runs go through the ``stepframe`` command in real processes (or `run_pipeline`, where a
test corrupts files between runs); steps count their executions in side-effect files.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from stepframe._artifacts.local import path_from_file_uri


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def executions(root: Path, step: str) -> int:
    path = root / f"{step}.runs"
    return len(path.read_text().split()) if path.exists() else 0


COUNT = """
import os
from pathlib import Path


def count(name):
    with open(Path(__file__).resolve().parent / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")
"""


# ---- item 12: the cache and the artifact store ------------------------------------------

STORE_PIPELINE = (
    COUNT
    + """
from stepframe import pipeline, step


@step
def make() -> int:
    count("make")
    return 20


@step(operator="local")
def double(x: int) -> int:
    count("double")
    return x * 2


@pipeline
def stored():
    double(make())
"""
)


def test_a_cache_hit_is_a_hit_in_the_store_the_run_uses(project, cli) -> None:
    path = project.write(STORE_PIPELINE)
    root = project.root

    def run() -> tuple[str, dict[str, int]]:
        before = {step: executions(root, step) for step in ("make", "double")}
        out = ok(cli("run", str(path)))
        return out, {step: executions(root, step) - before[step] for step in before}

    assert run()[1] == {"make": 1, "double": 1}
    assert run()[1] == {"make": 0, "double": 0}

    ok(cli("artifact-store", "register", "other", "-f", "local", "--path", "other"))
    ok(cli("stack", "register", "alt", "-a", "other", "--set"))
    out, ran = run()
    # The results in the default store are no hit for a run that uses `other`.
    assert ran == {"make": 1, "double": 1}, out
    assert "outside the artifact store" not in out and "succeeded: 2 succeeded" in out
    assert list((root / "other").rglob("output")), "the outputs went to the other store"
    out, ran = run()
    assert ran == {"make": 0, "double": 0} and "succeeded: 2 cached" in out

    # Back on the default store, its older results are hits again (the newer ones in
    # `other` are not).
    ok(cli("stack", "set", "default"))
    out, ran = run()
    assert ran == {"make": 0, "double": 0} and "succeeded: 2 cached" in out


# ---- item 13: a cache hit verifies what it reuses ----------------------------------------

CHAIN = (
    COUNT
    + """
from stepframe import pipeline, step


@step
def produce() -> str:
    count("produce")
    return "a value worth caching"


@step
def consume(text: str) -> str:
    count("consume")
    return text.upper()


@pipeline
def chain():
    consume(produce())
"""
)


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


@pytest.mark.parametrize(
    ("damage", "mismatched"),
    [
        (_flip, "sha256"),
        (lambda data: data[:-1], "size"),
        (lambda data: data + b"\0", "size"),
    ],
    ids=["flipped-byte", "truncated", "appended-byte"],
)
def test_a_corrupt_cached_output_is_a_miss_with_a_warning(project, run, damage, mismatched) -> None:
    module = project.module(CHAIN)
    first = run(module.chain)
    assert first.output("consume") == "A VALUE WORTH CACHING"
    ref = first.steps["produce"].outputs["output"]
    stored = path_from_file_uri(ref.uri)
    stored.write_bytes(damage(stored.read_bytes()))

    again = run(module.chain)
    assert again.steps["produce"].status == "succeeded"
    assert executions(project.root, "produce") == 2
    assert again.output("consume") == "A VALUE WORTH CACHING"
    warning = f"step 'produce': not reusing output 'output' at {ref.uri}: {mismatched}"
    assert warning in run.output, run.output

    # The fresh outputs are what the next run reuses, verified.
    third = run(module.chain)
    assert {name: step.status for name, step in third.steps.items()} == {
        "produce": "cached",
        "consume": "cached",
    }
    assert "not reusing" not in run.output
    assert third.output("consume") == "A VALUE WORTH CACHING"


PRODUCER = (
    COUNT
    + """
from stepframe import step


@step
def produce() -> str:
    count("produce")
    return "a value worth caching"
"""
)

CONSUMER = (
    COUNT
    + """
from stepframe import pipeline, step

from {producer} import produce


@step
def consume(text: str) -> str:
    count("consume")
    return text.upper()


@pipeline
def chain():
    consume(produce())
"""
)


def test_corruption_found_downstream_is_not_served_again(project, cli) -> None:
    """A changed downstream step reads a corrupt cached input: the producer runs again
    instead of handing the same corrupt file to every later run."""
    producer = project.write(PRODUCER, name=f"producer_{uuid.uuid4().hex[:8]}")
    path = project.write(CONSUMER.replace("{producer}", producer.stem))
    ok(cli("run", str(path)))
    (artifact,) = [
        p for p in (project.state_dir / "artifacts").rglob("output") if "/produce/" in str(p)
    ]
    artifact.write_bytes(_flip(artifact.read_bytes()))
    path.write_text(path.read_text().replace("text.upper()", "text.title()"))

    out = ok(cli("run", str(path)))
    assert "[produce] succeeded" in out and "[consume] succeeded" in out
    assert f"not reusing output 'output' at {artifact.as_uri()}: sha256" in out
    assert executions(project.root, "produce") == 2
    out = ok(cli("run", str(path)))
    assert "succeeded: 2 cached" in out


# ---- item 14: the key covers the code the step can run ------------------------------------

HELPER = """
'''Arithmetic the steps share.'''


def factor():
    return 2
"""

STEPS = (
    COUNT
    + """
from stepframe import step

from {helper} import factor


@step
def base() -> int:
    count("base")
    return 10


@step(operator="local")
def scaled(x: int) -> int:
    '''Scales by the shared factor.'''
    count("scaled")
    return x * factor()
"""
)

KEYED_PIPELINE = (
    COUNT
    + """
from stepframe import pipeline, step

from {steps} import base, scaled


@step
def report(y: int) -> int:
    count("report")
    print("report", y)
    return y + 1


@pipeline
def keyed():
    report(scaled(base()))
"""
)


@pytest.fixture
def keyed_project(project, cli):
    tag = uuid.uuid4().hex[:8]
    helper = project.write(HELPER, name=f"helper_{tag}")
    steps = project.write(STEPS.replace("{helper}", helper.stem), name=f"steps_{tag}")
    pipe = project.write(KEYED_PIPELINE.replace("{steps}", steps.stem), name=f"keyed_{tag}")
    counted = ("base", "scaled", "report")

    def run() -> tuple[str, dict[str, int]]:
        before = {step: executions(project.root, step) for step in counted}
        out = ok(cli("run", str(pipe)))
        return out, {step: executions(project.root, step) - before[step] for step in counted}

    out, ran = run()
    assert ran == {"base": 1, "scaled": 1, "report": 1} and "report | report 20" in out
    return helper, steps, pipe, run


def test_a_changed_helper_module_reruns_the_steps_that_import_it(keyed_project) -> None:
    helper, _steps, _pipe, run = keyed_project
    helper.write_text(helper.read_text().replace("return 2", "return 3"))
    out, ran = run()
    assert ran["scaled"] == 1, out
    assert "report | report 30" in out  # not the stale 20


def test_comments_formatting_and_docstrings_do_not_rerun_anything(keyed_project) -> None:
    helper, steps, pipe, run = keyed_project
    pipe.write_text("# a comment at the top\n\n" + pipe.read_text() + "\n# and one at the end\n")
    steps.write_text(
        steps.read_text()
        .replace("return x * factor()", "return x  *  factor(  )  # why: the shared factor")
        .replace("'''Scales by the shared factor.'''", '"""Scales (documented better)."""')
    )
    helper.write_text(helper.read_text().replace("Arithmetic", "Arithmetic,\n\nreworded,"))
    out, ran = run()
    assert ran == {"base": 0, "scaled": 0, "report": 0}, out
    assert "succeeded: 3 cached" in out


PACKAGE_FILES = {
    "__init__.py": "",
    "steps.py": COUNT
    + """
from stepframe import step

from .util import twice


@step
def packaged() -> int:
    count("packaged")
    return twice(5)
""",
    "util.py": """
def twice(value):
    from pkg_{tag}.deep import offset  # imported where it is used

    return value * 2 + offset()
""",
    "deep.py": """
def offset():
    return 0
""",
}


def test_modules_imported_transitively_and_relatively_are_keyed(project, cli) -> None:
    tag = uuid.uuid4().hex[:8]
    package = project.root / f"pkg_{tag}"
    package.mkdir()
    for name, source in PACKAGE_FILES.items():
        (package / name).write_text(textwrap.dedent(source.replace("{tag}", tag)))
    pipe = project.write(
        f"""
from stepframe import pipeline

from pkg_{tag}.steps import packaged


@pipeline
def nested():
    packaged()
"""
    )
    ok(cli("run", str(pipe)))
    assert "succeeded: 1 cached" in ok(cli("run", str(pipe)))
    deep = package / "deep.py"
    deep.write_text(deep.read_text().replace("return 0", "return 1"))
    out = ok(cli("run", str(pipe)))
    assert "[packaged] succeeded" in out
    assert executions(package, "packaged") == 2


def test_installed_libraries_inside_the_code_root_are_not_followed(project, monkeypatch) -> None:
    """A virtual environment inside the project is not the project's code: following it
    would hash every library on each run."""
    from stepframe._orchestrator.cache import code_hash

    site = project.root / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    library = f"library_{uuid.uuid4().hex[:8]}"
    (site / f"{library}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(site))
    module = project.module(
        f"""
import {library}


def uses_library():
    return {library}.VALUE
"""
    )
    monkeypatch.delitem(sys.modules, library)
    before = code_hash(module.uses_library, project.root)
    (site / f"{library}.py").write_text("VALUE = 22\n")  # another size: surely re-read
    assert code_hash(module.uses_library, project.root) == before
    # Whereas the same edit in the project's own module counts.
    (project.root / f"{library}.py").write_text("VALUE = 3\n")
    assert code_hash(module.uses_library, project.root) != before
