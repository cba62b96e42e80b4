"""Which stepframe distributions an image gets by default.

Each test sees only the distributions it fakes (``sys.path`` holds just their folder), so
what happens to be installed in the test's environment cannot decide the outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepframe_docker._dists import default_packages


def _fake_plugin(site: Path, name: str, requires: list[str]) -> None:
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 0.1.0"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text(f"[stepframe]\n{name} = {name.replace('-', '_')}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _fake_plugin(tmp_path, "stepframe-docker", ["docker>=7"])
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    return tmp_path


def test_the_builder_stays_out_when_nothing_requires_it(site: Path) -> None:
    _fake_plugin(site, "stepframe-alone", ["requests"])
    assert default_packages() == ["stepframe-alone", "stepframe-core"]


def test_the_builder_goes_in_when_a_plugin_requires_it(site: Path) -> None:
    _fake_plugin(site, "stepframe-needs-docker", ["stepframe-docker>=0.1.0", "requests"])
    # requests is not first-party: pip gets it from the index inside the image.
    assert default_packages() == ["stepframe-core", "stepframe-docker", "stepframe-needs-docker"]


def test_a_requirement_behind_an_extra_is_not_followed(site: Path) -> None:
    _fake_plugin(site, "stepframe-extra-docker", ['stepframe-docker; extra == "build"'])
    assert default_packages() == ["stepframe-core", "stepframe-extra-docker"]


def test_a_requirement_with_an_environment_marker_is_followed(site: Path) -> None:
    # Before packaging read the markers, any marker made a requirement invisible.
    _fake_plugin(site, "stepframe-marked", ['stepframe-docker>=0.1; python_version >= "3"'])
    assert default_packages() == ["stepframe-core", "stepframe-docker", "stepframe-marked"]


def test_a_marker_for_another_interpreter_is_not_followed(site: Path) -> None:
    _fake_plugin(site, "stepframe-py2", ['stepframe-docker; python_version < "3"'])
    assert default_packages() == ["stepframe-core", "stepframe-py2"]


def test_requirement_names_are_compared_as_pep_503_says(site: Path) -> None:
    # "Stepframe__Docker" and "stepframe.docker" are stepframe-docker (runs of -_. are one -).
    _fake_plugin(site, "stepframe-oddly-named", ["Stepframe__Docker>=0.1"])
    assert "stepframe-docker" in default_packages()


def _fake_dist(site: Path, name: str, version: str, requires: list[str]) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_constraints_pin_what_stepframe_needs_at_the_clients_versions(site: Path) -> None:
    from stepframe_docker._dists import constraints

    _fake_plugin(
        site,
        "stepframe-needs-lib",
        [
            'Fake_Lib[fast]>=1; python_version >= "3"',
            "stepframe-docker",
            'win-only; sys_platform == "win32-never"',
            "not-installed-here",
        ],
    )
    _fake_dist(site, "fake-lib", "2.0", ['sub-dep; extra == "fast"', 'slow-dep; extra == "slow"'])
    _fake_dist(site, "sub-dep", "3.1", ["leaf"])
    _fake_dist(site, "slow-dep", "4.0", [])
    _fake_dist(site, "leaf", "0.5", [])
    _fake_dist(site, "win-only", "1.0", [])
    pins = constraints(["stepframe-needs-lib", "stepframe-docker"])
    # The extra asked for is followed, transitively; first-party ones come as wheels; a
    # marker that does not hold here and what is not installed here are left to pip.
    assert pins == {"fake-lib": "2.0", "leaf": "0.5", "sub-dep": "3.1"}
