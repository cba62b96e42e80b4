"""A test service: the Azure endpoints the ``azure`` connector talks to, on 127.0.0.1.

What it is: one HTTPS server (a certificate for Azure's host names, signed by a CA made
for the test session) and an HTTP CONNECT proxy in front of it.  Clients run unchanged:
with ``HTTPS_PROXY`` at the proxy and ``REQUESTS_CA_BUNDLE`` at the test CA, azure-identity,
msal and requests reach ``https://login.microsoftonline.com`` and the rest by their real
names, with TLS verified, and land here.  Hosts it does not serve are refused at CONNECT,
as a dead route would be.  It answers:

- Entra ID (``login.microsoftonline.com``): a tenant's OpenID configuration (unknown
  tenants get Entra's 400 ``invalid_tenant`` / AADSTS90002) and the client-credentials
  grant of the v2.0 token endpoint, with a client secret or a certificate assertion (its
  RS256 signature checked against the registered certificate's public key); refusals
  are Entra's bodies (AADSTS7000215 wrong secret, AADSTS700016 unknown application,
  AADSTS700027 unregistered certificate).  Tokens are JWTs with ``aud``, ``tid``, ``oid``,
  ``appid`` and ``exp`` claims, signed with the service's own key.
- Managed identity, App Service style (plain http on ``managed_identity_url``, the
  ``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER`` protocol).
- Azure Container Registry (``NAME.azurecr.io``): ``/oauth2/exchange`` (an Entra token it
  issued, for Resource Manager, buys a refresh token) and ``/oauth2/token`` (a refresh
  token buys a repository token whose ``access`` claim lists what the principal's roles
  allow).
- Azure Resource Manager (``management.azure.com``): ``GET`` of a workspace and
  ``Microsoft.Authorization/permissions`` at its scope, from the roles tests assign.
- Blob Storage (``ACCOUNT.blob.core.windows.net``): listing a container, allowed to the
  principals with a data role on it.

What it is not: Azure.  Roles are the few the tests assign, with the actions of the
built-in roles they name; it keeps no other state, and counts the tokens it issued so
tests can see when a client asked for a new one.  Tests only; never shipped.
"""

from __future__ import annotations

import datetime
import json
import select
import socket
import socketserver
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

__all__ = ["ROLE_ACTIONS", "Application", "AzureService", "new_certificate"]

ENTRA = "login.microsoftonline.com"
MANAGEMENT = "management.azure.com"
_HOSTS = (ENTRA, MANAGEMENT, "*.azurecr.io", "*.blob.core.windows.net")

# The actions (and data actions) of the built-in roles the tests assign, as Azure lists them.
ROLE_ACTIONS: dict[str, tuple[list[str], list[str]]] = {
    "Reader": (["*/read"], []),
    "AzureML Data Scientist": (
        ["Microsoft.MachineLearningServices/workspaces/*/read",
         "Microsoft.MachineLearningServices/workspaces/*/action",
         "Microsoft.MachineLearningServices/workspaces/*/delete",
         "Microsoft.MachineLearningServices/workspaces/*/write"],
        [],
    ),
    "Storage Blob Data Reader": (
        [], ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]
    ),
    "Storage Blob Data Contributor": (
        [], ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"]
    ),
}  # fmt: skip
_ACR_ACTIONS = {"AcrPull": {"pull"}, "AcrPush": {"pull", "push"}}


class Application:
    """A registered service principal: its ids and how it proves itself."""

    def __init__(
        self, tenant: str, client_id: str, secret: str | None, certificate: Any = None
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.object_id = str(uuid.uuid4())
        self.secret = secret
        self.certificate = certificate


class AzureService:
    """Start with `start()`; register applications, assign roles, read `issued`."""

    def __init__(self, folder: Path, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.signing_key = uuid.uuid4().hex
        self.tenants: set[str] = set()
        self.applications: dict[str, Application] = {}
        # (principal object id, scope) -> role names; scopes are ARM ids or registry names.
        self.roles: dict[tuple[str, str], set[str]] = {}
        self.workspaces: set[str] = set()
        self.containers: set[str] = set()  # "account/container"
        self.registries: set[str] = set()
        self.managed_identities: dict[str, str] = {}  # client id ("" = system) -> oid
        self.identity_header = uuid.uuid4().hex
        # Every access token issued: (principal object id, audience).
        self.issued: list[tuple[str, str]] = []
        self.requests: list[str] = []
        self.ca_bundle = folder / "ca.pem"
        context = _tls_context(folder, self.ca_bundle)
        self._tls = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._tls.socket = context.wrap_socket(self._tls.socket, server_side=True)
        self._plain = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._proxy = _ConnectProxy(("127.0.0.1", 0), self._tls.server_port)
        self.proxy_url = f"http://127.0.0.1:{self._proxy.server_address[1]}"
        self.managed_identity_url = f"http://127.0.0.1:{self._plain.server_port}/msi/token"
        self._threads = [
            threading.Thread(target=server.serve_forever, daemon=True)
            for server in (self._tls, self._plain, self._proxy)
        ]

    def start(self) -> AzureService:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._tls, self._plain, self._proxy):
            server.shutdown()
            server.server_close()

    @property
    def environment(self) -> dict[str, str]:
        """What a client process needs to reach this service under Azure's names."""
        return {
            "HTTPS_PROXY": self.proxy_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    # ---- what tests set up ---------------------------------------------------------------

    def new_tenant(self) -> str:
        tenant = str(uuid.uuid4())
        self.tenants.add(tenant)
        return tenant

    def new_application(
        self, tenant: str, *, secret: str | None = None, certificate: Any = None
    ) -> Application:
        app = Application(tenant, str(uuid.uuid4()), secret, certificate)
        self.applications[app.client_id] = app
        return app

    def new_managed_identity(self, client_id: str = "") -> str:
        object_id = str(uuid.uuid4())
        self.managed_identities[client_id] = object_id
        return object_id

    def assign(self, object_id: str, role: str, scope: str) -> None:
        self.roles.setdefault((object_id, scope), set()).add(role)

    def token_for(self, object_id: str, audience: str, lifetime: int, **claims: Any) -> str:
        """An access token as Entra would issue it (tests store one for access-token)."""
        now = int(time.time())
        body = {"aud": audience, "oid": object_id, "iat": now, "nbf": now, "exp": now + lifetime}
        body["uti"] = uuid.uuid4().hex  # Entra's unique token id: no two tokens alike
        return jwt.encode({**body, **claims}, self.signing_key, algorithm="HS256")

    # ---- the service ---------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def _route(self, method: str) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                service.requests.append(f"{method} {host}{url.path}")
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if url.path == "/msi/token":
                    status, answer = service._managed_identity(query, self.headers)
                elif host == ENTRA:
                    status, answer = service._entra(method, url.path, form)
                elif host.endswith(".azurecr.io"):
                    status, answer = service._registry(host, url.path, form)
                elif host == MANAGEMENT:
                    status, answer = service._management(url.path, self.headers)
                elif host.endswith(".blob.core.windows.net"):
                    status, answer = service._blob(host, url.path, query, self.headers)
                else:
                    status, answer = 404, {"error": f"no such host {host}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                if isinstance(answer, dict) and host.endswith(".blob.core.windows.net"):
                    # Blob Storage names its error in a header (HEAD answers have no body).
                    self.send_header("x-ms-error-code", str(answer.get("code", "")))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _issue(self, object_id: str, audience: str, **claims: Any) -> dict[str, Any]:
        self.issued.append((object_id, audience))
        token = self.token_for(object_id, audience, self.expires_in, **claims)
        return {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}

    def _entra(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        tenant, _, rest = path.strip("/").partition("/")
        if path == "/common/discovery/instance":
            # msal asks this after a refused request (which aliases share the account).
            return 200, {
                "tenant_discovery_endpoint": f"https://{ENTRA}/common/v2.0/.well-known/"
                "openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": ENTRA,
                        "preferred_cache": "login.windows.net",
                        "aliases": [ENTRA, "login.windows.net", "login.microsoft.com"],
                    }
                ],
            }
        if tenant not in self.tenants:
            return 400, _aad_error(
                "invalid_tenant",
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud.",
            )
        base = f"https://{ENTRA}/{tenant}"
        if rest == "v2.0/.well-known/openid-configuration":
            return 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
            }
        if method != "POST" or rest != "oauth2/v2.0/token":
            return 404, {"error": "not_found"}
        app = self.applications.get(form.get("client_id", ""))
        if app is None or app.tenant != tenant:
            return 400, _aad_error(
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                f"found in the directory '{tenant}'.",
            )
        if "client_assertion" in form:
            if not _assertion_signed_by(form["client_assertion"], app.certificate):
                return 401, _aad_error(
                    "invalid_client",
                    "AADSTS700027: The certificate with identifier used to sign the client "
                    "assertion is not registered on application.",
                )
        elif app.secret is None or form.get("client_secret") != app.secret:
            return 401, _aad_error(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID, for a "
                f"secret added to app '{app.client_id}'.",
            )
        audience = form.get("scope", "").split(" ")[0].removesuffix("/.default")
        return 200, self._issue(app.object_id, audience, tid=tenant, appid=app.client_id)

    def _managed_identity(self, query: dict[str, str], headers: Any) -> tuple[int, Any]:
        if headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return 401, {"error": "invalid identity header"}
        object_id = self.managed_identities.get(query.get("client_id", ""))
        if object_id is None:
            return 400, {"error": "invalid_request", "error_description": "Identity not found"}
        resource = query.get("resource", "").removesuffix("/.default")
        mirid = f"/subscriptions/x/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-{object_id[:8]}"  # noqa: E501
        answer = self._issue(object_id, resource, xms_mirid=mirid)
        return 200, {
            "access_token": answer["access_token"],
            "expires_on": str(int(time.time()) + self.expires_in),
            "resource": resource,
            "token_type": "Bearer",
        }

    def _claims(self, token: str, audience: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.signing_key, algorithms=["HS256"], audience=audience
            )
        except jwt.PyJWTError:
            return None
        return claims

    def _registry(self, host: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        name = host.split(".")[0]
        if name not in self.registries:
            return 404, {"errors": [{"code": "NAME_UNKNOWN", "message": "registry not found"}]}
        if path == "/oauth2/exchange":
            claims = self._claims(form.get("access_token", ""), f"https://{MANAGEMENT}")
            if form.get("grant_type") != "access_token" or form.get("service") != host:
                return 400, {"errors": [{"code": "UNSUPPORTED", "message": "bad exchange"}]}
            if claims is None:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid token"}]}
            refresh = jwt.encode(
                {"oid": claims["oid"], "aud": host, "exp": int(time.time()) + 3 * 3600},
                self.signing_key,
                algorithm="HS256",
            )
            return 200, {"refresh_token": refresh}
        if path == "/oauth2/token":
            claims = self._claims(form.get("refresh_token", ""), host)
            if claims is None:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid token"}]}
            _, repository, _ = form.get("scope", "::").split(":")
            granted: set[str] = set()
            for role in self.roles.get((claims["oid"], name), set()):
                granted |= _ACR_ACTIONS.get(role, set())
            access = [{"type": "repository", "name": repository, "actions": sorted(granted)}]
            token = jwt.encode({"access": access}, self.signing_key, algorithm="HS256")
            return 200, {"access_token": token}
        return 404, {"errors": [{"code": "NOT_FOUND", "message": path}]}

    def _caller(self, headers: Any, audience: str) -> dict[str, Any] | None:
        auth = headers.get("Authorization") or ""
        return self._claims(auth.removeprefix("Bearer "), audience)

    def _granted(self, object_id: str, scope: str) -> tuple[list[str], list[str]]:
        actions: list[str] = []
        data: list[str] = []
        for (oid, where), roles in self.roles.items():
            if oid == object_id and scope.lower().startswith(where.lower()):
                for role in roles:
                    more, more_data = ROLE_ACTIONS.get(role, ([], []))
                    actions += more
                    data += more_data
        return actions, data

    def _management(self, path: str, headers: Any) -> tuple[int, Any]:
        claims = self._caller(headers, f"https://{MANAGEMENT}")
        if claims is None:
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "bad token"}}
        suffix = "/providers/Microsoft.Authorization/permissions"
        scope = path.removesuffix(suffix)
        if scope not in self.workspaces:
            return 404, {
                "error": {
                    "code": "ResourceNotFound",
                    "message": f"The Resource '{scope.rsplit('/', 1)[-1]}' was not found.",
                }
            }
        actions, data = self._granted(claims["oid"], scope)
        if path.endswith(suffix):
            entry = {"actions": actions, "notActions": [], "dataActions": data}
            return 200, {"value": [entry]}
        if not actions:
            return 403, {
                "error": {
                    "code": "AuthorizationFailed",
                    "message": f"The client with object id '{claims['oid']}' does not have "
                    "authorization to perform action "
                    "'Microsoft.MachineLearningServices/workspaces/read' over scope "
                    f"'{scope}'.",
                }
            }
        return 200, {"id": scope, "name": scope.rsplit("/", 1)[-1]}

    def _blob(self, host: str, path: str, query: dict[str, str], headers: Any) -> tuple[int, Any]:
        claims = self._caller(headers, "https://storage.azure.com")
        if claims is None:
            return 401, {"code": "InvalidAuthenticationInfo"}
        container = f"{host.split('.')[0]}/{path.strip('/').split('/')[0]}"
        if container not in self.containers:
            return 404, {"code": "ContainerNotFound"}
        _, data = self._granted(claims["oid"], container)
        if not data:
            return 403, {"code": "AuthorizationPermissionMismatch"}
        return 200, {"blobs": []}


def _aad_error(code: str, description: str) -> dict[str, Any]:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return {
        "error": code,
        "error_description": f"{description} Trace ID: {uuid.uuid4()} Correlation ID: "
        f"{uuid.uuid4()} Timestamp: {stamp}",
        "error_codes": [int(description.split(":")[0].removeprefix("AADSTS"))],
    }


def _assertion_signed_by(assertion: str, certificate: Any) -> bool:
    if certificate is None:
        return False
    try:
        jwt.decode(
            assertion,
            certificate.public_key(),
            algorithms=["RS256", "PS256"],
            options={"verify_aud": False},
        )
    except jwt.PyJWTError:
        return False
    return True


def new_certificate(common_name: str) -> tuple[Any, Any, str]:
    """A self-signed certificate, its key and the PEM of both (key first, as msal reads)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    return certificate, key, pem.decode()


def _tls_context(folder: Path, ca_bundle: Path) -> ssl.SSLContext:
    """A server context with a certificate for Azure's host names, signed by a new CA
    whose certificate is written to ``ca_bundle``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stepframe test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ENTRA)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host) for host in _HOSTS]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = folder / "server.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return context


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy that tunnels the hosts the service serves to its TLS port and
    refuses every other host (502), as an unreachable one would be."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], target_port: int) -> None:
        self.target_port = target_port
        super().__init__(address, _Tunnel)


class _Tunnel(socketserver.StreamRequestHandler):
    server: _ConnectProxy

    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1")
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        parts = line.split()
        host = parts[1].rsplit(":", 1)[0] if len(parts) > 1 and parts[0] == "CONNECT" else ""
        if not any(_matches(host, pattern) for pattern in _HOSTS):
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", self.server.target_port))
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        client = self.connection
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        finally:
            upstream.close()


def _matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and "." not in host[: -len(pattern) + 1]
    return host == pattern


# ---- fixtures (conftest lists this module in pytest_plugins) ------------------------------

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def azure_service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The loopback Azure endpoints, for the whole session (tests make their own tenants)."""
    service = AzureService(tmp_path_factory.mktemp("azure-service")).start()
    yield service
    service.stop()


@pytest.fixture
def azure(azure_service: AzureService, monkeypatch: pytest.MonkeyPatch) -> AzureService:
    """The service, with this process routed to it (its proxy and its CA)."""
    for name, value in azure_service.environment.items():
        monkeypatch.setenv(name, value)
    return azure_service
