"""``stepframe connector verify`` with a ``gcp`` connector, run as a user runs it.

Real ``python -m stepframe`` processes in a temporary project: the key JSON stored with
``stepframe secret set``, a connector and a ``gcs`` store registered with the CLI, the
loopback token service checking the key's signatures and fake-gcs-server as Cloud Storage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _token_service import TokenService
from _vertex_service import VertexService
from conftest import FakeGcs

Cli = Callable[..., subprocess.CompletedProcess[str]]
EMAIL = "trainer@test-project.iam.gserviceaccount.com"
REGISTRY = "europe-west4-docker.pkg.dev/test-project/steps"


@pytest.fixture
def cli(tmp_path: Path, gcs: FakeGcs, vertex_service: VertexService) -> Cli:
    project = tmp_path / "project"
    project.mkdir()
    env = {
        **os.environ,  # the conftest's dead proxy and STORAGE_EMULATOR_HOST
        "STEPFRAME_SECRETS_FILE": str(tmp_path / "secrets.json"),
        "STEPFRAME_LOAD_PLUGINS": "gcp",
        "PYTHONUNBUFFERED": "1",
        # gcloud's endpoint overrides, which verify honours: the test service.
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM": vertex_service.url,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY": vertex_service.url,
    }
    env.pop("COLUMNS", None)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            cwd=project,
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("stepframe: error: "), result.stderr
    return result.stderr


def register(cli: Cli, key: str, bucket: str) -> None:
    ok(cli("secret", "set", "gcp-key", input=key + "\n"))
    ok(
        cli(
            "connector", "register", "gcp", "--flavor", "gcp",
            "--auth-method", "service-account", "--service-account-key", "gcp-key",
            "--project", "test-project", "--region", "europe-west4",
        )
    )  # fmt: skip
    ok(
        cli(
            "artifact-store", "register", "gcs", "--flavor", "gcs",
            "--path", f"gs://{bucket}/stepframe", "--connector", "gcp",
        )
    )  # fmt: skip
    ok(
        cli(
            "container-registry", "register", "ar", "--flavor", "artifact-registry",
            "--uri", REGISTRY, "--connector", "gcp",
        )
    )  # fmt: skip


def test_verify_prints_the_principal_and_checks_the_bucket(
    cli: Cli, gcs: FakeGcs, token_service: TokenService
) -> None:
    key = token_service.new_key(EMAIL)
    register(cli, key, gcs.create_bucket())

    result = cli("connector", "verify", "gcp")

    out = ok(result)
    assert f"{EMAIL} (project test-project)" in out
    assert "/stepframe: listable" in out
    assert f"artifact registry {REGISTRY}: no such repository yet" in out
    assert "vertex ai projects/test-project/locations/europe-west4: custom jobs listable" in out
    private = json.loads(key)["private_key"]
    assert private[40:80] not in out + result.stderr
    assert token_service.issued and token_service.issued[0] not in out + result.stderr


def test_a_revoked_key_fails_verify_in_one_line_with_the_fix(
    cli: Cli, gcs: FakeGcs, token_service: TokenService
) -> None:
    register(cli, token_service.new_key(EMAIL, registered=False), gcs.create_bucket())

    message = failed(cli("connector", "verify", "gcp"))

    assert (
        f"connector 'gcp' (service-account, {EMAIL}): Google refused the token request" in message
    )
    assert "gcloud iam service-accounts keys create" in message
    assert message.count("\n") == 1


def test_a_missing_bucket_fails_verify_naming_it(cli: Cli, token_service: TokenService) -> None:
    register(cli, token_service.new_key(EMAIL), "no-such-bucket-here")

    message = failed(cli("connector", "verify", "gcp"))

    assert "bucket 'no-such-bucket-here' does not exist" in message
    assert "gcloud storage buckets create gs://no-such-bucket-here" in message


def test_each_api_that_refuses_the_principal_is_one_line_with_the_permission(
    cli: Cli, gcs: FakeGcs, token_service: TokenService, vertex_service: VertexService
) -> None:
    register(cli, token_service.new_key(EMAIL), gcs.create_bucket())
    token_service.on_issue = vertex_service.denied_tokens.add

    message = failed(cli("connector", "verify", "gcp"))

    lines = message.removeprefix("stepframe: error: ").splitlines()
    who = f"connector 'gcp' (service-account, {EMAIL})"
    assert len(lines) == 2, message
    assert lines[0].startswith(f"{who}: {REGISTRY}: refused (403")
    assert (
        "needs artifactregistry.repositories.get: grant roles/artifactregistry.writer" in lines[0]
    )
    assert lines[1].startswith(f"{who}: projects/test-project/locations/europe-west4: refused")
    assert "needs aiplatform.customJobs.list: grant roles/aiplatform.user" in lines[1]
