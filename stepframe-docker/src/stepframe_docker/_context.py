"""The build context: which files of the code root go into the image, and their hashes.

The code root is filtered by its ``.dockerignore`` (Docker's rules: patterns anchored at
the root, ``**`` for any depth, ``!`` to re-include), or, when it has none, by its
``.gitignore`` (git's rules for the common cases: a pattern without a slash matches at any
depth, a trailing slash matches folders only).  stepframe's own state (``.stepframe/``),
``.git/`` and Python's byte-code caches never go in.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs

__all__ = [
    "ALWAYS_EXCLUDED",
    "LARGE_CONTEXT_BYTES",
    "ContextFile",
    "ContextSizeWarning",
    "IgnoreRules",
    "add_bytes",
    "add_tree",
    "collect",
    "file_digest",
    "tree_digest",
]

# Never part of an image's code: the project's run state (artifacts can be huge and change
# every run), version control, byte code.
ALWAYS_EXCLUDED = (".stepframe", ".git", "__pycache__", "*.pyc", "*.pyo")
# Folders never even walked, whatever the patterns say.
_NEVER_WALKED = frozenset({".stepframe", ".git", "__pycache__"})
# Without any ignore file, leave out what is clearly not code either.
DEFAULT_EXCLUDED = (
    ".venv",
    "venv",
    ".nox",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
    "node_modules",
)
LARGE_CONTEXT_BYTES = 50 * 1024 * 1024
# Every file in the context gets these, so the layers are the same wherever they are built.
FIXED_MTIME = 315532800  # 1980-01-01


class ContextSizeWarning(UserWarning):
    """The build context is large; the warning names its largest entries."""


def _glob_to_regex(pattern: str) -> str:
    """A path glob (``*``, ``?``, ``[...]``, ``**``) as a regex over a POSIX path."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                    out.append("(?:.*/)?")  # zero or more folders
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@attrs.frozen
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


@attrs.frozen
class IgnoreRules:
    """An ordered list of ignore patterns; the last one that matches decides.

    :param source: where the patterns came from, for messages.
    """

    rules: tuple[_Rule, ...]
    source: str = ""

    @classmethod
    def parse(cls, lines: Iterable[str], *, style: str, source: str = "") -> IgnoreRules:
        """Patterns in ``dockerignore`` or ``gitignore`` style."""
        rules = []
        for raw in lines:
            line = raw.rstrip("\n")
            if style == "gitignore":
                line = line.rstrip(" ") if not line.endswith("\\ ") else line
            else:
                line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip() if style == "dockerignore" else line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if style == "dockerignore":
                line = os.path.normpath(line).replace(os.sep, "/").lstrip("/")
                if line in ("", "."):
                    continue
                regex = _glob_to_regex(line)
            else:
                anchored = "/" in line
                line = line.lstrip("/")
                if not line:
                    continue
                regex = _glob_to_regex(line)
                if not anchored:
                    regex = "(?:.*/)?" + regex
            rules.append(_Rule(re.compile(f"^{regex}$"), negate, dir_only))
        return cls(tuple(rules), source)

    @classmethod
    def of(cls, *patterns: str) -> IgnoreRules:
        """gitignore-style patterns given inline."""
        return cls.parse(patterns, style="gitignore")

    def __add__(self, other: IgnoreRules) -> IgnoreRules:
        return IgnoreRules(self.rules + other.rules, self.source or other.source)

    def excluded(self, relative: str, is_dir: bool) -> bool | None:
        """True/False when a rule decides for this very path, None when none matches."""
        verdict: bool | None = None
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(relative):
                verdict = not rule.negate
        return verdict

    def may_reinclude_below(self, relative: str) -> bool:
        """Whether a ``!`` pattern might re-include something below an excluded folder
        (conservatively: whether there is any ``!`` pattern at all)."""
        return any(rule.negate for rule in self.rules)


def load_rules(code_root: Path, dockerignore: str | None) -> IgnoreRules:
    """The rules for a code root: an explicit ignore file, else ``.dockerignore``, else
    ``.gitignore``, else a default list; always with `ALWAYS_EXCLUDED` first."""
    base = IgnoreRules.of(*ALWAYS_EXCLUDED)
    if dockerignore is not None:
        path = code_root / dockerignore
        return base + IgnoreRules.parse(
            path.read_text().splitlines(), style="dockerignore", source=str(path)
        )
    for name, style in ((".dockerignore", "dockerignore"), (".gitignore", "gitignore")):
        path = code_root / name
        if path.is_file():
            return base + IgnoreRules.parse(
                path.read_text().splitlines(), style=style, source=str(path)
            )
    return base + IgnoreRules.of(*DEFAULT_EXCLUDED)


@attrs.frozen
class ContextFile:
    """One file (or symlink) of the build context."""

    relative: str
    path: Path
    size: int
    mode: int
    link_target: str | None = None


def collect(code_root: Path, rules: IgnoreRules) -> list[ContextFile]:
    """Every file below ``code_root`` that the rules keep, sorted by relative path.

    A folder that is excluded is not walked unless a ``!`` pattern may re-include
    something below it (Docker's behaviour).
    """
    found: list[ContextFile] = []

    def walk(folder: Path, relative: str, parent_excluded: bool) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (PermissionError, FileNotFoundError):
            return
        for entry in entries:
            rel = f"{relative}/{entry.name}" if relative else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            verdict = rules.excluded(rel, is_dir)
            excluded = parent_excluded if verdict is None else verdict
            if is_dir:
                if entry.name in _NEVER_WALKED:
                    continue
                if excluded and not rules.may_reinclude_below(rel):
                    continue
                walk(Path(entry.path), rel, excluded)
                continue
            if excluded:
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                found.append(ContextFile(rel, Path(entry.path), 0, 0o777, os.readlink(entry.path)))
            elif stat.S_ISREG(info.st_mode):
                found.append(ContextFile(rel, Path(entry.path), info.st_size, info.st_mode))

    walk(code_root, "", False)
    return found


def warn_if_large(
    files: Sequence[ContextFile], code_root: Path, limit: int = LARGE_CONTEXT_BYTES
) -> int:
    """Warn, naming the largest top-level entries, when the files add up past ``limit``."""
    total = sum(f.size for f in files)
    if total <= limit:
        return total
    per_entry: dict[str, int] = {}
    for item in files:
        top = item.relative.split("/", 1)[0]
        per_entry[top] = per_entry.get(top, 0) + item.size
    largest = sorted(per_entry.items(), key=lambda kv: -kv[1])[:5]
    listing = ", ".join(f"{name} ({_mib(size)})" for name, size in largest)
    warnings.warn(
        f"stepframe-docker: the build context of {code_root} is {_mib(total)} "
        f"(over {_mib(limit)}); largest entries: {listing}. Add what the step does not "
        "need to a .dockerignore there",
        ContextSizeWarning,
        stacklevel=3,
    )
    return total


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


_digest_cache: dict[tuple[str, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime, inode) for this process."""
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    cached = _digest_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    _digest_cache[key] = value
    return value


def tree_digest(files: Iterable[ContextFile]) -> str:
    """One sha256 over the paths, executable bits, link targets and contents of files."""
    digest = hashlib.sha256()
    for item in files:
        if item.link_target is not None:
            entry = f"L {item.relative} -> {item.link_target}\n"
        else:
            executable = "x" if item.mode & 0o111 else "-"
            entry = f"F {item.relative} {executable} {file_digest(item.path)}\n"
        digest.update(entry.encode())
    return digest.hexdigest()


def _tarinfo(name: str, size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def add_tree(archive: tarfile.TarFile, files: Iterable[ContextFile], prefix: str) -> None:
    """Add context files below ``prefix/`` (folders are implied)."""
    for item in files:
        name = f"{prefix}/{item.relative}"
        if item.link_target is not None:
            info = _tarinfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = item.link_target
            archive.addfile(info)
            continue
        mode = 0o755 if item.mode & 0o111 else 0o644
        with open(item.path, "rb") as stream:
            archive.addfile(_tarinfo(name, item.size, mode), stream)


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    archive.addfile(_tarinfo(name, len(data), mode), io.BytesIO(data))


def iter_paths(files: Iterable[ContextFile]) -> Iterator[str]:
    for item in files:
        yield item.relative


def open_archive(stream: IO[bytes]) -> tarfile.TarFile:
    return tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT)
