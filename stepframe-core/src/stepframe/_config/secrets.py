"""Secrets: named values kept out of the project, in a file only their owner can read.

A component's config never holds a secret value, only a reference: the name of a
secret in the user-level store, or ``env:VAR`` for an environment variable.  Values are
looked up at the moment a connector needs them and go nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from stepframe._files import file_lock, write_atomically
from stepframe._names import SECRET_NAME_RULE, is_secret_name
from stepframe.exceptions import ConfigError

__all__ = [
    "SECRETS_FILE_ENV",
    "SecretRef",
    "SecretStore",
    "check_reference",
    "check_secret_name",
    "default_secrets_path",
    "resolve_secret",
]

SECRETS_FILE_ENV = "STEPFRAME_SECRETS_FILE"
_ENV = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")


class SecretRef(str):
    """A config value that names a secret (``NAME``) or an environment variable (``env:VAR``).

    Use it as the type of any config field that holds a credential; the CLI then refuses a
    literal value there, so no secret ever lands in ``stepframe.toml``.
    """

    @property
    def is_env(self) -> bool:
        return self.startswith("env:")


def check_reference(value: str) -> SecretRef:
    """``value`` as a reference, or `ConfigError` if it cannot be one (a pasted key, say)."""
    if _ENV.fullmatch(value) or is_secret_name(value):
        return SecretRef(value)
    raise ConfigError(
        "takes the name of a secret (create it with `stepframe secret set NAME`) "
        "or env:VARIABLE, not a value"
    )


def check_secret_name(name: str) -> None:
    """`ConfigError` if ``name`` cannot name a secret.  The message never repeats it: what
    was typed where a name belongs may be the value itself."""
    if not is_secret_name(name):
        raise ConfigError(
            f"the secret name given is invalid (not shown, in case it is a value): "
            f"{SECRET_NAME_RULE}"
        )


def default_secrets_path() -> Path:
    if os.environ.get(SECRETS_FILE_ENV):
        return Path(os.environ[SECRETS_FILE_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stepframe" / "secrets.json"


class SecretStore:
    """Secrets in one JSON file of mode 0600, checked on every read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_secrets_path()

    def _load(self) -> dict[str, str]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"secrets file {self.path} can be read by other users "
                f"(mode {stat.S_IMODE(info.st_mode):o}); run `chmod 600 {self.path}`"
            )
        if info.st_uid != os.getuid():
            raise ConfigError(
                f"secrets file {self.path} belongs to another user; refusing to read it"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except ValueError:
            raise ConfigError(
                f"secrets file {self.path} is not valid JSON; fix or delete it"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"secrets file {self.path} must hold a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, secrets: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # 0600 from the first byte: the values must never be readable by others.
        write_atomically(self.path, json.dumps(secrets, indent=1, sort_keys=True), mode=0o600)

    def names(self) -> list[str]:
        return sorted(self._load())

    def get(self, name: str) -> str:
        secrets = self._load()
        if name not in secrets:
            raise ConfigError(
                f"no secret named {name!r}; create it with `stepframe secret set {name}`"
            )
        return secrets[name]

    def has(self, name: str) -> bool:
        return name in self._load()

    def set(self, name: str, value: str) -> None:
        check_secret_name(name)
        if not value:
            raise ConfigError(f"secret {name!r}: refusing to store an empty value")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with file_lock(self.path):
            secrets = self._load()
            secrets[name] = value
            self._save(secrets)

    def delete(self, name: str) -> None:
        with file_lock(self.path):
            secrets = self._load()
            if name not in secrets:
                # Not echoed: a "name" that is not stored may well be a pasted value.
                raise ConfigError(
                    "no secret has the name given (not shown, in case it is a value); "
                    "see `stepframe secret list`"
                )
            del secrets[name]
            self._save(secrets)


def resolve_secret(reference: SecretRef | str, store: SecretStore | None = None) -> str:
    """The value a reference points at, for the connector that needs it right now."""
    if reference.startswith("env:"):
        variable = reference[4:]
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(
                f"environment variable {variable} (referenced as {reference}) is not set"
            )
        return value
    return (store or SecretStore()).get(reference)
