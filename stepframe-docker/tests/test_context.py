"""Which files of the code root go into the build context."""

from __future__ import annotations

import tarfile
import warnings
from pathlib import Path

import pytest

from stepframe_docker._context import (
    ContextSizeWarning,
    IgnoreRules,
    add_tree,
    collect,
    load_rules,
    open_archive,
    tree_digest,
    warn_if_large,
)


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")


def _kept(root: Path, dockerignore: str | None = None) -> list[str]:
    return [f.relative for f in collect(root, load_rules(root, dockerignore))]


FILES = [
    "pipeline.py",
    "pkg/__init__.py",
    "pkg/model.py",
    "pkg/__pycache__/model.cpython-311.pyc",
    "data/big.csv",
    "data/keep.csv",
    "notes/todo.md",
    "deep/er/data/x.csv",
    ".stepframe/runs.db",
    ".stepframe/artifacts/runs/a/out",
    ".git/HEAD",
    ".venv/bin/python",
]


def test_dockerignore_rules_with_reinclusion(tmp_path: Path) -> None:
    _tree(tmp_path, FILES)
    (tmp_path / ".dockerignore").write_text("# comment\ndata\n!data/keep.csv\n**/*.md\n")
    kept = _kept(tmp_path)
    assert kept == [
        ".dockerignore",
        ".venv/bin/python",  # .dockerignore given: only its rules (and the fixed ones)
        "data/keep.csv",
        "deep/er/data/x.csv",  # dockerignore patterns are anchored at the root
        "pipeline.py",
        "pkg/__init__.py",
        "pkg/model.py",
    ]


def test_gitignore_when_there_is_no_dockerignore(tmp_path: Path) -> None:
    _tree(tmp_path, FILES)
    (tmp_path / ".gitignore").write_text("data/\n*.md\n.venv/\n/notes\n")
    kept = _kept(tmp_path)
    # gitignore: a pattern without a slash matches at any depth, "data/" folders anywhere.
    assert kept == [".gitignore", "pipeline.py", "pkg/__init__.py", "pkg/model.py"]


def test_defaults_without_any_ignore_file(tmp_path: Path) -> None:
    _tree(tmp_path, FILES)
    kept = _kept(tmp_path)
    assert ".venv/bin/python" not in kept
    assert not any(k.startswith((".stepframe/", ".git/")) or "__pycache__" in k for k in kept)
    assert "data/big.csv" in kept


def test_state_and_git_never_go_in_even_when_reincluded(tmp_path: Path) -> None:
    _tree(tmp_path, FILES)
    (tmp_path / ".dockerignore").write_text("!.stepframe/runs.db\n!.git\n")
    kept = _kept(tmp_path)
    assert not any(k.startswith((".stepframe/", ".git/")) for k in kept)


def test_explicit_ignore_file_setting(tmp_path: Path) -> None:
    _tree(tmp_path, FILES)
    (tmp_path / ".dockerignore").write_text("pkg\n")
    (tmp_path / "image.ignore").write_text("*\n!pipeline.py\n")
    assert _kept(tmp_path, "image.ignore") == ["pipeline.py"]


def test_glob_patterns() -> None:
    rules = IgnoreRules.parse(["a/*/c", "**/tmp", "x?.py", "[ab].txt"], style="dockerignore")
    assert rules.excluded("a/b/c", False)
    assert not rules.excluded("a/b/d/c", False)
    assert rules.excluded("tmp", True) and rules.excluded("q/r/tmp", True)
    assert rules.excluded("x1.py", False) and not rules.excluded("x12.py", False)
    assert rules.excluded("a.txt", False) and rules.excluded("b.txt", False)
    assert rules.excluded("c.txt", False) is None


def test_tree_digest_follows_content_and_names_not_mtimes(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.py", "b/c.py"])
    rules = load_rules(tmp_path, None)
    first = tree_digest(collect(tmp_path, rules))
    (tmp_path / "a.py").touch()
    import os

    os.utime(tmp_path / "a.py", (1, 1))
    assert tree_digest(collect(tmp_path, rules)) == first
    (tmp_path / "a.py").write_text("changed\n")
    assert tree_digest(collect(tmp_path, rules)) != first
    (tmp_path / "a.py").write_text("content of a.py\n")
    assert tree_digest(collect(tmp_path, rules)) == first
    (tmp_path / "b" / "c.py").rename(tmp_path / "b" / "d.py")
    assert tree_digest(collect(tmp_path, rules)) != first


def test_executable_bit_is_part_of_the_digest(tmp_path: Path) -> None:
    _tree(tmp_path, ["run.sh"])
    rules = load_rules(tmp_path, None)
    first = tree_digest(collect(tmp_path, rules))
    (tmp_path / "run.sh").chmod(0o755)
    assert tree_digest(collect(tmp_path, rules)) != first


def test_archive_is_reproducible(tmp_path: Path) -> None:
    _tree(tmp_path / "code", ["a.py", "pkg/b.py"])
    files = collect(tmp_path / "code", load_rules(tmp_path / "code", None))
    blobs = []
    for name in ("one.tar", "two.tar"):
        with open(tmp_path / name, "wb") as stream, open_archive(stream) as archive:
            add_tree(archive, files, "code")
        blobs.append((tmp_path / name).read_bytes())
        (tmp_path / "code" / "a.py").touch()
    assert blobs[0] == blobs[1]
    with tarfile.open(tmp_path / "one.tar") as archive:
        assert archive.getnames() == ["code/a.py", "code/pkg/b.py"]


def test_large_context_warning_names_the_largest_entries(tmp_path: Path) -> None:
    _tree(tmp_path, ["small.py"])
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.bin").write_bytes(b"\0" * 3000)
    (tmp_path / "data.bin").write_bytes(b"\0" * 2000)
    files = collect(tmp_path, load_rules(tmp_path, None))
    with pytest.warns(ContextSizeWarning) as caught:
        warn_if_large(files, tmp_path, limit=4000)
    message = str(caught[0].message)
    assert message.index("weights") < message.index("data.bin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_large(files, tmp_path, limit=10_000)
