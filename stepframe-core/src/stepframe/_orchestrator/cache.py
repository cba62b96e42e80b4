"""Cache keys: a step whose code, inputs, settings and operator are unchanged is not rerun.

The key covers the source of the step function and of the module that defines it (so a
changed helper in that module counts as a code change), the sha256 of every input
artifact, the merged settings, the operator component with its configuration, the
output names, the plugins that provide materializers, and the stepframe version.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stepframe import __version__
from stepframe._types import ArtifactRef, Component
from stepframe._validation import unstructure_config

__all__ = ["cache_key", "source_hash"]


def _module_source(filename: str) -> bytes:
    """A module file's bytes, read again whenever the file changed: a long-lived process
    (a notebook, a test session) may run a pipeline, edit a module, and run it again."""
    try:
        info = os.stat(filename)
    except OSError:
        return b""
    return _read(filename, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=256)
def _read(filename: str, mtime_ns: int, size: int) -> bytes:
    try:
        return Path(filename).read_bytes()
    except OSError:
        return b""


def source_hash(func: Callable[..., Any]) -> str:
    """sha256 of a function's source and of its module's file."""
    digest = hashlib.sha256()
    try:
        digest.update(inspect.getsource(func).encode())
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        digest.update(code.co_code if code is not None else repr(func).encode())
    module_file = getattr(sys.modules.get(func.__module__), "__file__", None)
    if module_file:
        digest.update(_module_source(module_file))
    return digest.hexdigest()


def cache_key(
    *,
    func: Callable[..., Any],
    function_id: str,
    inputs: Mapping[str, ArtifactRef],
    operator: Component,
    settings: Mapping[str, Mapping[str, Any]],
    outputs: tuple[str, ...],
    materializer_plugins: tuple[str, ...],
) -> str:
    payload = {
        "key_version": 1,
        "stepframe": __version__,
        "function": function_id,
        "code": source_hash(func),
        "inputs": {name: ref.sha256 for name, ref in sorted(inputs.items())},
        "operator": [operator.name, operator.flavor, unstructure_config(operator.config)],
        "settings": settings,
        "outputs": list(outputs),
        # Another set of materializer plugins may store the same value differently.
        "materializer_plugins": list(materializer_plugins),
    }
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
