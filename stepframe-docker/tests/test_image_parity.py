"""The image gets the very bytes the client runs, and its parity check proves it.

A distribution installed normally (here: a fake one in a folder of its own, whose
``direct_url.json`` says it came from a checkout, as ``pip install ./stepframe-core``
records) goes into the image as a wheel of its installed files, not of the checkout as
it is today.  pip installs that wheel into another folder (as in the image), and the
parity check runs there in a process of its own, exactly as the image's build runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stepframe_docker import DockerBuildError, _dists, _parity, _plan
from stepframe_docker._stream import step_error

NAME = "stepframe-fake"
INSTALLED_CODE = b"VALUE = 'what the client runs'\n"


def _install_fake(site: Path, checkout: Path) -> None:
    """A normal (not editable) install of NAME 1.0 from ``checkout``, as pip leaves it."""
    package = site / "stepframe_fake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_bytes(INSTALLED_CODE)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0byte code")
    info = site / "stepframe_fake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {NAME}\nVersion: 1.0\nRequires-Dist: attrs\n"
    )
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "direct_url.json").write_text(json.dumps({"url": checkout.as_uri(), "dir_info": {}}))
    record = [
        "stepframe_fake/__init__.py,,",
        "stepframe_fake/__pycache__/__init__.cpython-311.pyc,,",
        "stepframe_fake-1.0.dist-info/METADATA,,",
        "stepframe_fake-1.0.dist-info/WHEEL,,",
        "stepframe_fake-1.0.dist-info/INSTALLER,,",
        "stepframe_fake-1.0.dist-info/direct_url.json,,",
        "stepframe_fake-1.0.dist-info/RECORD,,",
        "../../../bin/stepframe-fake,,",
    ]
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake's site folder, on sys.path; its checkout has moved on since the install."""
    checkout = tmp_path / "checkout"
    (checkout / "stepframe_fake").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text(
        '[project]\nname = "stepframe-fake"\nversion = "1.0"\n'
    )
    (checkout / "stepframe_fake" / "__init__.py").write_text("VALUE = 'edited since'\n")
    site = tmp_path / "site"
    _install_fake(site, checkout)
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    monkeypatch.setenv("STEPFRAME_DOCKER_CACHE", str(tmp_path / "cache"))
    return site


def _pip_install(wheel: Path, target: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )


def _parity_check(target: Path, expected: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The image's parity check, in a process of its own, seeing ``target`` first."""
    (tmp_path / "expected.json").write_text(expected)
    script = tmp_path / "parity.py"
    script.write_text(Path(_parity.__file__).read_text())
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "expected.json")],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_wheel_holds_the_installed_files_not_the_checkouts(installed: Path) -> None:
    (source,) = _dists.resolve_packages([NAME])
    with zipfile.ZipFile(source.wheel) as wheel:
        assert wheel.read("stepframe_fake/__init__.py") == INSTALLED_CODE
        names = wheel.namelist()
    # What an installer writes itself, byte code and scripts stay out; RECORD is fresh.
    assert not any(
        "__pycache__" in n or n.endswith(("INSTALLER", "direct_url.json")) for n in names
    )
    assert names[-1] == "stepframe_fake-1.0.dist-info/RECORD"
    assert source.wheel.name == "stepframe_fake-1.0-py3-none-any.whl"
    from importlib.metadata import distribution

    assert source.content_hash == _parity.installed_hash(distribution(NAME))
    # Rebuilt from the same files, it is the same wheel, byte for byte.
    again = _dists._wheel_from_installed(distribution(NAME))
    assert again.read_bytes() == source.wheel.read_bytes()


def test_parity_holds_after_pip_installs_the_wheel_and_names_what_differs(
    installed: Path, tmp_path: Path
) -> None:
    (source,) = _dists.resolve_packages([NAME])
    target = tmp_path / "image-site"
    _pip_install(source.wheel, target)
    from importlib.metadata import version

    expected = _plan.expected_json([source], {"attrs": version("attrs")})
    result = _parity_check(target, expected, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{_parity.MARKER}: Python" in result.stdout

    # One byte changed in the image: the check names the distribution and both hashes.
    module = target / "stepframe_fake" / "__init__.py"
    module.write_bytes(INSTALLED_CODE.replace(b"client", b"CLIENT"))
    result = _parity_check(target, expected, tmp_path)
    assert result.returncode == 3
    line = result.stdout.strip()
    assert line.startswith(f"{_parity.MARKER} failed: {NAME} 1.0 has content sha256:")
    assert "on the client" in line and source.content_hash in line
    (image_hash,) = [
        w for w in line.split() if w.startswith("sha256:") and w != source.content_hash
    ]
    assert image_hash != source.content_hash
    # The build turns that line into a ParityError with the same names and hashes.
    error = step_error("the image for /p", "Step 9/12 : RUN python parity.py", [line], "code: 3")
    assert f"{NAME} 1.0 has content {image_hash} in the image, {source.content_hash}" in str(error)


def test_parity_names_both_versions_of_a_pinned_dependency(installed: Path, tmp_path: Path) -> None:
    (source,) = _dists.resolve_packages([NAME])
    target = tmp_path / "image-site"
    _pip_install(source.wheel, target)
    expected = _plan.expected_json([source], {"stepframe-fake": "0.9"})
    result = _parity_check(target, expected, tmp_path)
    assert result.returncode == 3
    assert "stepframe-fake 1.0 in the image, 0.9 on the client" in result.stdout


def test_a_file_missing_from_the_install_is_one_line(installed: Path) -> None:
    (installed / "stepframe_fake" / "__init__.py").unlink()
    with pytest.raises(DockerBuildError) as caught:
        _dists.resolve_packages([NAME])
    message = str(caught.value)
    assert "\n" not in message
    assert "stepframe-fake 1.0" in message and "stepframe_fake/__init__.py" in message
    assert "pip install --force-reinstall stepframe-fake==1.0" in message
