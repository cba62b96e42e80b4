"""Which stepframe distributions an image gets by default."""

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


def test_the_builder_goes_in_when_a_plugin_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_plugin(tmp_path, "stepframe-needs-docker", ["stepframe-docker>=0.1.0", "requests"])
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    names = default_packages()
    assert "stepframe-needs-docker" in names
    assert "stepframe-docker" in names
    assert "requests" not in names  # only first-party distributions come from the client


def test_a_requirement_behind_an_extra_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_plugin(tmp_path, "stepframe-extra-docker", ['stepframe-docker; extra == "build"'])
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    requirers = {
        name
        for name in default_packages()
        if name not in ("stepframe-extra-docker", "stepframe-docker")
    }
    from importlib import metadata

    someone_else_requires_it = any(
        "stepframe-docker" in " ".join(metadata.requires(name) or []) for name in requirers
    )
    assert ("stepframe-docker" in default_packages()) == someone_else_requires_it
