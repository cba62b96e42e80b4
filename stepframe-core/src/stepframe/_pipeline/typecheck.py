"""Honouring a step's type hints when its inputs are loaded.

Artifacts cross a serialisation boundary: JSON turns tuples into lists, and a value can
come from a step that returned something other than what the consumer expects.
`conform` converts what serialisation lost (list to tuple or set, int to float) and
rejects what does not match, saying where inside the value the mismatch is.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any

__all__ = ["TypeMismatch", "conform", "describe_type"]

_EMPTY = inspect.Parameter.empty


class TypeMismatch(TypeError):
    """A value does not match a type hint; ``path`` locates the bad part (``[2]['a']``)."""

    def __init__(self, expected: str, got: str, path: str = "") -> None:
        self.expected = expected
        self.got = got
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"expected {expected}, got {got}{where}")

    def nested(self, prefix: str) -> TypeMismatch:
        """The same mismatch, seen from the container that holds the bad part."""
        return TypeMismatch(self.expected, self.got, prefix + self.path)


def _mismatch(expected: str, value: object) -> TypeMismatch:
    return TypeMismatch(expected, type(value).__name__)


def describe_type(hint: Any) -> str:
    if hint is type(None) or hint is None:
        return "None"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


_SEQUENCE_ORIGINS = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_SET_ORIGINS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPPING_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _items(
    value: Any, hint: Any, path_of: typing.Callable[[int], str], item_hint: Any
) -> list[Any]:
    out = []
    for i, item in enumerate(value):
        try:
            out.append(conform(item, item_hint))
        except TypeMismatch as error:
            raise error.nested(path_of(i)) from None
    return out


def conform(value: Any, hint: Any) -> Any:
    """Return ``value`` as ``hint`` describes it, or raise `TypeMismatch`.

    Hints it cannot reason about (type variables, protocols, unresolved strings) accept
    any value: a wrong rejection would be worse than a missed one.
    """
    if hint is _EMPTY or hint is Any or hint is object or isinstance(hint, (str, typing.TypeVar)):
        return value
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise _mismatch("None", value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return conform(value, args[0])
    if origin is typing.Union or origin is types.UnionType:
        for arg in args:
            try:
                return conform(value, arg)
            except TypeMismatch:
                continue
        raise _mismatch(describe_type(hint), value)
    if origin is typing.Literal:
        if value in args:
            return value
        raise _mismatch(describe_type(hint), value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _mismatch("float", value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch("int", value)
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise _mismatch(describe_type(hint), value)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_items(value, hint, lambda i: f"[{i}]", args[0]))
        if len(args) != len(value):
            raise _mismatch(f"{describe_type(hint)} (length {len(args)})", value)
        out = []
        for i, (item, item_hint) in enumerate(zip(value, args)):
            try:
                out.append(conform(item, item_hint))
            except TypeMismatch as error:
                raise error.nested(f"[{i}]") from None
        return tuple(out)
    if origin in _SEQUENCE_ORIGINS or hint is list:
        if not isinstance(value, (list, tuple)) or (origin is list and isinstance(value, str)):
            raise _mismatch(describe_type(hint), value)
        items = _items(value, hint, lambda i: f"[{i}]", args[0] if args else Any)
        return items if origin is list or hint is list or isinstance(value, list) else tuple(items)
    if origin in _SET_ORIGINS or hint in (set, frozenset):
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _mismatch(describe_type(hint), value)
        items = _items(value, hint, lambda i: f"[{i}]", args[0] if args else Any)
        return frozenset(items) if (origin or hint) is frozenset else set(items)
    if origin in _MAPPING_ORIGINS or hint is dict:
        if not isinstance(value, collections.abc.Mapping):
            raise _mismatch(describe_type(hint), value)
        key_hint, value_hint = args if args else (Any, Any)
        result = {}
        for key, item in value.items():
            try:
                result[conform(key, key_hint)] = conform(item, value_hint)
            except TypeMismatch as error:
                raise error.nested(f"[{key!r}]") from None
        return result
    if origin is not None:
        hint = origin  # another generic alias: check the container class only
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise _mismatch(describe_type(hint), value)
    return value
