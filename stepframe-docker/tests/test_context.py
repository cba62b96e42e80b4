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
    assert not rules.excluded("c.txt", False)


# The examples of Docker's documentation of .dockerignore files
# (https://docs.docker.com/build/concepts/context/#dockerignore-files): what each pattern
# list keeps of the same tree.
DOCKER_TREE = [
    "somedir/temporary.txt",
    "somedir/subdir/temporary.txt",
    "somedir/keep.txt",
    "tempa",
    "tempb",
    "tempab",
    "main.go",
    "cmd/tool/tool.go",
    "README.md",
    "README-secret.md",
    "README-public.md",
    "CHANGES.md",
]


@pytest.mark.parametrize(
    ("patterns", "left_out"),
    [
        # "Exclude files and directories whose names start with temp in any immediate
        # subdirectory of the root."
        pytest.param(["*/temp*"], {"somedir/temporary.txt"}, id="*/temp*"),
        # "... from any subdirectory that is two levels below the root."
        pytest.param(["*/*/temp*"], {"somedir/subdir/temporary.txt"}, id="*/*/temp*"),
        # "Exclude files and directories in the root directory whose names are a
        # one-character extension of temp."
        pytest.param(["temp?"], {"tempa", "tempb"}, id="temp?"),
        # "**/*.go excludes all files that end with .go found anywhere."
        pytest.param(["**/*.go"], {"main.go", "cmd/tool/tool.go"}, id="**/*.go"),
        # "All markdown files right below the context directory except README.md."
        pytest.param(
            ["*.md", "!README.md"],
            {"README-secret.md", "README-public.md", "CHANGES.md"},
            id="*.md !README.md",
        ),
        # "No markdown files are included in the context except README files other than
        # README-secret.md."
        pytest.param(
            ["*.md", "!README*.md", "README-secret.md"],
            {"README-secret.md", "CHANGES.md"},
            id="!README*.md then README-secret.md",
        ),
        # "All of the README files are included.  The middle line has no effect because
        # !README*.md matches README-secret.md and comes last."
        pytest.param(
            ["*.md", "README-secret.md", "!README*.md"], {"CHANGES.md"}, id="last one wins"
        ),
        # "For historical reasons, the pattern . is ignored."
        pytest.param(["."], set(), id="dot is ignored"),
    ],
)
def test_dockerignore_documented_examples(
    tmp_path: Path, patterns: list[str], left_out: set[str]
) -> None:
    _tree(tmp_path, DOCKER_TREE)
    (tmp_path / "image.ignore").write_text("\n".join(["# comment", *patterns]) + "\n")
    kept = set(_kept(tmp_path, "image.ignore"))
    assert kept == {*DOCKER_TREE, "image.ignore"} - left_out


def test_dockerignore_reincludes_below_an_excluded_folder(tmp_path: Path) -> None:
    _tree(tmp_path, ["data/big.csv", "data/keep.csv", "database/x.csv"])
    (tmp_path / ".dockerignore").write_text("data\n!data/keep.csv\n.dockerignore\n")
    # Unlike git, Docker re-includes below an excluded folder; an excluded .dockerignore
    # is not copied into the image (the SDK's matcher keeps it for the engine's sake).
    assert _kept(tmp_path) == ["data/keep.csv", "database/x.csv"]


# The examples of git's documentation (https://git-scm.com/docs/gitignore, "PATTERN
# FORMAT" and "EXAMPLES").
GIT_TREE = [
    "hello.c",
    "hello.txt",
    "doc/frotz/a.txt",
    "a/doc/frotz/b.txt",
    "frotz/c.txt",
    "a/frotz/d.txt",
    "frotz.txt",
    "cat-file.c",
    "mozilla-sha1/sha1.c",
    "foo/bar/x.txt",
    "foo/baz/y.txt",
    "foo/z.txt",
    "a/b",
    "a/x/b",
    "a/x/y/b",
    "!important!.txt",
    "trailing ",
]


@pytest.mark.parametrize(
    ("patterns", "left_out"),
    [
        # "hello.* matches any file or directory whose name begins with hello."
        pytest.param(["hello.*"], {"hello.c", "hello.txt"}, id="hello.*"),
        # "doc/frotz/ matches doc/frotz directory, but not a/doc/frotz directory."
        pytest.param(["doc/frotz/"], {"doc/frotz/a.txt"}, id="doc/frotz/"),
        # "frotz/ matches frotz and a/frotz that is a directory" (any folder named frotz,
        # not the file frotz.txt).
        pytest.param(
            ["frotz/"],
            {"frotz/c.txt", "a/frotz/d.txt", "doc/frotz/a.txt", "a/doc/frotz/b.txt"},
            id="frotz/",
        ),
        # "/*.c matches cat-file.c but not mozilla-sha1/sha1.c."
        pytest.param(["/*.c"], {"hello.c", "cat-file.c"}, id="/*.c"),
        # "foo/** matches all files inside directory foo."
        pytest.param(["foo/**"], {"foo/bar/x.txt", "foo/baz/y.txt", "foo/z.txt"}, id="foo/**"),
        # "a/**/b matches a/b, a/x/b, a/x/y/b and so on."
        pytest.param(["a/**/b"], {"a/b", "a/x/b", "a/x/y/b"}, id="a/**/b"),
        # "Exclude everything except directory foo/bar" (the /* matters).
        pytest.param(
            ["/*", "!/foo", "/foo/*", "!/foo/bar"],
            set(GIT_TREE) - {"foo/bar/x.txt"},
            id="everything but foo/bar",
        ),
        # "It is not possible to re-include a file if a parent directory of that file is
        # excluded."
        pytest.param(
            ["foo/", "!foo/z.txt"],
            {"foo/bar/x.txt", "foo/baz/y.txt", "foo/z.txt"},
            id="no re-include below an excluded folder",
        ),
        # "Put a backslash in front of the first '!' for patterns that begin with a
        # literal '!'" and "Trailing spaces are ignored unless they are quoted with
        # backslash".
        pytest.param(["\\!important!.txt"], {"!important!.txt"}, id="escaped !"),
        pytest.param(["trailing\\ "], {"trailing "}, id="escaped trailing space"),
        pytest.param(["hello.c   "], {"hello.c"}, id="trailing spaces ignored"),
    ],
)
def test_gitignore_documented_examples(
    tmp_path: Path, patterns: list[str], left_out: set[str]
) -> None:
    _tree(tmp_path, GIT_TREE)
    (tmp_path / ".gitignore").write_text("\n".join(["# comment", *patterns]) + "\n")
    kept = set(_kept(tmp_path))
    assert kept == (set(GIT_TREE) | {".gitignore"}) - left_out - (
        {".gitignore"} if "/*" in patterns else set()
    )


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
