"""Version skew: a plugin distribution built for another stepframe-core warns once at load.

A plugin says which cores it works with the standard way, with a ``Requires-Dist`` on
``stepframe-core`` in its metadata (``dependencies = ["stepframe-core>=0.3"]`` in its
pyproject.toml).  pip normally enforces that, but not always (``--no-deps``, a core
downgraded after the plugin was installed, editable checkouts), so loading checks it too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import stepframe
from stepframe._plugins.manager import (
    PluginVersionWarning,
    core_requirement,
    core_version_mismatch,
)

PLUGIN = """
from stepframe import ComponentKind, Flavor, hookimpl

@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.STEP_OPERATOR, name={flavor!r}))
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if str(folder) in (getattr(sys.modules[name], "__file__", None) or ""):
            del sys.modules[name]


def install(site: Path, name: str, requires: list[str], entry_points: list[str]) -> list[str]:
    """A distribution with ``Requires-Dist`` lines and one plugin module per entry point."""
    tag = uuid.uuid4().hex[:8]
    lines = []
    for entry in entry_points:
        module = f"{name.replace('-', '_')}_{entry.replace('-', '_')}_{tag}"
        (site / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(flavor=f"{entry}-{tag}")))
        lines.append(f"{entry} = {module}\n")
    info = site / f"{name.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    requires_dist = "".join(f"Requires-Dist: {line}\n" for line in requires)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n{requires_dist}"
    )
    (info / "entry_points.txt").write_text("[stepframe]\n" + "".join(lines))
    return entry_points


def load(allow: list[str]) -> tuple[stepframe.Plugins, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = stepframe.load_plugins(env={"STEPFRAME_LOAD_PLUGINS": ",".join(allow)})
    return plugins, [w for w in caught if issubclass(w.category, PluginVersionWarning)]


def test_a_plugin_for_a_newer_core_warns_once_naming_both_versions(site: Path) -> None:
    names = install(
        site, "stepframe-future", ["pluggy", "stepframe-core>=99.1"], ["future-a", "future-b"]
    )

    plugins, caught = load(names)

    assert len(caught) == 1, [str(w.message) for w in caught]  # once, not per entry point
    message = str(caught[0].message)
    assert "plugin distribution stepframe-future 0.3" in message
    assert "requires stepframe-core>=99.1" in message
    assert f"stepframe-core {stepframe.__version__} is installed" in message
    assert "pip install -U 'stepframe-core>=99.1'" in message
    # A warning, not a refusal: the plugins are loaded and may well work.
    assert {"future-a", "future-b"} <= set(plugins.infos)


def test_a_plugin_for_an_older_core_says_to_get_a_newer_plugin(site: Path) -> None:
    names = install(site, "stepframe-past", ["stepframe-core (<0.1,>=0.0.1)"], ["past"])

    _, caught = load(names)

    (warning,) = caught
    message = str(warning.message)
    assert "stepframe-past 0.3 requires stepframe-core<0.1,>=0.0.1" in message
    assert f"install a stepframe-past release made for stepframe-core {stepframe.__version__}" in (
        message
    )


@pytest.mark.parametrize(
    "requires",
    [
        [],
        ["stepframe-core"],
        [f"stepframe-core>={stepframe.__version__}"],
        ["stepframe_core[numpy]~=0.1"],
        ['stepframe-core>=99; extra == "future"'],  # only with an extra: not required
    ],
)
def test_a_plugin_whose_requirement_is_met_loads_silently(site: Path, requires: list[str]) -> None:
    names = install(site, "stepframe-fine", requires, ["fine"])
    plugins, caught = load(names)
    assert caught == []
    assert "fine" in plugins.infos


def test_plugins_not_allowed_to_load_are_not_checked(site: Path) -> None:
    install(site, "stepframe-future", ["stepframe-core>=99"], ["future"])
    _, caught = load([])
    assert caught == []


def test_the_cli_shows_the_warning_once(site: Path, subprocess_env, project) -> None:
    install(site, "stepframe-future", ["stepframe-core>=99"], ["future-a", "future-b"])
    result = subprocess.run(
        [sys.executable, "-m", "stepframe", "plugins"],
        env=subprocess_env(PYTHONPATH=str(site), STEPFRAME_LOAD_PLUGINS="future-a,future-b"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("PluginVersionWarning") == 1, result.stderr
    assert "stepframe-future 0.3 requires stepframe-core>=99" in result.stderr
    assert "future-a  (stepframe-future 0.3)" in result.stdout


@pytest.mark.parametrize(
    ("requires", "expected"),
    [
        (["stepframe-core>=0.2"], ">=0.2"),
        (["pluggy>=1", "stepframe_core (>=0.2, <1)"], "<1,>=0.2"),
        (["Stepframe.Core[numpy]>=0.3; python_version >= '3.10'"], ">=0.3"),
        (["stepframe-core"], None),
        (['stepframe-core>=0.3; extra == "dev"'], None),
        (["stepframe-core-extras>=5"], None),
        # A marker that does not hold here: not a requirement of this environment...
        (["stepframe-core>=9; python_version < '3'", "stepframe-core>=0.1"], ">=0.1"),
        # ...one that holds is, even when it names an extra too.
        (["stepframe-core>=0.4; extra == 'dev' or os_name != 'no-such-os'"], ">=0.4"),
        # A requirement pip cannot read is not ours to judge.
        (["stepframe-core>>0.1", "stepframe-core==0.1.*"], "==0.1.*"),
        (["STEPFRAME__core>=1"], ">=1"),  # one name, however written (PEP 503)
    ],
)
def test_reading_the_core_requirement(requires: list[str], expected: str | None) -> None:
    assert core_requirement(requires) == expected


@pytest.mark.parametrize(
    ("specifier", "installed", "broken"),
    [
        (">=0.2", "0.1.0", ">=0.2"),
        (">=0.1", "0.1.0", None),
        (">=0.1.0", "0.1", None),
        (">0.1", "0.1.0", ">0.1"),
        ("<1", "0.1.0", None),
        ("<0.1", "0.1.0", "<0.1"),
        ("==0.1.*", "0.1.7", None),
        ("==0.2.*", "0.1.7", "==0.2.*"),
        ("!=0.1.0", "0.1", "!=0.1.0"),
        ("~=0.1.0", "0.1.9", None),
        ("~=0.1.0", "0.2.0", "~=0.1.0"),
        ("~=1.0", "1.4", None),
        (">=0.2rc1", "0.1.0", ">=0.2rc1"),
        (">=0.3", "0.3.0rc1", ">=0.3"),  # a pre-release comes before its release
        (">=0.3rc1", "0.3.0rc2", None),
        ("==0.3.0", "0.3", None),
        (">=0.1", "not a version", None),  # unsure: no warning
        (">=0.1, <0.2", "0.2.0", "<0.2"),
        (">=not-a-version", "0.1.0", None),  # unsure: no warning
    ],
)
def test_version_comparison(specifier: str, installed: str, broken: str | None) -> None:
    assert core_version_mismatch(specifier, installed) == broken
