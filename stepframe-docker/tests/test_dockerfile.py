"""Dockerfile generation: the layer order that makes a code-only change one thin layer."""

from __future__ import annotations

from stepframe_docker import _dockerfile
from stepframe_docker._dockerfile import DockerfileSpec, render


def _instructions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_layer_order_parent_apt_requirements_stepframe_code() -> None:
    text = render(
        DockerfileSpec(
            parent="python:3.11-slim",
            apt_packages=("libgomp1",),
            has_requirements=True,
            wheels=(
                "stepframe_core-0.1.0-py3-none-any.whl",
                "stepframe_aws-0.1.0-py3-none-any.whl",
            ),
            distributions={"stepframe-core": "sha256:" + "c" * 64},
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
        index("-r /opt/stepframe/requirements/requirements.txt"),
        index("stepframe_core-0.1.0-py3-none-any.whl"),
        index("parity.py"),
        index('MODE="train"'),
        index("/etc/app.conf"),
        index('COPY ["code/", "/app/"]'),
    ]
    assert order == sorted(order), text
    # The code is the last layer with files in it; only metadata follows.
    assert all(line.startswith("ENV ") for line in lines[index('COPY ["code/"') + 1 :])
    assert "stepframe_aws-0.1.0" in lines[index("stepframe_core")]
    # Both installs stay within the client's versions of stepframe's dependencies.
    constraints = "-c /opt/stepframe/requirements/constraints.txt"
    assert constraints in lines[index("requirements.txt")]
    assert constraints in lines[index("stepframe_core")]
    # The content hashes the parity check verified are on the image, for anyone to read.
    label = lines[index("LABEL")]
    assert label.startswith(f"LABEL {_dockerfile.DISTRIBUTIONS_LABEL}=")
    assert "c" * 64 in label and index("parity.py") < index("LABEL")


def test_no_apt_or_requirements_layer_when_there_are_none() -> None:
    text = render(DockerfileSpec(parent="base:1"))
    assert "apt-get" not in text
    assert "-r /opt/stepframe/requirements/requirements.txt" not in text
    assert "WORKDIR /app" in text


def test_the_job_python_is_the_images_virtual_environment() -> None:
    text = render(DockerfileSpec(parent="base:1"))
    assert f'PATH="{_dockerfile.VENV_DIR}/bin:$PATH"' in text
    assert 'STEPFRAME_CODE_ROOT="/app"' in text


def test_environment_values_are_quoted() -> None:
    text = render(DockerfileSpec(parent="b", environment={"A": 'two words "quoted"'}))
    assert 'A="two words \\"quoted\\""' in text
