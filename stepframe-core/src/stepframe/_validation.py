"""Validating user-supplied configuration and settings against attrs classes.

cattrs does the structuring; this module makes it strict (a string is not an int) and
turns its errors into one line per problem, each with the path of the offending key.
"""

from __future__ import annotations

import typing
from collections import abc
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from stepframe._config.secrets import SecretRef, check_reference
from stepframe.exceptions import ConfigError

__all__ = ["structure_config", "unstructure_config"]

_T = TypeVar("_T")


def _strict(expected: type) -> Any:
    def structure(value: Any, _: Any) -> Any:
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise TypeError(f"expected {expected.__name__}, got {type(value).__name__} {value!r}")
        return value

    return structure


def _secret_reference(value: Any, _: Any) -> SecretRef:
    if not isinstance(value, str):
        raise TypeError(f"expected the name of a secret, got {type(value).__name__}")
    return check_reference(value)


_SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


def _origin(type_: Any) -> Any:
    return typing.get_origin(type_) or type_


def _is_sequence(type_: Any) -> bool:
    return _origin(type_) in _SEQUENCES


def _is_mapping(type_: Any) -> bool:
    return _origin(type_) in _MAPPINGS


def _elements(
    converter: cattrs.Converter, pairs: list[tuple[Any, Any, Any]], type_: Any
) -> list[Any]:
    """Structure ``(index, value, type)`` triples, collecting every error with its index."""
    done, errors = [], []
    for index, value, element_type in pairs:
        try:
            done.append(converter.structure(value, element_type))
        except Exception as error:
            note = IterableValidationNote(f"Structuring {type_} @ {index!r}", index, element_type)
            # What ``add_note`` does, on Python 3.10 too; cattrs reads the notes.
            error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
            errors.append(error)
    if errors:
        raise IterableValidationError(f"While structuring {type_!r}", errors, type_)
    return done


def _collections(converter: cattrs.Converter) -> None:
    """cattrs makes a list of any iterable (``"ab"`` becomes ``["a", "b"]``) and fails on a
    string given for a table with an AttributeError; refuse the wrong kind instead."""

    def sequence(value: Any, type_: Any) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
        origin, args = _origin(type_), typing.get_args(type_)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise TypeError(f"expected {len(args)} items, got {len(value)}")
            types = list(args)
        else:
            types = [args[0] if args else Any] * len(value)
        items = _elements(converter, list(zip(range(len(value)), value, types)), type_)
        return origin(items) if origin in (list, tuple, set, frozenset) else list(items)

    def mapping(value: Any, type_: Any) -> Any:
        if not isinstance(value, abc.Mapping):
            raise TypeError(f"expected a table, got {type(value).__name__} {value!r}")
        args = typing.get_args(type_)
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        keys = _elements(converter, [(k, k, key_type) for k in value], type_)
        values = _elements(converter, [(k, v, value_type) for k, v in value.items()], type_)
        return dict(zip(keys, values))

    converter.register_structure_hook_func(_is_sequence, sequence)
    converter.register_structure_hook_func(_is_mapping, mapping)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    for primitive in (str, int, float, bool):
        converter.register_structure_hook(primitive, _strict(primitive))
    converter.register_structure_hook(SecretRef, _secret_reference)
    _collections(converter)
    return converter


_converter = _make_converter()


def _problems(error: BaseException, path: str) -> list[str]:
    if isinstance(error, ForbiddenExtraKeysError):
        return [f"{path}: unknown key(s) {', '.join(sorted(error.extra_fields))}"]
    if isinstance(error, (ClassValidationError, IterableValidationError)):
        found: list[str] = []
        for sub in error.exceptions:
            note = next(
                (
                    n
                    for n in getattr(sub, "__notes__", [])
                    if hasattr(n, "name") or hasattr(n, "index")
                ),
                None,
            )
            if note is not None and hasattr(note, "name"):
                sub_path = f"{path}.{note.name}"
            elif note is not None:
                sub_path = f"{path}[{note.index}]"
            else:
                sub_path = path
            if isinstance(sub, KeyError):
                found.append(f"{sub_path}: required value is missing")
            else:
                found.extend(_problems(sub, sub_path))
        return found
    return [f"{path}: {error}"]


def structure_config(data: Mapping[str, Any], cls: type[_T], where: str) -> _T:
    """Build ``cls`` from user data or raise `ConfigError` listing every bad key by path.

    :param where: the path of ``data`` itself, e.g. ``step_operators.sagemaker``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table of settings, got {type(data).__name__}")
    try:
        return _converter.structure(dict(data), cls)
    except Exception as error:
        problems = _problems(error, where)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def unstructure_config(value: Any) -> Any:
    return _converter.unstructure(value)
