"""Reading and editing ``stepframe.toml`` without losing the user's comments.

Edits hold an exclusive lock for their whole read-modify-write, so two CLI calls at the
same time both land, and are written to a temporary file that replaces the old one in a
single rename, so a crash mid-write never leaves half a file.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stepframe.exceptions import ConfigError

__all__ = ["edit_toml", "read_toml"]


def _parse(text: str, path: Path) -> Any:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text)
    except ParseError as error:
        raise ConfigError(
            f"{path}:{error.line}:{error.col}: invalid TOML: {error}; fix the file by hand "
            "(stepframe only edits files it can parse)"
        ) from None


def read_toml(path: Path) -> Any:
    """The parsed document (a tomlkit document), or an empty one if the file is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    return _parse(text, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def edit_toml(path: Path) -> Iterator[Any]:
    """Yield the document for changes; write it back only if the block succeeds.

    Validation belongs inside the block: raising there leaves the file untouched.
    """
    import tomlkit

    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        document = read_toml(path)
        before = tomlkit.dumps(document)
        yield document
        after = tomlkit.dumps(document)
        if after != before:
            _write_atomically(path, after)
