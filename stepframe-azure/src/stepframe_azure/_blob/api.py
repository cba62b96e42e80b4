"""The Blob service REST API, spoken with requests.

Why not azure-storage-blob's clients: the store needs Put Block, Put Block List with
``If-None-Match: *``, ranged Get Blob with ``If-Match`` streamed into the reader's own
buffer, and its own resumption of both.  The SDK reads every downloaded range into one
bytes object after a list of its chunks (twice the range in memory), retries a broken
body by reading the same dead response again with a one-second sleep, and hides the
answers' codes behind exception types; each call here is one request whose answer the
store reads itself.  `bench/azure_blob_transfer.py` compares the two on Azurite.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import requests
import requests.adapters

from stepframe import ConfigError, ConnectorError, StepframeError
from stepframe.support import backoff_delays

if TYPE_CHECKING:
    from stepframe import Credentials
    from stepframe_azure._blob.access import AccountAccess
    from stepframe_azure._blob.uri import BlobLocation

__all__ = ["RETRY_STATUSES", "BlobApi", "error_code"]

# Answers worth another try: the Blob service's throttling (503 ServerBusy, 429) and
# transient server errors.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_ATTEMPTS = 6
# The Storage role that grants every call the store makes.
_ROLE = "Storage Blob Data Contributor"


class BlobApi:
    """Calls to one storage account's Blob service with one identity.

    :param access: the account's endpoint and signer.
    :param connections: pooled connections to keep (the transfers' parallel requests).
    """

    def __init__(self, access: AccountAccess, *, connections: int = 16) -> None:
        self.access = access
        self.session = requests.Session()
        # Proxies and CA bundles come from the environment (HTTPS_PROXY, NO_PROXY,
        # REQUESTS_CA_BUNDLE), as for Azure's own clients; retries are `request`'s.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=connections, max_retries=0
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.timeout = (15.0, 120.0)

    @classmethod
    def for_account(cls, account: str, credentials: Credentials | None) -> BlobApi:
        from stepframe_azure._blob.access import account_access

        return cls(account_access(account, credentials))

    # ---- URLs -------------------------------------------------------------------------

    def blob_url(self, location: BlobLocation) -> str:
        return f"{self.container_url(location)}/{quote(location.name, safe='/~')}"

    def container_url(self, location: BlobLocation) -> str:
        return f"{self.access.endpoint}/{location.container}"

    # ---- calls ------------------------------------------------------------------------

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request, once."""
        return self.session.request(
            method, url, auth=self.access.auth, timeout=self.timeout, **kwargs
        )

    def request(
        self,
        method: str,
        url: str,
        location: BlobLocation,
        doing: str,
        *,
        dropped: list[BaseException] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One idempotent call, retried on throttling, 5xx and dropped connections (a few
        times, with exponential backoff and jitter, as Azure's clients retry).

        :param dropped: collects the errors of tries whose connection broke, which may
            have reached the service.
        """
        waits = backoff_delays(_ATTEMPTS - 1, first=0.5, cap=16.0)
        for attempt in range(_ATTEMPTS):
            try:
                answer = self.send(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as error:
                unreachable(self.access.endpoint, location, doing, error)
                if dropped is not None:
                    dropped.append(error)
                if attempt == _ATTEMPTS - 1:
                    raise StepframeError(
                        f"{doing}: no answer from {self.access.endpoint} after "
                        f"{_ATTEMPTS} tries ({type(error).__name__}); check the network"
                    ) from None
            else:
                if answer.status_code not in RETRY_STATUSES or attempt == _ATTEMPTS - 1:
                    return answer
                answer.close()
            time.sleep(next(waits))
        raise AssertionError("unreachable")

    def fail(self, answer: requests.Response, location: BlobLocation, doing: str) -> NoReturn:
        """Raise the stepframe error an unsuccessful answer means."""
        code = error_code(answer)
        status = answer.status_code
        account = location.account
        if code == "ContainerNotFound":
            raise ConfigError(
                f"{doing}: storage account {account!r} has no container "
                f"{location.container!r}; create it (`az storage container create "
                f"--account-name {account} -n {location.container} --auth-mode login`) or "
                "fix the container in the store's path (az://ACCOUNT/CONTAINER/PREFIX)"
            )
        if code in ("ResourceNotFound", "AccountNotFound") and status == 404:
            raise missing_account(location, doing, f"{self.access.endpoint} does not know it")
        # A HEAD answer has no body: its reason phrase says "Server failed to authenticate
        # the request..." for a bad signature (Azurite then names AuthorizationFailure).
        reason = str(answer.reason or "")
        if status == 401 or code in _NOT_AUTHENTICATED or "failed to authenticate" in reason:
            detail = _detail(answer) or reason.split(". ")[0]
            raise ConnectorError(
                f"{doing}: Blob Storage did not accept {self.access.method} for account "
                f"{account!r} ({status} {code}{': ' + detail if detail else ''}); "
                f"{self.access.renew}"
            )
        if status == 403:
            raise ConnectorError(
                f"{doing}: Blob Storage refused {self.access.method} ({status} {code}). The "
                f"identity needs the role {_ROLE!r} on container {location.container!r} of "
                f"account {account!r} (`az role assignment create --role '{_ROLE}' "
                "--assignee PRINCIPAL --scope .../storageAccounts/"
                f"{account}/blobServices/default/containers/{location.container}`)"
            )
        raise StepframeError(f"{doing}: Blob Storage answered {status} {code}")


# Codes meaning "who you are was not established" (a bad key, token or SAS), as opposed
# to "you may not do this" (a missing role).
_NOT_AUTHENTICATED = frozenset(
    {"AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation"}
)


def _detail(answer: requests.Response) -> str:
    """The first line of the service's explanation, when it gives one."""
    text = answer.text if answer.content else ""
    for tag in ("AuthenticationErrorDetail", "Message"):
        start, end = text.find(f"<{tag}>"), text.find(f"</{tag}>")
        if 0 <= start < end:
            return text[start + len(tag) + 2 : end].strip().splitlines()[0]
    return ""


def error_code(answer: requests.Response) -> str:
    """The service's error code: its header (also on HEAD answers, which have no body),
    else the XML body's <Code>, else the status's reason."""
    header = answer.headers.get("x-ms-error-code")
    if header:
        return str(header)
    text = answer.text if answer.content else ""
    start, end = text.find("<Code>"), text.find("</Code>")
    if 0 <= start < end:
        return text[start + len("<Code>") : end]
    return str(answer.reason or answer.status_code)


def missing_account(location: BlobLocation, doing: str, why: str) -> ConfigError:
    return ConfigError(
        f"{doing}: there is no storage account {location.account!r} ({why}); fix the "
        "account in the store's path (az://ACCOUNT/CONTAINER/PREFIX) or create it (`az "
        f"storage account create -n {location.account} -g RESOURCE_GROUP`)"
    )


def unreachable(endpoint: str, location: BlobLocation, doing: str, error: BaseException) -> None:
    """Raise `missing_account` when ``error`` says the account's host has no address:
    a public account name that does not exist has no DNS name."""
    import socket

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror) or "NameResolutionError" in type(cause).__name__:
            host = endpoint.split("://", 1)[-1].split("/", 1)[0]
            raise missing_account(location, doing, f"{host} does not resolve") from None
        cause = cause.__context__ or cause.__cause__ or _reason(cause)


def _reason(error: BaseException) -> BaseException | None:
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    arguments = getattr(error, "args", ())
    return next((a for a in arguments if isinstance(a, BaseException)), None)
