"""The parity check: the job runs the very stepframe the client runs.

A distribution's *content hash* is one sha256 over the path and the sha256 of each file it
installs into site-packages, as its ``RECORD`` lists them, leaving out what an installer
writes or rewrites by itself (``RECORD``, ``INSTALLER``, ``REQUESTED``,
``direct_url.json``, byte code, and scripts outside site-packages, whose first line pip
rewrites).  The client computes it from the wheel it puts in the image (`wheel_hash`),
the image from what pip installed (`installed_hash`): equal hashes, equal bytes.

This module is stdlib only, since the builder copies this very file into the image as
``/opt/stepframe/parity.py`` and runs it there (``python parity.py EXPECTED.json``) at
build time: a mismatch fails the build with a line naming the distribution and both
hashes (or, for the third-party distributions the client pins, both versions).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "check",
    "content_hash",
    "counted",
    "installed_hash",
    "wheel_hash",
]

MARKER = "stepframe-docker parity check"
# Files an installer writes itself, so they differ between two installs of one wheel.
_INSTALLER_FILES = frozenset(
    {"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json"}
)


def counted(path: str) -> bool:
    """Whether a path from a ``RECORD`` (relative to site-packages) is part of the hash."""
    parts = path.replace("\\", "/").split("/")
    if parts[0] in ("..", "") or ":" in parts[0]:
        return False  # outside site-packages: scripts, data files
    if "__pycache__" in parts or parts[-1].endswith((".pyc", ".pyo")):
        return False
    return not (
        len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALLER_FILES
    )


def content_hash(files: Iterable[tuple[str, str]]) -> str:
    """One hash over ``(path, sha256 hex of its bytes)`` pairs, whatever their order."""
    digest = hashlib.sha256()
    for path, file_sha256 in sorted(files):
        digest.update(f"{path}\0{file_sha256}\n".encode())
    return "sha256:" + digest.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    """The counted files of an installed distribution: (RECORD path, where it is).

    :raises LookupError: the distribution has no RECORD (not installed by a wheel
        installer), so its files cannot be told.
    """
    files = dist.files
    if files is None:
        raise LookupError("it has no RECORD, so its files cannot be told")
    found = []
    for item in files:
        name = str(item).replace("\\", "/")
        if counted(name):
            found.append((name, Path(str(item.locate()))))
    return found


def installed_hash(dist: metadata.Distribution) -> str:
    """The content hash of an installed distribution's files as they are now.

    :raises LookupError: no RECORD, or a file it lists is gone.
    """
    pairs = []
    for name, path in installed_files(dist):
        try:
            pairs.append((name, _sha256(path.read_bytes())))
        except FileNotFoundError:
            raise LookupError(f"{name}, listed in its RECORD, is missing") from None
    return content_hash(pairs)


def _installed_name(member: str) -> str | None:
    """Where pip installs a wheel member, relative to site-packages (None: elsewhere)."""
    parts = member.split("/")
    if len(parts) > 2 and parts[0].endswith(".data"):
        if parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None  # scripts, headers, data: outside site-packages
    return member


def wheel_hash(wheel: Path) -> str:
    """The content hash the distribution in ``wheel`` has once pip installed it."""
    pairs = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = _installed_name(info.filename)
            if name is not None and counted(name):
                pairs.append((name, _sha256(archive.read(info))))
    return content_hash(pairs)


def check(expected: Mapping[str, Any]) -> list[str]:
    """What differs between this interpreter's environment and ``expected``.

    ``expected`` holds ``python`` (major.minor), ``distributions`` (name to ``version``
    and ``hash``) and ``pins`` (third-party name to version).
    """
    problems = []
    found = "{}.{}".format(*sys.version_info[:2])
    if found != expected["python"]:
        problems.append(f"Python {found} in the image, {expected['python']} on the client")
    for name, want in sorted(expected["distributions"].items()):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(
                f"{name} is not installed in the image ({want['version']} on the client)"
            )
            continue
        if dist.version != want["version"]:
            problems.append(f"{name} {dist.version} in the image, {want['version']} on the client")
            continue
        try:
            have = installed_hash(dist)
        except LookupError as error:
            have = f"unknown ({error})"
        if have != want["hash"]:
            problems.append(
                f"{name} {dist.version} has content {have} in the image, {want['hash']} on "
                "the client"
            )
    for name, version in sorted(expected.get("pins", {}).items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # not needed here (an environment marker left it out)
        if have != version:
            problems.append(f"{name} {have} in the image, {version} on the client")
    return problems


def main(argv: list[str]) -> int:
    expected = json.loads(Path(argv[1]).read_text())
    problems = check(expected)
    if problems:
        print(f"{MARKER} failed: " + "; ".join(problems))
        return 3
    shown = ", ".join(
        f"{name} {want['version']} ({want['hash'][:19]})"
        for name, want in sorted(expected["distributions"].items())
    )
    print(f"{MARKER}: Python {expected['python']}, {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
