"""The clients the ``azureml`` operator calls AzureML with (azure-core pipelines).

- ARM (jobs, environment versions): azure-mgmt-machinelearningservices' generated client,
  pointed at the operator's endpoint, naming `config.API_VERSION`.  azure-core's retry
  policy retries 429 (after its Retry-After) and 5xx answers and dropped connections; the
  job create turns it off (``retry_total=0``) and decides itself (jobs.py).
- Run history (the job's log files and error): a plain azure-core pipeline with the same
  token; the log files themselves are SAS URLs, read without the token.

A plain ``http://`` endpoint is accepted for loopback hosts only (the tests' service):
azure-core refuses to send a bearer token without TLS anywhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from stepframe import Credentials
from stepframe_azure._connector.config import MANAGEMENT_SCOPE

__all__ = [
    "RETRY_BACKOFF",
    "RETRY_TOTAL",
    "arm_client",
    "history_client",
    "is_loopback",
    "plain_client",
]

#: Tries after the first for calls other than the create, and azure-core's backoff factor
#: (seconds; 0.8, 1.6, 3.2... unless the answer's Retry-After says otherwise).
RETRY_TOTAL = 5
RETRY_BACKOFF = 0.8
_TIMEOUT = 60


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _policy_kwargs(credentials: Credentials | None, endpoint: str) -> dict[str, Any]:
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy

    from stepframe_azure._connector.auth import token_credential

    class LoopbackBearerPolicy(BearerTokenCredentialPolicy):  # type: ignore[type-arg]
        """Sends the token over plain http too: for a loopback endpoint only."""

        def on_request(self, request: Any) -> None:
            request.context.options["enforce_https"] = False
            super().on_request(request)

    policy_class = LoopbackBearerPolicy if is_loopback(endpoint) else BearerTokenCredentialPolicy
    policy = policy_class(token_credential(credentials), MANAGEMENT_SCOPE)
    return {
        "authentication_policy": policy,
        "retry_total": RETRY_TOTAL,
        # azure-core's defaults are 3 retries of a lost answer and 3 of a bad one (a 5xx, a
        # body cut short): as many as RETRY_TOTAL says, whatever went wrong.
        "retry_read": RETRY_TOTAL,
        "retry_status": RETRY_TOTAL,
        "retry_backoff_factor": RETRY_BACKOFF,
        "connection_timeout": 10,
        "read_timeout": _TIMEOUT,
    }


def arm_client(
    credentials: Credentials | None, subscription_id: str, endpoint: str, api_version: str
) -> Any:
    """The generated management client on ``endpoint``."""
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

    from stepframe_azure._connector.auth import token_credential

    return MachineLearningServicesMgmtClient(
        token_credential(credentials),
        subscription_id,
        base_url=endpoint,
        api_version=api_version,
        **_policy_kwargs(credentials, endpoint),
    )


def history_client(credentials: Credentials | None, endpoint: str) -> Any:
    """An azure-core pipeline client on the run history endpoint."""
    from azure.core import PipelineClient
    from azure.core.configuration import Configuration
    from azure.core.pipeline.policies import (
        HeadersPolicy,
        NetworkTraceLoggingPolicy,
        RetryPolicy,
        UserAgentPolicy,
    )

    kwargs = _policy_kwargs(credentials, endpoint)
    config: Any = Configuration()
    policies = [
        HeadersPolicy(),
        UserAgentPolicy(sdk_moniker="stepframe-azure"),
        RetryPolicy(retry_total=RETRY_TOTAL, retry_backoff_factor=RETRY_BACKOFF),
        kwargs["authentication_policy"],
        NetworkTraceLoggingPolicy(),
    ]
    return PipelineClient(endpoint, config=config, policies=policies)


def plain_client(url: str) -> Any:
    """An azure-core pipeline client without a token (SAS URLs carry their own right)."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import RetryPolicy

    return PipelineClient(
        url, policies=[RetryPolicy(retry_total=RETRY_TOTAL, retry_backoff_factor=RETRY_BACKOFF)]
    )
