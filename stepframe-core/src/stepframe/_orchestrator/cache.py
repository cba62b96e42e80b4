"""Cache keys: a step whose code, inputs, settings and operator are unchanged is not rerun.

The key covers:

- the code the step can execute: the module that defines the step function and every
  module of the project that it imports, directly or through other project modules
  (`import` statements anywhere in a file count: at the top, inside functions, under
  ``if`` or ``try``).  Each file counts as its syntax tree, so comments, blank lines,
  formatting and docstrings (of modules, classes and functions) do not count, and any
  other edit does.  "The project" is the pipeline's code root (``PipelineSpec.code_root``,
  the folder a job imports from), minus installed environments inside it
  (``site-packages``, ``dist-packages``, the interpreter's prefix) and minus stepframe
  itself, whose version is keyed on its own.  Not seen: modules imported by a computed
  name (``importlib.import_module(name)``), installed libraries, data files the step
  reads; refresh such a step with ``stepframe run --no-cache``;
- the sha256 of every input artifact;
- the merged settings, the operator component with its configuration, the output names,
  the plugins that provide materializers, and the stepframe version.

Parsed files are kept per process by (path, mtime_ns, size), so a long-lived process (a
notebook, a test session) that edits a module and runs again sees the edit, and a run
parses each file once.  A key is only a candidate: the scheduler reuses a recorded result
only if its outputs are in the run's artifact store and verify against their sha256.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from stepframe import __version__
from stepframe._types import ArtifactRef, Component
from stepframe._validation import unstructure_config

__all__ = ["cache_key", "code_hash"]

# Bumped whenever what a key covers changes, so older keys never match.
KEY_VERSION = 2
# Top-level packages never followed: stepframe is keyed by its version.
_NOT_FOLLOWED = frozenset({"stepframe"})
# Path parts that mark an installed environment, never the project's own code.
_ENVIRONMENT_PARTS = frozenset({"site-packages", "dist-packages"})


class _ParsedModule(NamedTuple):
    """What the key needs from one file: its normalised digest and what it imports."""

    digest: str
    # (level, module, names) of each import statement; ``import a.b`` is (0, "a.b", ()).
    imports: tuple[tuple[int, str | None, tuple[str, ...]], ...]


def _stat_key(path: str) -> tuple[str, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return path, info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=1024)
def _parse(path: str, mtime_ns: int, size: int) -> _ParsedModule:
    """A file's syntax tree digest and imports, parsed again whenever the file changed."""
    try:
        source = Path(path).read_bytes()
    except OSError:
        return _ParsedModule("", ())
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        # Not Python this interpreter parses: every byte counts.
        return _ParsedModule(hashlib.sha256(source).hexdigest(), ())
    imports: list[tuple[int, str | None, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            imports.append((node.level, node.module, names))
    _drop_docstrings(tree)
    # Without line and column attributes, so moving code down a line changes nothing.
    dumped = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return _ParsedModule(hashlib.sha256(dumped.encode()).hexdigest(), tuple(imports))


def _drop_docstrings(tree: ast.Module) -> None:
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(tree):
        if not isinstance(node, documented) or not node.body:
            continue
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            node.body = node.body[1:]


def _parsed(path: str) -> _ParsedModule | None:
    stat = _stat_key(path)
    return None if stat is None else _parse(*stat)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@functools.lru_cache(maxsize=1)
def _environment_prefixes() -> tuple[Path, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return tuple(Path(os.path.realpath(prefix)) for prefix in prefixes)


def _is_project_file(path: Path, code_root: Path) -> bool:
    """Whether ``path`` (resolved) is the project's own code, not an installed library."""
    if not _inside(path, code_root):
        return False
    relative = path.relative_to(code_root).parts
    if _ENVIRONMENT_PARTS.intersection(relative):
        return False
    return not any(
        _inside(path, prefix) and not _inside(code_root, prefix)
        for prefix in _environment_prefixes()
    )


class _Project:
    """Resolves import names to the project's own files, the way the job's import would."""

    def __init__(self, code_root: Path, extra_roots: tuple[Path, ...]) -> None:
        self.code_root = code_root
        roots = [*extra_roots]
        for entry in sys.path:
            if entry:
                roots.append(Path(os.path.realpath(entry)))
        roots.append(code_root)
        self.roots = tuple(
            dict.fromkeys(root for root in roots if _is_project_file(root, code_root))
        )

    def find(self, name: str) -> tuple[Path, bool] | None:
        """The file module ``name`` is imported from and whether it is a package."""
        if name.split(".", 1)[0] in _NOT_FOLLOWED:
            return None
        for root in self.roots:
            base = root.joinpath(*name.split("."))
            candidates = ((base / "__init__.py", True), (base.with_name(base.name + ".py"), False))
            for path, package in candidates:
                if path.is_file():
                    resolved = Path(os.path.realpath(path))
                    if _is_project_file(resolved, self.code_root):
                        return resolved, package
                    return None
        return None


def _candidate_names(
    module: str, is_package: bool, level: int, target: str | None, names: tuple[str, ...]
) -> Iterator[str]:
    """The modules an import statement may execute: each package on the way, and each
    imported name that may be a submodule (``from pkg import helper``)."""
    if level:
        package = module if is_package else module.rpartition(".")[0]
        parts = package.split(".") if package else []
        if level - 1 > len(parts) or not parts:
            return
        base = ".".join(parts[: len(parts) - (level - 1)])
        if not base:
            return
        full = f"{base}.{target}" if target else base
    elif target:
        full = target
    else:
        return
    pieces = full.split(".")
    for end in range(1, len(pieces) + 1):
        yield ".".join(pieces[:end])
    for name in names:
        yield f"{full}.{name}"


def _import_root(module_file: Path, module_name: str) -> Path:
    """The folder a module is imported from (``pkg/sub/mod.py`` as ``pkg.sub.mod``)."""
    depth = len(module_name.split(".")) + (module_file.name == "__init__.py")
    return module_file.parents[depth - 1]


def code_hash(func: Callable[..., Any], code_root: str | os.PathLike[str]) -> str:
    """sha256 of the code ``func`` can execute: its module and the project modules it
    imports, transitively, each as a syntax tree without comments or docstrings."""
    module_name = func.__module__
    module_file = getattr(sys.modules.get(module_name), "__file__", None)
    if not module_file:
        return _source_hash(func)
    start = Path(os.path.realpath(module_file))
    parsed = _parsed(str(start))
    if parsed is None:
        return _source_hash(func)
    root = Path(os.path.realpath(code_root))
    if module_name == "__main__":
        module_name = start.stem
    try:
        extra_roots: tuple[Path, ...] = (_import_root(start, module_name),)
    except IndexError:
        extra_roots = ()
    project = _Project(root, extra_roots)
    digests = {module_name: parsed.digest}
    looked_up = {module_name}  # every name once, found or not ("os" is in every file)
    queue = [(module_name, start.name == "__init__.py", parsed)]
    while queue:
        name, is_package, current = queue.pop()
        for level, target, names in current.imports:
            for candidate in _candidate_names(name, is_package, level, target, names):
                if candidate in looked_up:
                    continue
                looked_up.add(candidate)
                found = project.find(candidate)
                if found is None:
                    continue
                path, package = found
                imported = _parsed(str(path))
                if imported is None:
                    continue
                digests[candidate] = imported.digest
                queue.append((candidate, package, imported))
    encoded = json.dumps(sorted(digests.items())).encode()
    return hashlib.sha256(encoded).hexdigest()


def _source_hash(func: Callable[..., Any]) -> str:
    """For a function without a module file (defined in a REPL): its source, or bytecode."""
    digest = hashlib.sha256()
    try:
        digest.update(inspect.getsource(func).encode())
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        digest.update(code.co_code if code is not None else repr(func).encode())
    return digest.hexdigest()


def cache_key(
    *,
    func: Callable[..., Any],
    function_id: str,
    code_root: str,
    inputs: Mapping[str, ArtifactRef],
    operator: Component,
    settings: Mapping[str, Mapping[str, Any]],
    outputs: tuple[str, ...],
    materializer_plugins: tuple[str, ...],
) -> str:
    payload = {
        "key_version": KEY_VERSION,
        "stepframe": __version__,
        "function": function_id,
        "code": code_hash(func, code_root),
        "inputs": {name: ref.sha256 for name, ref in sorted(inputs.items())},
        "operator": [operator.name, operator.flavor, unstructure_config(operator.config)],
        "settings": settings,
        "outputs": list(outputs),
        # Another set of materializer plugins may store the same value differently.
        "materializer_plugins": list(materializer_plugins),
    }
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
