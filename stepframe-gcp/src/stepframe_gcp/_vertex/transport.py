"""googleapiclient's HTTP transport, on requests instead of httplib2.

Why: httplib2 sends a request again, whatever its method, when the server closes the
connection before answering ("BadStatusLine on the first try ... retry regardless of the
number of RETRIES set").  For ``customJobs.create`` that is a second job, paid for and
never followed.  requests (with google-auth's AuthorizedSession, which refreshes the
token on a 401) sends each request once; retries are googleapiclient's own
(``execute(num_retries=N)``), asked for on idempotent calls only.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["RequestsHttp", "api_client", "authorized_http"]


class RequestsHttp:
    """The part of ``httplib2.Http`` googleapiclient calls: ``request()`` returning
    ``(response, content)``."""

    def __init__(self, credentials: Any, timeout: float = 60.0) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self.session = AuthorizedSession(credentials)
        self.timeout = timeout

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        redirections: int = 5,
        connection_type: Any = None,
    ) -> tuple[Any, bytes]:
        import httplib2
        import requests

        try:
            answer = self.session.request(
                method, uri, data=body, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as error:
            # The exception types googleapiclient's retry loop knows.
            raise TimeoutError(str(error)) from None
        except requests.ConnectionError as error:
            raise ConnectionError(str(error)) from None
        info = {key.lower(): value for key, value in answer.headers.items()}
        info["status"] = str(answer.status_code)
        response = httplib2.Response(info)
        response.reason = answer.reason
        return response, answer.content

    def close(self) -> None:
        self.session.close()


def api_client(api: str, version: str, endpoint: str) -> Any:
    """google-api-python-client's client of ``api`` at ``endpoint``, built once per process
    from the discovery document the library ships.

    Building one parses the document and walks every resource of it: about 0.2 s for
    ``aiplatform.v1`` (3 MB), which every submit and every poll paid when each call built
    its own.  The client holds no credentials: each request is sent with
    ``execute(http=authorized_http(credentials))``; its own transport refuses to send.
    Threads that ask for the same client at once (parallel steps) wait for one build.
    """
    key = (api, version, endpoint.rstrip("/"))
    with _GUARD:
        lock = _BUILDING.setdefault(key, threading.Lock())
    with lock:
        if key not in _CLIENTS:
            _CLIENTS[key] = _build(*key)
        return _CLIENTS[key]


_CLIENTS: dict[tuple[str, str, str], Any] = {}
_BUILDING: dict[tuple[str, str, str], threading.Lock] = {}
_GUARD = threading.Lock()


def authorized_http(credentials: Any) -> RequestsHttp:
    """The transport of one call: the connector's token (refreshed near expiry), or
    Application Default Credentials when ``credentials`` is None."""
    from stepframe_gcp._connector.auth import google_credentials

    return RequestsHttp(google_credentials(credentials))


def _build(api: str, version: str, endpoint: str) -> Any:
    from googleapiclient.discovery import build, build_from_document

    options = {"api_endpoint": endpoint}
    if (api, version) == ("aiplatform", "v1"):
        from stepframe_gcp._vertex.discovery import document

        # The pre-flight has parsed this document already.
        return build_from_document(document(), http=_NoCredentials(), client_options=options)
    return build(
        api,
        version,
        http=_NoCredentials(),
        client_options=options,
        static_discovery=True,
        cache_discovery=False,
    )


class _NoCredentials:
    """The shared clients' own transport: a call made without ``execute(http=...)`` is a
    bug, never an unauthenticated request."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "stepframe-gcp: a Google API call without credentials; pass "
            "http=authorized_http(credentials) to execute()"
        )
