"""The Cloud Storage JSON API, spoken through google-auth's authorized requests session.

Why not google-cloud-storage: the store needs exactly four things -- a resumable upload
whose memory is one chunk and that never finalizes on an error, ``ifGenerationMatch=0``
on the upload, ranged downloads pinned to one generation, and resumption of both -- and
the JSON API gives each in one request; google-auth (which the connector needs anyway)
refreshes the token on the way.

The endpoint is ``STORAGE_EMULATOR_HOST`` when set (the variable Google's own clients
read for an emulator such as fake-gcs-server), else ``https://storage.googleapis.com``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stepframe import ConfigError, ConnectorError, StepframeError

if TYPE_CHECKING:
    from stepframe import Credentials
    from stepframe_gcp._gcs.uri import GcsLocation

__all__ = ["StorageApi", "storage_endpoint"]

_GOOGLE = "https://storage.googleapis.com"
# Answers worth another try: throttling and the server errors Google documents as
# transient for Cloud Storage.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def storage_endpoint() -> str:
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
    if not host:
        return _GOOGLE
    return host if "://" in host else f"http://{host}"


class StorageApi:
    """Calls to one Cloud Storage endpoint with one identity."""

    def __init__(self, credentials: Credentials | None, *, timeout: float = 60.0) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self.endpoint = storage_endpoint()
        self.timeout = timeout
        self.session = AuthorizedSession(_google_credentials(credentials, self.endpoint))

    # ---- URLs -------------------------------------------------------------------------

    def object_url(self, location: GcsLocation) -> str:
        return f"{self.endpoint}/storage/v1/b/{location.bucket}/o/{quote(location.name, safe='')}"

    def media_url(self, location: GcsLocation) -> str:
        return (
            f"{self.endpoint}/download/storage/v1/b/{location.bucket}/o/"
            f"{quote(location.name, safe='')}"
        )

    def upload_url(self, bucket: str) -> str:
        return f"{self.endpoint}/upload/storage/v1/b/{bucket}/o"

    def list_url(self, bucket: str) -> str:
        return f"{self.endpoint}/storage/v1/b/{bucket}/o"

    # ---- calls ------------------------------------------------------------------------

    def request(
        self, method: str, url: str, *, on_retry: Callable[[], None] | None = None, **kwargs: Any
    ) -> Any:
        """One call, retried on throttling, 5xx and dropped connections (a few times,
        with backoff): for idempotent calls, or ones whose precondition makes a second
        try harmless.

        :param on_retry: called before each retry (a caller that must tell its own first
            try's effect from someone else's).
        """
        import requests

        from stepframe_gcp._retry import backoff_delays

        delays = backoff_delays()
        while True:
            try:
                answer = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                delay = next(delays, None)
                if delay is None:
                    raise
            else:
                delay = next(delays, None) if answer.status_code in RETRY_STATUSES else None
                if delay is None:
                    return answer
            if on_retry is not None:
                on_retry()
            _sleep(delay)

    def metadata(self, location: GcsLocation) -> dict[str, Any] | None:
        """An object's metadata (its ``generation`` and ``size``), or None if absent."""
        answer = self.request("GET", self.object_url(location))
        if answer.status_code == 404:
            if _bucket_missing(answer):
                raise missing_bucket(location.bucket)
            return None
        check(answer, f"reading {location.uri}", location)
        result: dict[str, Any] = answer.json()
        return result


def check(answer: Any, doing: str, location: GcsLocation, *, listing: bool = False) -> None:
    """Raise the stepframe error an unsuccessful answer means.

    :param listing: the call listed objects, so a 404 can only mean a missing bucket.
    """
    if answer.status_code < 400:
        return
    message = _message(answer)
    if answer.status_code in (401, 403):
        permission = _PERMISSIONS.get(doing.split(" ", 1)[0], "storage.objects.get")
        raise ConnectorError(
            f"{doing}: Cloud Storage answered {answer.status_code} ({message}). The "
            f"credentials need {permission} on bucket {location.bucket!r} (role "
            "roles/storage.objectAdmin grants every permission the store uses: `gcloud "
            f"storage buckets add-iam-policy-binding gs://{location.bucket} "
            "--member=serviceAccount:... --role=roles/storage.objectAdmin`)"
        )
    if answer.status_code == 404 and (listing or _bucket_missing(answer)):
        raise missing_bucket(location.bucket)
    raise StepframeError(f"{doing}: Cloud Storage answered {answer.status_code} ({message})")


def missing_bucket(bucket: str) -> ConfigError:
    return ConfigError(
        f"Cloud Storage bucket {bucket!r} does not exist; create it (`gcloud storage "
        f"buckets create gs://{bucket} --location=REGION`) or fix the store's path"
    )


_PERMISSIONS = {
    "reading": "storage.objects.get",
    "writing": "storage.objects.create",
    "listing": "storage.objects.list",
    "checking": "storage.objects.get",
    "opening": "storage.objects.create",
}


def _message(answer: Any) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return answer.reason or str(answer.status_code)


def _bucket_missing(answer: Any) -> bool:
    """Whether a 404 is about the bucket rather than the object."""
    text = _message(answer).lower()
    return "bucket" in text and ("not exist" in text or "not found" in text)


def _google_credentials(credentials: Credentials | None, endpoint: str) -> Any:
    from stepframe_gcp._connector.auth import google_credentials

    if credentials is None and endpoint != _GOOGLE:
        # An emulator asks for no identity, and a test machine has none to give.
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    return google_credentials(credentials)


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
