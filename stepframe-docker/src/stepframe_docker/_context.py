"""The build context: which files of the code root go into the image, and their hashes.

The code root is filtered by its ``.dockerignore``, matched by the docker SDK's own
matcher (Docker's rules: patterns anchored at the root, ``**`` for any depth, ``!`` to
re-include), or, when it has none, by its ``.gitignore``, matched by ``pathspec`` (git's
rules).  What is filtered decides the image's tag, so the rules are the tools' own.
stepframe's own state (``.stepframe/``), ``.git/`` and Python's byte-code caches never go
in.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

__all__ = [
    "ALWAYS_EXCLUDED",
    "LARGE_CONTEXT_BYTES",
    "ContextFile",
    "ContextSizeWarning",
    "FileDigests",
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


@attrs.frozen
class IgnoreRules:
    """Ignore patterns in the style of ``.gitignore`` (matched by ``pathspec``, git's own
    rules) or ``.dockerignore`` (matched by the docker SDK's ``PatternMatcher``, Docker's
    own rules: patterns anchored at the root, ``**`` for any depth, ``!`` re-includes even
    below an excluded folder).

    :param style: ``"gitignore"`` or ``"dockerignore"``.
    :param patterns: the lines, comments and blanks included (each matcher skips them).
    :param source: where the patterns came from, for messages.
    """

    style: str
    patterns: tuple[str, ...]
    source: str = ""
    _matcher: Any = attrs.field(default=None, init=False, eq=False, repr=False)

    @classmethod
    def parse(cls, lines: Iterable[str], *, style: str, source: str = "") -> IgnoreRules:
        """Patterns in ``dockerignore`` or ``gitignore`` style."""
        if style not in ("gitignore", "dockerignore"):
            raise ValueError(f"unknown ignore file style {style!r}")
        return cls(style, tuple(line.rstrip("\n") for line in lines), source)

    @classmethod
    def of(cls, *patterns: str) -> IgnoreRules:
        """gitignore-style patterns given inline."""
        return cls.parse(patterns, style="gitignore")

    def _match(self) -> Any:
        if self._matcher is None:
            object.__setattr__(self, "_matcher", _matcher(self.style, self.patterns))
        return self._matcher

    def excluded(self, relative: str, is_dir: bool) -> bool:
        """Whether the path (POSIX, relative to the root) is left out."""
        if self.style == "gitignore":
            # A trailing slash lets folder-only patterns ("build/") match a folder.
            return bool(self._match().match_file(relative + "/" if is_dir else relative))
        return bool(self._match().matches(relative))

    def may_reinclude_below(self, relative: str) -> bool:
        """Whether something below an excluded folder may come back.

        git never re-includes below an excluded folder; Docker does when a ``!`` pattern
        starts with the folder's path (the SDK's own test, from its ``walk``).
        """
        if self.style == "gitignore":
            return False
        return any(
            pattern.exclusion and pattern.cleaned_pattern.startswith(relative)
            for pattern in self._match().patterns
        )


def _matcher(style: str, patterns: tuple[str, ...]) -> Any:
    if style == "gitignore":
        import pathspec

        return pathspec.GitIgnoreSpec.from_lines(patterns)
    from docker.utils.build import PatternMatcher

    lines = [line.strip() for line in patterns]
    matcher = PatternMatcher([line for line in lines if line and not line.startswith("#")])
    # The SDK appends "!.dockerignore" since the engine must get the file to read it; but
    # COPY leaves out an excluded .dockerignore (Docker's documentation), and this context
    # is what the image gets, so the file's own patterns decide.
    appended = matcher.patterns[-1] if matcher.patterns else None
    if appended is not None and appended.exclusion and appended.cleaned_pattern == ".dockerignore":
        matcher.patterns = matcher.patterns[:-1]
    return matcher


# Checked before any ignore file and never re-included by one.
_ALWAYS = IgnoreRules.of(*ALWAYS_EXCLUDED)


def load_rules(code_root: Path, dockerignore: str | None) -> IgnoreRules:
    """The rules for a code root: an explicit ignore file (dockerignore style), else
    ``.dockerignore``, else ``.gitignore``, else a default list.  `ALWAYS_EXCLUDED` is
    applied on top of any of them by `collect`."""
    if dockerignore is not None:
        path = code_root / dockerignore
        return IgnoreRules.parse(
            path.read_text().splitlines(), style="dockerignore", source=str(path)
        )
    for name, style in ((".dockerignore", "dockerignore"), (".gitignore", "gitignore")):
        path = code_root / name
        if path.is_file():
            return IgnoreRules.parse(path.read_text().splitlines(), style=style, source=str(path))
    return IgnoreRules.of(*DEFAULT_EXCLUDED)


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

    An excluded folder is not walked unless the rules may re-include something below it.
    `ALWAYS_EXCLUDED` paths never go in, whatever the rules say.
    """
    found: list[ContextFile] = []

    def walk(folder: Path, relative: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (PermissionError, FileNotFoundError):
            return
        for entry in entries:
            rel = f"{relative}/{entry.name}" if relative else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if (is_dir and entry.name in _NEVER_WALKED) or _ALWAYS.excluded(rel, is_dir):
                continue
            excluded = rules.excluded(rel, is_dir)
            if is_dir:
                if not excluded or rules.may_reinclude_below(rel):
                    walk(Path(entry.path), rel)
                continue
            if excluded:
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                found.append(ContextFile(rel, Path(entry.path), 0, 0o777, os.readlink(entry.path)))
            elif stat.S_ISREG(info.st_mode):
                found.append(ContextFile(rel, Path(entry.path), info.st_size, info.st_mode))

    walk(code_root, "")
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


class FileDigests:
    """sha256 of files, remembered by (path, size, mtime, inode), for at most ``limit``
    files (the least recently used go first)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._known: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._known)

    def __call__(self, path: Path) -> str:
        info = path.stat()
        key = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
        with self._lock:
            cached = self._known.get(key)
            if cached is not None:
                self._known.move_to_end(key)
                return cached
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                digest.update(chunk)
        value = digest.hexdigest()
        with self._lock:
            self._known[key] = value
            while len(self._known) > self.limit:
                self._known.popitem(last=False)
        return value


# This process's file hashes: a project's files are hashed once per change, not per build.
file_digest = FileDigests()


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
