"""Plugins' entry points, read from the installed distributions' files (issue 12, CLI
start-up): what importlib.metadata finds, without importing it (it imports the email
package, 30 ms or more of every ``stepframe --help``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from stepframe._plugins.discovery import find_entry_points

GROUPS = ["stepframe", "stepframe.commands"]


def _dist(site: Path, name: str, version: str, entry_points: str, requires: str = "") -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}\n"
        "Name: not-the-name (the description, after the header)\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_what_it_finds_is_what_importlib_metadata_finds() -> None:
    ours = {(e.group, e.name, e.value, e.dist and e.dist.name) for e in find_entry_points(GROUPS)}
    every = metadata.entry_points()
    theirs = {
        (group, e.name, e.value, e.dist and e.dist.name)
        for group in GROUPS
        for e in every.select(group=group)
    }
    assert ours == theirs
    assert ("stepframe", "local", "stepframe._builtin.local", "stepframe-core") in ours


def test_the_first_distribution_of_a_name_on_sys_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "stepframe-twice", "2.0", "[stepframe]\ntwice = twice_new\n")
    _dist(second, "stepframe_twice", "1.0", "[stepframe]\ntwice = twice_old\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    (found,) = [e for e in find_entry_points(GROUPS) if e.name == "twice"]
    assert found.value == "twice_new"
    assert found.dist is not None
    assert (found.dist.name, found.dist.version) == ("stepframe-twice", "2.0")
    (theirs,) = metadata.entry_points(group="stepframe", name="twice")
    assert theirs.value == found.value


def test_a_distribution_reads_its_header_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points = """
        # a comment
        [stepframe.commands]
        hello = hello_module:command [extra]

        [console_scripts]
        hello = hello_module:main
    """
    requires = "Requires-Dist: stepframe-core==0.1.0\nRequires-Dist: attrs>=23; extra == 'x'"
    _dist(tmp_path, "stepframe-hello", "0.3", entry_points, requires)
    (tmp_path / "hello_module.py").write_text("class command:\n    class inner:\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (found,) = [e for e in find_entry_points(GROUPS) if e.name == "hello"]
    assert (found.group, found.module) == ("stepframe.commands", "hello_module")
    assert found.dist is not None and found.dist.name == "stepframe-hello"
    assert found.dist.requires == ["stepframe-core==0.1.0", "attrs>=23; extra == 'x'"]
    assert found.load().__name__ == "command"
    monkeypatch.delitem(sys.modules, "hello_module")


@pytest.mark.parametrize("args", [["--help"], ["plugins"]])
def test_the_command_line_imports_neither_importlib_metadata_nor_email(args: list[str]) -> None:
    probe = textwrap.dedent(
        f"""
        import sys
        from stepframe._cli.main import cli
        try:
            cli.main({args!r}, prog_name="stepframe")
        except SystemExit:
            pass
        print("LOADED:", ",".join(sorted(
            name for name in sys.modules if name in ("email", "importlib.metadata")
        )))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    (loaded,) = [line for line in result.stdout.splitlines() if line.startswith("LOADED:")]
    assert loaded == "LOADED: ", loaded
