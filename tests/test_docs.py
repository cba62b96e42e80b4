"""docs/plugins.md stays true: every hook is documented with its arguments, every hook is
exercised by some test, the Python in it compiles, and its tutorial plugin, written out
exactly as the page shows it, installs, shows in `stepframe plugins`, passes the kit and
runs a step.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit

from stepframe import hookspecs
from stepframe.testing import ImageBuilderSuite, PolicySuite, StepOperatorSuite

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"


def _hook_specs() -> dict[str, list[str]]:
    """Every hook spec in stepframe.hookspecs, with its argument names in order."""
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in vars(hookspecs).items()
        if callable(function) and hasattr(function, "stepframe_spec")
    }


def _sections(text: str) -> dict[str, str]:
    """Each ``##``/``###`` heading of the page and the text below it, up to the next one."""
    sections: dict[str, str] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith(("## ", "### ")):
            heading = line.lstrip("#").strip()
            sections[heading] = ""
        elif heading:
            sections[heading] += line + "\n"
    return sections


def _fenced_blocks(text: str) -> list[tuple[str, str, str]]:
    """(the line before the block, the block's language, its content) for each block."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = re.match(r"^(\s*)```(\w*)\s*$", lines[index])
        if not match:
            index += 1
            continue
        indent, language = match.groups()
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        body = []
        index += 1
        while not lines[index].strip().startswith("```"):
            body.append(lines[index][len(indent) :])
            index += 1
        blocks.append((before.strip(), language, "\n".join(body) + ("\n" if body else "")))
        index += 1
    return blocks


HOOKS = _hook_specs()


def test_the_hook_specs_are_found() -> None:
    assert {"submit_step", "poll_step", "register_flavors", "open_artifact_store"} <= set(HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_documented_with_each_argument(hook: str) -> None:
    sections = _sections(DOCS.read_text())
    heading = f"`{hook}({', '.join(HOOKS[hook])})`"
    assert heading in sections, f"docs/plugins.md has no section headed ### {heading}"
    body = sections[heading]
    for argument in HOOKS[hook]:
        assert re.search(rf"^- `{argument}`: \S", body, re.MULTILINE), (
            f"the section on {hook} does not describe its argument `{argument}` "
            f"(a line starting with - `{argument}`: ...)"
        )
    assert "Returns" in body or "returns" in body, f"the section on {hook} says nothing it returns"


def test_the_page_documents_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `(\w+)\(", DOCS.read_text(), re.MULTILINE))
    assert documented == set(HOOKS)


# ---- every hook is exercised by a test ---------------------------------------------------
#
# What counts, per hook, in the test suites of every distribution in the repository and in
# the kit's suites (which stepframe-core/tests/test_testing_kit.py runs):
# - a call of the hook through a plugin manager: `hooks.NAME(` (the core's typed facade)
#   or `hook.NAME(` (pluggy's relay), or
# - a hook implementation, `@hookimpl` then `def NAME(`, in test code: a plugin a test
#   registers, which the core then calls.
# A mention in a comment or a docstring does not count.

TEST_SOURCES = [
    ROOT / "stepframe-core" / "tests",
    ROOT / "stepframe-core" / "src" / "stepframe" / "testing",
    ROOT / "tests",
    *sorted((ROOT / "examples" / "plugins").glob("*/tests")),
    *sorted(ROOT.glob("stepframe-*/tests")),
]


def _exercised(hook: str) -> dict[str, list[str]]:
    call = re.compile(rf"\bhooks?\.{hook}\(")
    implementation = re.compile(rf"@hookimpl(\([^)]*\))?\s*\n\s*def {hook}\(")
    found: dict[str, list[str]] = {"calls": [], "implementations": []}
    for folder in dict.fromkeys(TEST_SOURCES):
        for path in sorted(folder.rglob("*.py")):
            text = path.read_text()
            where = str(path.relative_to(ROOT))
            if call.search(text):
                found["calls"].append(where)
            if implementation.search(text):
                found["implementations"].append(where)
    return found


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_test(hook: str) -> None:
    found = _exercised(hook)
    assert found["calls"] or found["implementations"], (
        f"no test calls hook {hook} or implements it in a test plugin"
    )


@pytest.mark.parametrize(
    "suite", [StepOperatorSuite, ImageBuilderSuite, PolicySuite], ids=lambda s: s.__name__
)
def test_the_page_lists_each_test_of_the_suites(suite: type) -> None:
    text = DOCS.read_text()
    missing = [name for name in dir(suite) if name.startswith("test_") and name not in text]
    assert not missing, f"docs/plugins.md does not list {suite.__name__}'s {missing}"


# ---- the Python on the page ----------------------------------------------------------------


def test_the_python_on_the_page_compiles() -> None:
    blocks = _fenced_blocks(DOCS.read_text())
    python = [(before, body) for before, language, body in blocks if language == "python"]
    assert len(python) >= 8
    for before, body in python:
        compile(body, f"docs/plugins.md block after {before!r}", "exec")


VALUE_CLASSES = {
    "ArtifactRef", "Component", "ConnectorReport", "Credentials", "Flavor", "ImageRef",
    "ImageRequest", "JobHandle", "JobNotFound", "JobStatus", "Launch", "PlannedStep",
    "RemoteError", "ResourceRequest", "StepResult",
}  # fmt: skip


def test_the_pages_examples_build_value_classes_with_keyword_arguments() -> None:
    """The compatibility promise says value classes only gain fields and their order is
    not promised: the page's own examples follow that rule."""
    import ast

    positional = []
    for before, language, body in _fenced_blocks(DOCS.read_text()):
        if language != "python":
            continue
        for node in ast.walk(ast.parse(body)):
            name = getattr(getattr(node, "func", None), "id", None)
            if isinstance(node, ast.Call) and name in VALUE_CLASSES and node.args:
                positional.append(f"{name}(...) in the block after {before!r}")
    assert not positional, positional


# ---- the configuration reference ----------------------------------------------------------

CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_the_toml_in_the_configuration_reference_parses_and_is_well_formed() -> None:
    """Every TOML example parses, and the full example passes the file's shape checks."""
    from stepframe._config.stacks import check_document

    text = CONFIGURATION.read_text()
    documents = [
        tomlkit.parse(body).unwrap()
        for _, language, body in _fenced_blocks(text)
        if language == "toml"
    ]
    assert len(documents) >= 2
    full = next(document for document in documents if "stacks" in document)
    check_document(full)
    assert set(full) == {"active_stack", "stacks", "connectors", "artifact_stores",
                         "image_builders", "container_registries", "step_operators"}  # fmt: skip
    assert "## Validation rules" in text


# ---- the tutorial ----------------------------------------------------------------------------


def _tutorial_files() -> dict[str, str]:
    files = {}
    for before, _language, body in _fenced_blocks(DOCS.read_text()):
        match = re.fullmatch(r"File `([^`]+)`:", before)
        if match:
            files[match.group(1)] = body
    return files


def _install_like_pip(site: Path, pyproject: str) -> None:
    """What pip leaves in site-packages for a distribution's metadata: its dist-info."""
    project = tomlkit.parse(pyproject)["project"]
    name, version = str(project["name"]), str(project["version"])
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    requires = "".join(f"Requires-Dist: {line}\n" for line in project["dependencies"])
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}"
    )
    entry_points = project["entry-points"]["stepframe"]
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[stepframe]\n{lines}")


_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
            "seventeen", "eighteen", "nineteen", "twenty", "twenty-one", "twenty-two"]  # fmt: skip


def test_the_tutorial_plugin_installs_passes_the_kit_and_runs_a_step(tmp_path: Path) -> None:
    files = _tutorial_files()
    assert {
        "stepframe-nice/pyproject.toml",
        "stepframe-nice/src/stepframe_nice/__init__.py",
        "stepframe-nice/src/stepframe_nice/plugin.py",
        "stepframe-nice/tests/conftest.py",
        "stepframe-nice/tests/test_nice.py",
        "pipeline.py",
    } <= set(files), sorted(files)
    for name, body in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    site = tmp_path / "site-packages"
    _install_like_pip(site, files["stepframe-nice/pyproject.toml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(tmp_path / "stepframe-nice" / "src")]),
        STEPFRAME_LOAD_PLUGINS="nice",
        STEPFRAME_SECRETS_FILE=str(tmp_path / "secrets.json"),
        PYTHONUNBUFFERED="1",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    # It passes the kit: the whole step operator suite, and the tutorial's own test.  Its
    # jobs die with the client, so the two tests that follow a job from another process
    # are skipped, saying why.
    tests = run("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "stepframe-nice/tests")
    suite = [name for name in dir(StepOperatorSuite) if name.startswith("test_")]
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert f"{len(suite) + 1 - 2} passed, 2 skipped" in tests.stdout, tests.stdout[-2000:]
    assert "SKIPPED [2]" in tests.stdout and "jobs_outlive_client = False" in tests.stdout
    assert f"{_NUMBERS[len(suite)]} tests" in DOCS.read_text(), (
        f"the tutorial should say the suite has {_NUMBERS[len(suite)]} tests"
    )

    # It shows in `stepframe plugins`, exactly as the page says.
    listed = run("-m", "stepframe", "plugins")
    assert listed.returncode == 0, listed.stderr
    assert "Warning" not in listed.stderr, listed.stderr
    shown = next(
        body for _, _, body in _fenced_blocks(DOCS.read_text()) if body.startswith("nice  (")
    )
    assert shown in listed.stdout, listed.stdout

    # And it runs a step of a real pipeline.
    result = run("-m", "stepframe", "run", "pipeline.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "total | adding up 1000 numbers politely" in result.stdout, result.stdout
    assert re.search(r"run \S+ succeeded", result.stdout), result.stdout
