"""Pipeline parameters given outside Python: ``-p NAME=VALUE`` and a run config's
``[parameters]``, converted by the pipeline function's type hints.

A shell value is text: it becomes the hinted type (``int``, ``float``, ``bool``, ``str``,
``Path``), or JSON for anything richer (``list[int]``, ``dict[str, float]``), checked with
the same rules a step's inputs are (`typecheck.conform`).  A run config's values are
already typed by TOML and are only checked.  Without a hint, the default's type decides;
with neither, the text stays text.
"""

from __future__ import annotations

import difflib
import inspect
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from stepframe._pipeline.typecheck import TypeMismatch, conform, describe_type
from stepframe.exceptions import UsageError

__all__ = ["parameters_from_config", "parameters_from_shell", "recorded_parameters"]

_EMPTY = inspect.Parameter.empty
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _signature(func: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an unresolvable annotation: check nothing rather than refuse
        hints = {}
    return inspect.signature(func), hints


def _known(name: str, pipeline: str, signature: inspect.Signature, how: str) -> None:
    if name in signature.parameters:
        return
    names = list(signature.parameters)
    near = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    takes = f"its parameters: {', '.join(names)}" if names else "it takes no parameters"
    raise UsageError(f"pipeline {pipeline!r} has no parameter {name!r} ({how}){hint} {takes}")


def _hint_of(name: str, signature: inspect.Signature, hints: Mapping[str, Any]) -> Any:
    hint = hints.get(name, _EMPTY)
    if hint is _EMPTY:
        default = signature.parameters[name].default
        if default is not _EMPTY and default is not None:
            return type(default)
    return hint


def _from_text(text: str, hint: Any) -> Any:
    """``text`` as ``hint`` describes it; raises ValueError or `TypeMismatch`."""
    if hint is _EMPTY or hint is str or hint is Any:
        return text
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError("not one of true/false, yes/no, on/off, 1/0")
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    if isinstance(hint, type) and issubclass(hint, PurePath):
        return hint(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text  # a plain word for a str | None, a Literal["a", "b"], ...
    return conform(value, hint)


def parameters_from_shell(
    func: Callable[..., Any], pipeline: str, given: Sequence[str]
) -> dict[str, Any]:
    """``-p NAME=VALUE`` options as keyword arguments for the pipeline function."""
    signature, hints = _signature(func)
    values: dict[str, Any] = {}
    for item in given:
        name, equals, text = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise UsageError(f"-p {item!r}: give a parameter as NAME=VALUE (-p rows=1000)")
        _known(name, pipeline, signature, f"-p {name}=...")
        hint = _hint_of(name, signature, hints)
        try:
            values[name] = _from_text(text, hint)
        except (ValueError, TypeMismatch) as error:
            raise UsageError(
                f"-p {name}={text!r}: parameter {name!r} of pipeline {pipeline!r} takes "
                f"{describe_type(hint)} ({error})"
            ) from None
    return values


def parameters_from_config(
    func: Callable[..., Any], pipeline: str, table: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """A run config's ``[parameters]`` table, checked against the pipeline's hints."""
    signature, hints = _signature(func)
    values: dict[str, Any] = {}
    for name, value in table.items():
        _known(name, pipeline, signature, f"{where}: parameters.{name}")
        hint = _hint_of(name, signature, hints)
        try:
            values[name] = (
                Path(value) if hint is Path and isinstance(value, str) else conform(value, hint)
            )
        except TypeMismatch as error:
            raise UsageError(
                f"{where}: parameters.{name}: pipeline {pipeline!r} takes "
                f"{describe_type(hint)} ({error})"
            ) from None
    return values


def recorded_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as the run history keeps them: JSON values as they are (an int stays an
    int), anything else as a short ``repr``."""
    recorded: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, PurePath):
            recorded[key] = str(value)
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            recorded[key] = repr(value)[:200]
        else:
            recorded[key] = value
    return recorded
