"""``stepframe connector register`` and ``verify`` with an ``azure`` connector, run as a
user runs them.

Real ``python -m stepframe`` processes in a temporary project: the client secret stored
with ``stepframe secret set``, the connector, an ``azure-blob`` store and an ``acr``
registry registered with the CLI; Entra ID, Resource Manager, Blob Storage and the
registry are the loopback service (_token_service.py), which the processes reach by
Azure's names through its proxy and trust through its CA (``REQUESTS_CA_BUNDLE``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _token_service import Application, AzureService

from stepframe.testing import StepframeCli

SECRET = "cli-client-secret-0123456789"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
WORKSPACE_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/ml-rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/train-ws"
)


@pytest.fixture
def cli(tmp_path: Path, azure: AzureService) -> StepframeCli:
    # The conftest's environment, then the service's proxy and CA.
    return StepframeCli(tmp_path / "project", azure.environment, plugins="azure")


def register(
    cli: StepframeCli,
    azure: AzureService,
    app: Application,
    secret: str = SECRET,
    workspace: str = "train-ws",
) -> None:
    azure.workspaces.add(WORKSPACE_ID)
    azure.containers.add("trainstore/artifacts")
    azure.registries.add("trainregistry")
    cli.ok("secret", "set", "az-sp", input=secret + "\n")
    cli.ok(
        "connector", "register", "az", "--flavor", "azure",
        "--auth-method", "service-principal", "--tenant-id", app.tenant,
        "--client-id", app.client_id, "--client-secret", "az-sp",
        "--subscription-id", SUBSCRIPTION, "--resource-group", "ml-rg",
        "--workspace", workspace,
    )  # fmt: skip
    cli.ok(
        "artifact-store", "register", "blob", "--flavor", "azure-blob",
        "--path", "az://trainstore/artifacts/stepframe", "--connector", "az",
    )  # fmt: skip
    cli.ok(
        "container-registry", "register", "acr", "--flavor", "acr",
        "--uri", "trainregistry.azurecr.io/steps", "--connector", "az",
    )  # fmt: skip


@pytest.fixture
def app(azure: AzureService) -> Application:
    return azure.new_application(azure.new_tenant(), secret=SECRET)


def grant_everything(azure: AzureService, app: Application) -> None:
    azure.assign(app.object_id, "AzureML Data Scientist", WORKSPACE_ID)
    azure.assign(app.object_id, "Storage Blob Data Contributor", "trainstore/artifacts")
    azure.assign(app.object_id, "AcrPush", "trainregistry")


def test_verify_prints_who_and_checks_container_registry_and_workspace(
    cli: StepframeCli, azure: AzureService, app: Application
) -> None:
    register(cli, azure, app)
    grant_everything(azure, app)

    result = cli("connector", "verify", "az")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"service principal {app.client_id} (object id {app.object_id})" in out
    assert f"in tenant {app.tenant} (subscription {SUBSCRIPTION})" in out
    assert "blob container az://trainstore/artifacts/stepframe: listable" in out
    assert "container registry trainregistry.azurecr.io/steps: login works, push allowed" in out
    assert "azureml workspace train-ws: readable, jobs may be submitted" in out
    assert SECRET not in out + result.stderr


def test_each_missing_role_is_one_line_naming_principal_role_and_fix(
    cli: StepframeCli, azure: AzureService, app: Application
) -> None:
    register(cli, azure, app)
    # Read access only: Reader on the workspace, AcrPull on the registry, no data role.
    azure.assign(app.object_id, "Reader", WORKSPACE_ID)
    azure.assign(app.object_id, "AcrPull", "trainregistry")

    message = cli.fails("connector", "verify", "az")

    lines = message.removeprefix("stepframe: error: ").strip().splitlines()
    who = f"connector 'az' (service-principal, service principal {app.client_id}"
    assert len(lines) == 3, message
    assert all(line.startswith(who) for line in lines), message
    storage, registry, workspace = lines
    assert "AuthorizationPermissionMismatch" in storage
    assert "Storage Blob Data Contributor" in storage
    assert "az role assignment create" in storage
    assert "may not push images (granted pull only); grant AcrPush" in registry
    assert f"--assignee {app.object_id} --role AcrPush" in registry
    assert "may read it but not submit jobs" in workspace
    assert '--role "AzureML Data Scientist"' in workspace
    assert SECRET not in message


def test_a_secret_that_is_not_the_principals_fails_verify_in_one_line(
    cli: StepframeCli, azure: AzureService, app: Application
) -> None:
    wrong = "someone-elses-secret-000000"
    register(cli, azure, app, secret=wrong)

    message = cli.fails("connector", "verify", "az")

    assert message.strip().count("\n") == 0, message
    assert "AADSTS7000215" in message
    assert f"az ad app credential reset --id {app.client_id}" in message
    assert "stepframe secret set az-sp" in message
    assert wrong not in message and SECRET not in message


def test_an_expired_access_token_is_one_line_saying_how_to_renew_it(
    cli: StepframeCli, azure: AzureService
) -> None:
    token = azure.token_for("object-1", "https://management.azure.com", -90, upn="ada@contoso.com")
    cli.env["AZ_TOKEN"] = token
    cli.ok(
        "connector", "register", "az", "--flavor", "azure",
        "--auth-method", "access-token", "--token", "env:AZ_TOKEN",
    )  # fmt: skip

    message = cli.fails("connector", "verify", "az")

    assert message.strip().count("\n") == 0, message
    assert "connector 'az' (access-token, user ada@contoso.com" in message
    assert "the token expired" in message
    assert (
        '`export AZ_TOKEN="$(az account get-access-token --scope '
        'https://management.azure.com/.default --query accessToken -o tsv)"`' in message
    )
    assert "stepframe secret set" not in message
    assert token not in message


def test_a_missing_workspace_names_the_settings_to_check(
    cli: StepframeCli, azure: AzureService, app: Application
) -> None:
    register(cli, azure, app, workspace="no-such-ws")
    grant_everything(azure, app)

    message = cli.fails("connector", "verify", "az")

    assert "workspace no-such-ws: not found in resource group ml-rg" in message
    assert "--subscription-id, --resource-group and --workspace" in message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--subscription-id", "my-subscription"],
            "subscription_id 'my-subscription' is not a subscription id",
        ),
        (["--resource-group", "ml rg."], "resource_group 'ml rg.' is not a resource group name"),
        (
            ["--subscription-id", SUBSCRIPTION, "--resource-group", "rg", "--workspace", "w"],
            "workspace 'w' is not an Azure Machine Learning workspace name",
        ),
        (["--workspace", "train-ws"], "workspace 'train-ws' needs subscription_id too"),
        (["--auth-method", "password"], "auth_method 'password' is not an azure connector method"),
        (
            ["--auth-method", "service-principal", "--client-id", SUBSCRIPTION],
            "auth_method 'service-principal' needs tenant_id: set --tenant-id",
        ),
        (
            ["--auth-method", "service-principal", "--tenant-id", "contoso.onmicrosoft.com",
             "--client-id", SUBSCRIPTION],
            "needs client_secret: set --client-secret to a secret name",
        ),
        (["--client-secret", "az-sp"], "auth_method 'implicit' does not use client_secret"),
        (["--tenant-id", "not a tenant"], "tenant_id 'not a tenant' is not a tenant"),
        (
            ["--auth-method", "access-token", "--token", "never-stored"],
            "token: names no stored secret; create one with `stepframe secret set NAME`",
        ),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_at_register_in_one_line(
    cli: StepframeCli, options: list[str], expected: str
) -> None:
    message = cli.fails("connector", "register", "az", "--flavor", "azure", *options)

    assert expected in message, message
    assert len([line for line in message.splitlines() if line.strip()]) <= 2, message
    # Nothing was registered.
    assert "az" not in cli.ok("connector", "list")


def test_a_registry_uri_that_is_not_acr_is_refused_at_register(cli: StepframeCli) -> None:
    message = cli.fails(
        "container-registry", "register", "acr", "--flavor", "acr", "--uri", "ghcr.io/org"
    )

    assert "uri 'ghcr.io/org' is not an Azure Container Registry" in message
    assert "NAME.azurecr.io" in message
