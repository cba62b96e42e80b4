"""The ``gcp`` connector's methods, in process: the token cache and its refresh on a fake
clock, and every refusal as one line naming the setting and the fix.

The service-account method runs for real: google-auth signs the JWT grant with a key the
loopback token service (_token_service.py) issued, and that service checks the signature.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from _token_service import TokenService
from stepframe_gcp import GcpConnectorConfig
from stepframe_gcp._connector.auth import REFRESH_MARGIN_SECONDS, authenticate

from stepframe import Component, ComponentKind, ConfigError, ConnectorError, ResourceRequest

GENERIC = ResourceRequest("generic")
EMAIL = "trainer@test-project.iam.gserviceaccount.com"


def connector(**config: Any) -> Component:
    return Component(ComponentKind.CONNECTOR, "gcp", "gcp", GcpConnectorConfig(**config))


def key_connector(monkeypatch: pytest.MonkeyPatch, key: str) -> Component:
    monkeypatch.setenv("TEST_SA_KEY", key)
    return connector(auth_method="service-account", service_account_key="env:TEST_SA_KEY")


class FakeClock:
    """UNIX time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_token_is_reused_until_it_nears_expiry_then_refreshed(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    component = key_connector(monkeypatch, token_service.new_key())
    clock = FakeClock()

    first = authenticate(component, GENERIC, clock=clock)
    assert first.expires_at is not None
    clock.now = first.expires_at - REFRESH_MARGIN_SECONDS - 1  # nearly three hours later
    again = authenticate(component, ResourceRequest("object_store", "gs://b/p"), clock=clock)
    assert token_service.issued == [first.values["access_token"]]
    assert again.values["access_token"] == first.values["access_token"]

    clock.now = first.expires_at - REFRESH_MARGIN_SECONDS + 1  # inside the margin
    refreshed = authenticate(component, GENERIC, clock=clock)
    assert len(token_service.issued) == 2
    assert refreshed.values["access_token"] == token_service.issued[1]
    assert refreshed.values["access_token"] != first.values["access_token"]


def test_the_refresh_callable_gets_a_token_that_expires_later(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an upload or a poll loop does when the API refuses a token: ask for a newer one.
    component = key_connector(monkeypatch, token_service.new_key())
    first = authenticate(component, GENERIC)
    assert first.refresh is not None
    newer = first.refresh()
    assert newer.values["access_token"] == token_service.issued[-1] != first.values["access_token"]
    assert newer.expires_at is not None and first.expires_at is not None
    assert newer.expires_at >= first.expires_at
    # The connector's cache holds the newer token now: nobody gets the old one again.
    assert authenticate(component, GENERIC).values == newer.values


def test_the_store_adapter_refreshes_through_the_connector(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.auth.transport.requests
    from stepframe_gcp._connector.auth import google_credentials

    component = key_connector(monkeypatch, token_service.new_key())
    adapted = google_credentials(authenticate(component, GENERIC))
    assert adapted.token == token_service.issued[0]
    adapted.refresh(google.auth.transport.requests.Request())
    assert adapted.token == token_service.issued[1]


def test_a_key_the_token_service_does_not_know_is_refused_with_the_fix(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = token_service.new_key(registered=False)
    with pytest.raises(ConnectorError) as raised:
        authenticate(key_connector(monkeypatch, key), GENERIC)
    message = str(raised.value)
    assert message.startswith(f"connector 'gcp' (service-account, {EMAIL}): Google refused")
    assert "invalid_grant: Invalid JWT Signature." in message
    assert "gcloud iam service-accounts keys create" in message
    assert "\n" not in message
    assert json.loads(key)["private_key"][40:80] not in message


def test_a_key_json_that_is_not_a_service_account_key_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_credentials = json.dumps(
        {
            "type": "authorized_user",
            "client_id": "x",
            "client_secret": "s3cr3t-value",
            "refresh_token": "r",
        }
    )
    with pytest.raises(ConfigError) as raised:
        authenticate(key_connector(monkeypatch, user_credentials), GENERIC)
    message = str(raised.value)
    assert message.startswith(
        "connector 'gcp' service_account_key (env:TEST_SA_KEY) is not a service-account key "
        "JSON (its type is 'authorized_user')"
    )
    assert "gcloud iam service-accounts keys create" in message
    assert "s3cr3t-value" not in message

    with pytest.raises(ConfigError, match="is not a service-account key JSON: create one"):
        authenticate(key_connector(monkeypatch, "not json at all"), GENERIC)


def test_a_missing_secret_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SA_KEY", raising=False)
    component = connector(auth_method="service-account", service_account_key="env:TEST_SA_KEY")
    with pytest.raises(ConfigError, match=r"^connector 'gcp' service_account_key: environment"):
        authenticate(component, GENERIC)


def test_an_oauth2_token_is_handed_out_as_given_and_cannot_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth.transport.requests
    from stepframe_gcp._connector.auth import google_credentials

    monkeypatch.setenv("TEST_TOKEN", "ya29.given-token\n")
    credentials = authenticate(
        connector(auth_method="oauth2-token", token="env:TEST_TOKEN"), GENERIC
    )
    assert credentials.values["access_token"] == "ya29.given-token"
    assert credentials.expires_at is None and credentials.refresh is None
    # When an API refuses it (expired), the client asks to refresh: one line with the fix.
    with pytest.raises(
        ConnectorError,
        match="cannot be refreshed \\(auth_method 'oauth2-token'\\); store a new token",
    ):
        google_credentials(credentials).refresh(google.auth.transport.requests.Request())


def test_implicit_without_application_default_credentials_says_how_to_get_them() -> None:
    with pytest.raises(ConnectorError) as raised:
        authenticate(connector(), GENERIC)
    assert "gcloud auth application-default login" in str(raised.value)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"project": "My Project"}, "'My Project' is not a Google Cloud project id"),
        ({"project": "proj"}, "'proj' is not a Google Cloud project id"),
        ({"region": "europe west"}, "'europe west' is not a Google Cloud region"),
        (
            {"auth_method": "service-account"},
            "auth_method 'service-account' needs service_account_key",
        ),
        ({"auth_method": "oauth2-token"}, "auth_method 'oauth2-token' needs token: store it"),
        ({"auth_method": "impersonation"}, "needs target_service_account"),
        (
            {"token": "t"},
            "auth_method 'implicit' does not use token; "
            "token belongs to auth_method 'oauth2-token'",
        ),
        (
            {"auth_method": "impersonation", "target_service_account": "me@example.com"},
            "'me@example.com' is not a service account email",
        ),
        ({"delegates": [EMAIL]}, "delegates apply to auth_method 'impersonation' only"),
        (
            {
                "auth_method": "impersonation",
                "target_service_account": EMAIL,
                "lifetime_seconds": 50000,
            },
            "must be between 1 and 43200 seconds",
        ),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError) as raised:
        GcpConnectorConfig(**config)
    assert expected in str(raised.value)


# ---- impersonation and workload identity federation -------------------------------------

TARGET = "runner@test-project.iam.gserviceaccount.com"


def impersonating(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch, *, allowed: bool
) -> Component:
    monkeypatch.setenv("TEST_SA_KEY", token_service.new_key(EMAIL))
    if allowed:
        token_service.token_creators[TARGET] = {EMAIL}
    return connector(
        auth_method="impersonation",
        service_account_key="env:TEST_SA_KEY",
        target_service_account=TARGET,
        lifetime_seconds=900,
        iam_credentials_endpoint=token_service.url,
    )


def test_impersonation_hands_out_the_target_accounts_token_and_refreshes_it(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    component = impersonating(token_service, monkeypatch, allowed=True)
    clock = FakeClock()

    first = authenticate(component, GENERIC, clock=clock)

    assert token_service.principals[first.values["access_token"]] == TARGET
    assert first.expires_at is not None and first.expires_at - time.time() <= 900
    clock.now = first.expires_at - REFRESH_MARGIN_SECONDS + 1
    second = authenticate(component, GENERIC, clock=clock)
    assert second.values["access_token"] != first.values["access_token"]
    assert token_service.principals[second.values["access_token"]] == TARGET


def test_a_service_account_the_connector_may_not_act_as_is_named_with_the_fix(
    token_service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConnectorError) as raised:
        authenticate(impersonating(token_service, monkeypatch, allowed=False), GENERIC)

    message = str(raised.value)
    assert message.startswith(f"connector 'gcp' (impersonation, {TARGET}): Google refused")
    assert "PERMISSION_DENIED" in message and "iam.serviceAccounts.getAccessToken" in message
    assert f"roles/iam.serviceAccountTokenCreator on {TARGET}" in message
    assert "\n" not in message


def federation_config(token_service: TokenService, tmp_path: Any) -> str:
    subject = tmp_path / "subject-token"
    subject.write_text("oidc-subject-token-from-ci")
    config = tmp_path / "federation.json"
    config.write_text(
        json.dumps(
            {
                "type": "external_account",
                "audience": "//iam.googleapis.com/projects/123/locations/global/"
                "workloadIdentityPools/ci/providers/github",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": f"{token_service.url}/sts",
                "credential_source": {"file": str(subject)},
            }
        )
    )
    return str(config)


def test_workload_identity_federation_exchanges_the_subject_token(
    token_service: TokenService, tmp_path: Any
) -> None:
    token_service.trusted_subject_tokens.add("oidc-subject-token-from-ci")
    component = connector(
        auth_method="external-account", credential_config=federation_config(token_service, tmp_path)
    )

    credentials = authenticate(component, GENERIC)

    assert credentials.values["access_token"] == token_service.issued[0]
    assert credentials.expires_at is not None and credentials.refresh is not None


def test_an_untrusted_subject_token_is_refused_in_one_line(
    token_service: TokenService, tmp_path: Any
) -> None:
    component = connector(
        auth_method="external-account", credential_config=federation_config(token_service, tmp_path)
    )
    with pytest.raises(
        ConnectorError, match=r"^connector 'gcp' \(external-account, .*invalid_grant"
    ):
        authenticate(component, GENERIC)


def test_a_credential_config_that_is_not_a_federation_config_is_named(tmp_path: Any) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"type": "service_account"}))
    with pytest.raises(ConfigError, match="is not a workload identity federation configuration"):
        authenticate(
            connector(auth_method="external-account", credential_config=str(path)), GENERIC
        )


def test_a_call_without_credentials_or_adc_is_one_line_with_the_fix() -> None:
    from stepframe_gcp._connector.auth import google_credentials

    with pytest.raises(ConnectorError, match=r"^no Google credentials: .*--connector NAME"):
        google_credentials(None)
