"""A test service: Google's OAuth2 token endpoint for service-account keys, on 127.0.0.1.

What it is: the JWT-bearer grant (RFC 7523) as ``oauth2.googleapis.com/token`` answers it
for a service-account key.  The client (google-auth, unchanged) signs an assertion with
the key's private key; this service verifies the RS256 signature with the public half of
a key it issued, checks the issuer, audience and expiry, and answers an access token with
``expires_in``, or Google's error body (``invalid_grant``) when any check fails.

Also, for the other methods: the IAM Credentials API's ``generateAccessToken`` (a token
it issued, of a principal that `token_creators` lets act as the target, buys the target's
token; otherwise Google's 403 PERMISSION_DENIED), and the Security Token Service's token
exchange of workload identity federation (``/sts``: a subject token it was told to trust
buys an access token).

What it is not: Google.  It knows no IAM, scopes or quotas; it counts the tokens it
issued, so tests can see when a client asked for a new one.  Tests only; never shipped.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["GOOGLE_AUDIENCE", "TokenService"]

# The audience google-auth puts in every grant assertion, wherever token_uri points.
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenService:
    """Start with `start()`; `new_key()` gives a service-account key JSON it accepts."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.public_keys: dict[str, Any] = {}
        self.issued: list[str] = []
        self.principals: dict[str, str] = {}
        # target service account -> principals allowed to act as it (TokenCreator).
        self.token_creators: dict[str, set[str]] = {}
        self.trusted_subject_tokens: set[str] = set()
        # Called with every token issued (a test hands them to another service).
        self.on_issue: Any = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> TokenService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def new_key(
        self,
        email: str = "trainer@test-project.iam.gserviceaccount.com",
        *,
        registered: bool = True,
    ) -> str:
        """A service-account key JSON whose token_uri is this service."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = uuid.uuid4().hex
        if registered:
            self.public_keys[key_id] = (private.public_key(), email)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "test-project",
                "private_key_id": key_id,
                "private_key": pem,
                "client_email": email,
                "client_id": "1234567890",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": self.token_uri,
            }
        )

    # ---- the grant ------------------------------------------------------------------

    def _grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        refused = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type",
            }
        try:
            header_b64, payload_b64, signature_b64 = form["assertion"][0].split(".")
            header = json.loads(_b64decode(header_b64))
            payload = json.loads(_b64decode(payload_b64))
            public_key, email = self.public_keys[header["kid"]]
            public_key.verify(
                _b64decode(signature_b64),
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (KeyError, ValueError, InvalidSignature):
            return 400, refused
        if payload.get("iss") != email or payload.get("aud") != GOOGLE_AUDIENCE:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid JWT: audience or issuer",
            }
        if payload.get("exp", 0) < time.time():
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid JWT: Token must be a short-lived token",
            }
        token = self._issue(email)
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    def _issue(self, principal: str) -> str:
        token = f"ya29.test-{secrets.token_hex(16)}"
        self.issued.append(token)
        self.principals[token] = principal
        if self.on_issue is not None:
            self.on_issue(token)
        return token

    def _generate_access_token(
        self, target: str, authorization: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        import datetime

        source = self.principals.get(authorization.removeprefix("Bearer "))
        if source is None:
            return 401, {
                "error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials.",
                    "status": "UNAUTHENTICATED",
                }
            }
        if source not in self.token_creators.get(target, set()):
            return 403, {
                "error": {
                    "code": 403,
                    "message": (
                        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource "
                        "(or it may not exist)."
                    ),
                    "status": "PERMISSION_DENIED",
                }
            }
        lifetime = int(str(body.get("lifetime", "3600s")).rstrip("s"))
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=lifetime
        )
        return 200, {
            "accessToken": self._issue(target),
            "expireTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def _exchange(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        subject = form.get("subject_token", [""])[0]
        if subject not in self.trusted_subject_tokens:
            return 400, {
                "error": "invalid_grant",
                "error_description": "The subject token is not valid.",
            }
        token = self._issue(f"principal://{form.get('audience', [''])[0]}")
        return 200, {
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                impersonate = re.match(
                    r"^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$", self.path
                )
                if impersonate:
                    status, body = service._generate_access_token(
                        impersonate.group(1),
                        self.headers.get("Authorization", ""),
                        json.loads(raw or "{}"),
                    )
                elif self.path == "/sts":
                    status, body = service._exchange(parse_qs(raw))
                elif self.path == "/token":
                    status, body = service._grant(parse_qs(raw))
                else:
                    status, body = 404, {"error": "not_found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
