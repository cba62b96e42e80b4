"""A google-auth credentials object backed by the connector's `Credentials`.

API clients (the Cloud Storage transport, the Vertex AI client) take google-auth
credentials; the core hands plugins stepframe `Credentials`.  This adapter gives the
client the connector's token and, when google-auth finds it near expiry, asks the
connector for a newer one through ``Credentials.refresh``: uploads and polling that last
longer than a token keep working.
"""

from __future__ import annotations

import datetime
from typing import Any

import google.auth.credentials

from stepframe import ConnectorError, Credentials

__all__ = ["GoogleCredentials"]


class GoogleCredentials(google.auth.credentials.Credentials):
    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._stepframe = credentials
        self._take(credentials)

    def _take(self, credentials: Credentials) -> None:
        self._stepframe = credentials
        self.token = credentials.values.get("access_token")
        if credentials.expires_at is None:
            self.expiry = None
        else:
            # google-auth compares a naive UTC datetime with its own clock.
            self.expiry = datetime.datetime.fromtimestamp(
                credentials.expires_at, datetime.timezone.utc
            ).replace(tzinfo=None)

    def refresh(self, request: Any) -> None:
        refresh = self._stepframe.refresh
        if refresh is None:
            raise ConnectorError(
                f"connector {self._stepframe.connector!r}: its token was refused or has "
                "expired and cannot be refreshed (auth_method 'oauth2-token'); store a new "
                "token, or use a method that refreshes ('service-account', 'impersonation')"
            )
        self._take(refresh())
