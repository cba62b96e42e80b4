"""Dockerfile generation: the layer order that makes a code-only change one thin layer."""

from __future__ import annotations

import subprocess
import sys

from stepframe_docker import _dockerfile
from stepframe_docker._dockerfile import DockerfileSpec, parity_script, render


def _instructions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_layer_order_parent_apt_requirements_stepframe_code() -> None:
    text = render(
        DockerfileSpec(
            parent="python:3.11-slim",
            apt_packages=("libgomp1",),
            has_requirements=True,
            wheels=("stepframe_core-0.1.0-py3-none-any.whl",),
            pinned=("stepframe-aws==0.1.0",),
            environment={"MODE": "train"},
            build_args=("PIP_INDEX_URL",),
            extra_files=(("extra/0", "/etc/app.conf"),),
        )
    )
    lines = _instructions(text)
    assert lines[0] == "FROM python:3.11-slim"
    assert lines[1] == "ARG PIP_INDEX_URL"

    def index(fragment: str) -> int:
        return next(i for i, line in enumerate(lines) if fragment in line)

    order = [
        index("apt-get install"),
        index("-m venv"),
        index("pip install -r /opt/stepframe/requirements.txt"),
        index("stepframe_core-0.1.0-py3-none-any.whl"),
        index("parity.py"),
        index('MODE="train"'),
        index("/etc/app.conf"),
        index('COPY ["code/", "/app/"]'),
    ]
    assert order == sorted(order), text
    # The code is the last layer with files in it; only metadata follows.
    assert all(line.startswith("ENV ") for line in lines[index('COPY ["code/"') + 1 :])
    assert "stepframe-aws==0.1.0" in lines[index("stepframe_core")]


def test_no_apt_or_requirements_layer_when_there_are_none() -> None:
    text = render(DockerfileSpec(parent="base:1"))
    assert "apt-get" not in text
    assert "requirements.txt" not in text
    assert "WORKDIR /app" in text


def test_the_job_python_is_the_images_virtual_environment() -> None:
    text = render(DockerfileSpec(parent="base:1"))
    assert f'PATH="{_dockerfile.VENV_DIR}/bin:$PATH"' in text
    assert 'STEPFRAME_CODE_ROOT="/app"' in text


def test_environment_values_are_quoted() -> None:
    text = render(DockerfileSpec(parent="b", environment={"A": 'two words "quoted"'}))
    assert 'A="two words \\"quoted\\""' in text


def _run_parity(python: str, versions: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", parity_script(python, versions)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_parity_script_passes_on_a_match() -> None:
    from importlib.metadata import version

    python = "{}.{}".format(*sys.version_info[:2])
    result = _run_parity(python, {"stepframe-core": version("stepframe-core")})
    assert result.returncode == 0, result.stdout
    assert "parity check: Python" in result.stdout


def test_parity_script_names_what_differs() -> None:
    result = _run_parity("2.7", {"stepframe-core": "9.9.9", "no-such-dist": "1.0"})
    assert result.returncode == 3
    out = result.stdout
    assert "Python 3." in out and "2.7 on the client" in out
    assert "stepframe-core" in out and "9.9.9 on the client" in out
    assert "no-such-dist not installed in the image" in out
