"""Validating user-supplied configuration and settings against attrs classes.

cattrs does the structuring; this module makes it strict (a string is not an int) and
turns its errors into one line per problem, each with the path of the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

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


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    for primitive in (str, int, float, bool):
        converter.register_structure_hook(primitive, _strict(primitive))
    converter.register_structure_hook(SecretRef, _secret_reference)
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
