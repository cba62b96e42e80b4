"""googleapiclient's HTTP transport, on requests instead of httplib2.

Why: httplib2 sends a request again, whatever its method, when the server closes the
connection before answering ("BadStatusLine on the first try ... retry regardless of the
number of RETRIES set").  For ``customJobs.create`` that is a second job, paid for and
never followed.  requests (with google-auth's AuthorizedSession, which refreshes the
token on a 401) sends each request once; retries are googleapiclient's own
(``execute(num_retries=N)``), asked for on idempotent calls only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RequestsHttp"]


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
