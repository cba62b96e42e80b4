"""Every ``min``, ``max``, ``pattern`` and ``enum`` of SageMaker's API model, checked over
a whole CreateTrainingJob request.

botocore's own ``ParamValidator`` checks types, required members and minimums only, so
an instance type with a typo, a 3000-character hyperparameter or 21 channels would go
out and come back as a ValidationException (after the image was built and pushed).  The
limits are read from the loaded service model, never remembered here, so they follow
the botocore that is installed.  Each problem names the stepframe setting the value came
from (`setting_for`), the value, the rule and what to do.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["Path", "model_problems"]

Path = tuple[str | int, ...]

# Java's Unicode classes in the model's patterns, as Python's re understands them (inside
# a character class, where the model uses them).  \p{Z} is Unicode's separators.
_JAVA_CLASSES = {
    r"\p{L}": r"^\W\d_",  # only used alone in a class: turned into a negated class below
    r"\p{N}": r"\d",
    r"\p{Z}": r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000",
    r"\p{Alnum}": r"a-zA-Z0-9",
}
_LETTER_IN_CLASS = re.compile(r"\[([^\]]*)\\p\{L\}([^\]]*)\]")

_MAX_SHOWN = 60


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """The model's (Java) pattern as a Python regex; None if it cannot be translated
    (then the rule is left to SageMaker rather than refusing valid input)."""
    text = pattern
    # [\p{L}...] "a letter or one of these": letters are \w minus digits and _, which
    # Python's re has no class for; (?:[^\W\d_]|[rest]) says the same.
    found = _LETTER_IN_CLASS.search(text)
    while found is not None:
        rest = found.group(1) + found.group(2)
        for java, python in _JAVA_CLASSES.items():
            rest = rest.replace(java, python)
        text = f"{text[: found.start()]}(?:[^\\W\\d_]|[{rest}]){text[found.end() :]}"
        found = _LETTER_IN_CLASS.search(text)
    for java, python in _JAVA_CLASSES.items():
        text = text.replace(java, python)
    try:
        return re.compile(text)
    except re.error:
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 4] + "...'"


def _where(path: Path) -> str:
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".")


def model_problems(
    request: Mapping[str, Any],
    shape: Any,
    setting_for: Callable[[Path], str],
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    """Each value of ``request`` against its shape's rules in SageMaker's model.

    :param request: the whole CreateTrainingJob request.
    :param shape: CreateTrainingJob's input shape (``operation_model(...).input_shape``).
    :param setting_for: the stepframe setting a request path came from
        (``settings.sagemaker.instance_type``), for the message.
    :param skip: top-level members not to check (checked elsewhere, with a better message).
    :return: one line per broken rule.
    """
    problems: list[str] = []
    _walk({k: v for k, v in request.items() if k not in skip}, shape, (), setting_for, problems)
    return problems


def _walk(
    value: Any, shape: Any, path: Path, setting_for: Callable[[Path], str], problems: list[str]
) -> None:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _walk(value[name], member, (*path, name), setting_for, problems)
    elif kind == "list" and isinstance(value, Sequence) and not isinstance(value, str):
        _check_size(len(value), shape, path, "entries", setting_for, problems)
        for index, item in enumerate(value):
            _walk(item, shape.member, (*path, index), setting_for, problems)
    elif kind == "map" and isinstance(value, Mapping):
        _check_size(len(value), shape, path, "entries", setting_for, problems)
        for key, item in value.items():
            _walk(key, shape.key, (*path, f"key {key!r}"), setting_for, problems)
            _walk(item, shape.value, (*path, str(key)), setting_for, problems)
    elif kind == "string" and isinstance(value, str):
        _check_string(value, shape, path, setting_for, problems)
    elif kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        _check_number(value, shape, path, setting_for, problems)


def _label(path: Path, setting_for: Callable[[Path], str]) -> str:
    """The setting, and for a map's key the key itself (``environment key '1X'``)."""
    if path and isinstance(path[-1], str) and path[-1].startswith("key "):
        return f"{setting_for(path[:-1])} {path[-1]}"
    return setting_for(path)


def _api(path: Path) -> str:
    return f"CreateTrainingJob {_where(tuple(p for p in path if not str(p).startswith('key ')))}"


def _check_size(
    size: int,
    shape: Any,
    path: Path,
    noun: str,
    setting_for: Callable[[Path], str],
    problems: list[str],
) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if high is not None and size > high:
        problems.append(
            f"{_label(path, setting_for)} has {size} {noun}; SageMaker accepts at most "
            f"{high} ({_api(path)}): remove {size - high}"
        )
    elif low is not None and size < low:
        problems.append(
            f"{_label(path, setting_for)} has {size} {noun}; SageMaker needs at least {low} "
            f"({_api(path)})"
        )


def _check_string(
    value: str, shape: Any, path: Path, setting_for: Callable[[Path], str], problems: list[str]
) -> None:
    label = _label(path, setting_for)
    # A map's key is in the label already; other values are shown after it.
    shown = "" if path and str(path[-1]).startswith("key ") else f" {_shown(value)}"
    enum = list(getattr(shape, "enum", None) or [])
    if enum and value not in enum:
        close = difflib.get_close_matches(value, enum, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else _choices(enum)
        if shape.name == "TrainingInstanceType":
            what = "is not a SageMaker training instance type"
        else:
            what = f"is not one of SageMaker's {shape.name} values ({_api(path)})"
        problems.append(f"{label}{shown} {what}; {hint}")
        return
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if high is not None and len(value) > high:
        problems.append(
            f"{label} is {len(value)} characters; SageMaker accepts at most {high} "
            f"({_api(path)}): shorten it or pass the data as a step input"
        )
        return
    if low is not None and len(value) < low:
        problems.append(
            f"{label}{shown} is {len(value)} characters; SageMaker needs at least "
            f"{low} ({_api(path)})"
        )
        return
    pattern = shape.metadata.get("pattern")
    if pattern and pattern not in (".*", "[\\S\\s]*", ".+"):
        compiled = _compiled(pattern)
        if compiled is not None and compiled.fullmatch(value) is None:
            problems.append(
                f"{label}{shown} does not match SageMaker's pattern {pattern} "
                f"({_api(path)}); change it to match"
            )


def _check_number(
    value: int, shape: Any, path: Path, setting_for: Callable[[Path], str], problems: list[str]
) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if high is not None and value > high:
        problems.append(
            f"{_label(path, setting_for)} is {value}; SageMaker accepts at most {high} "
            f"({_api(path)})"
        )
    elif low is not None and value < low:
        problems.append(
            f"{_label(path, setting_for)} is {value}; SageMaker needs at least {low} ({_api(path)})"
        )


def _choices(enum: Sequence[str]) -> str:
    if len(enum) <= 8:
        return "use one of " + ", ".join(enum)
    return f"see the {len(enum)} values in SageMaker's CreateTrainingJob reference"
