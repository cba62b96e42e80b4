"""``stepframe connector verify`` with a ``gcp`` connector, run as a user runs it.

Real ``python -m stepframe`` processes in a temporary project: the key JSON stored with
``stepframe secret set``, a connector and a ``gcs`` store registered with the CLI, the
loopback token service checking the key's signatures and fake-gcs-server as Cloud Storage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _token_service import TokenService
from _vertex_service import VertexService
from conftest import FakeGcs

from stepframe.testing import StepframeCli

EMAIL = "trainer@test-project.iam.gserviceaccount.com"
REGISTRY = "europe-west4-docker.pkg.dev/test-project/steps"


@pytest.fixture
def cli(tmp_path: Path, gcs: FakeGcs, vertex_service: VertexService) -> StepframeCli:
    # This process's environment carries the conftest's dead proxy and STORAGE_EMULATOR_HOST.
    endpoints = {
        # gcloud's endpoint overrides, which verify honours: the test service.
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM": vertex_service.url,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY": vertex_service.url,
    }
    return StepframeCli(tmp_path / "project", endpoints, plugins="gcp")


def refused(cli: StepframeCli, *args: str) -> str:
    """The one-line error of a command that must fail without a traceback."""
    message = cli.fails(*args)
    assert message.startswith("stepframe: error: "), message
    return message


def register(cli: StepframeCli, key: str, bucket: str) -> None:
    cli.ok("secret", "set", "gcp-key", input=key + "\n")
    cli.ok(
        "connector", "register", "gcp", "--flavor", "gcp",
        "--auth-method", "service-account", "--service-account-key", "gcp-key",
        "--project", "test-project", "--region", "europe-west4",
    )  # fmt: skip
    cli.ok(
        "artifact-store", "register", "gcs", "--flavor", "gcs",
        "--path", f"gs://{bucket}/stepframe", "--connector", "gcp",
    )  # fmt: skip
    cli.ok(
        "container-registry", "register", "ar", "--flavor", "artifact-registry",
        "--uri", REGISTRY, "--connector", "gcp",
    )  # fmt: skip


def test_verify_prints_the_principal_and_checks_the_bucket(
    cli: StepframeCli, gcs: FakeGcs, token_service: TokenService
) -> None:
    key = token_service.new_key(EMAIL)
    register(cli, key, gcs.create_bucket())

    result = cli("connector", "verify", "gcp")

    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    assert f"{EMAIL} (project test-project)" in out
    assert "/stepframe: listable" in out
    assert f"artifact registry {REGISTRY}: no such repository yet" in out
    assert "vertex ai projects/test-project/locations/europe-west4: custom jobs listable" in out
    private = json.loads(key)["private_key"]
    assert private[40:80] not in out + result.stderr
    assert token_service.issued and token_service.issued[0] not in out + result.stderr


def test_a_revoked_key_fails_verify_in_one_line_with_the_fix(
    cli: StepframeCli, gcs: FakeGcs, token_service: TokenService
) -> None:
    register(cli, token_service.new_key(EMAIL, registered=False), gcs.create_bucket())

    message = refused(cli, "connector", "verify", "gcp")

    assert (
        f"connector 'gcp' (service-account, {EMAIL}): Google refused the token request" in message
    )
    assert "gcloud iam service-accounts keys create" in message
    assert message.count("\n") == 1


def test_a_missing_bucket_fails_verify_naming_it(
    cli: StepframeCli, token_service: TokenService
) -> None:
    register(cli, token_service.new_key(EMAIL), "no-such-bucket-here")

    message = refused(cli, "connector", "verify", "gcp")

    assert "bucket 'no-such-bucket-here' does not exist" in message
    assert "gcloud storage buckets create gs://no-such-bucket-here" in message


def test_each_api_that_refuses_the_principal_is_one_line_with_the_permission(
    cli: StepframeCli, gcs: FakeGcs, token_service: TokenService, vertex_service: VertexService
) -> None:
    register(cli, token_service.new_key(EMAIL), gcs.create_bucket())
    token_service.on_issue = vertex_service.denied_tokens.add

    message = refused(cli, "connector", "verify", "gcp")

    lines = message.removeprefix("stepframe: error: ").splitlines()
    who = f"connector 'gcp' (service-account, {EMAIL})"
    assert len(lines) == 2, message
    assert lines[0].startswith(f"{who}: {REGISTRY}: refused (403")
    assert (
        "needs artifactregistry.repositories.get: grant roles/artifactregistry.writer" in lines[0]
    )
    assert lines[1].startswith(f"{who}: projects/test-project/locations/europe-west4: refused")
    assert "needs aiplatform.customJobs.list: grant roles/aiplatform.user" in lines[1]
