"""What a name may be, and the check every path built from a name goes through.

Names end up in paths and keys.  A step's name is a folder of its run in the artifact
store (``runs/RUN/STEP/attempt-1/launch.json``) and part of its job's temporary folder; an
output's name is a file name there; a component's or stack's name is a table key in
``stepframe.toml``, a word on the command line, and the seed of resource names plugins
derive from it; a secret's name is a key in the user's secrets file.  So a name is
checked where it is given (a step when its pipeline compiles, a component or a stack when
it is registered or read from ``stepframe.toml``, a secret when it is stored), and a bad
one is refused there, in one line, instead of failing half-way through a run or writing
outside the folder it belongs in.

The rules:

- **step and output names**: an ASCII letter or ``_`` first, then ASCII letters, digits,
  ``_``, ``.`` and ``-``; at most 100 characters.  Every ASCII Python function name is
  one; give a step whose function name is not (or is longer) ``@step(name=...)``.
- **component and stack names**: an ASCII letter or digit first, then ASCII letters,
  digits, ``_``, ``.`` and ``-``; at most 63 characters.
- **secret names**: as component names, at most 128 characters.

Why these: without ``/`` a name is one path segment and cannot climb out of its folder
(``..`` needs a name to start with a dot, which none may); without spaces, quotes or
control characters it is one word in a shell and safe in a URI, an S3 key or a TOML key;
and the lengths leave room, within the 255 bytes a file name may have on every common file
system, for what stepframe adds around a name (``_2`` for a step called twice,
``stepframe-STEP-XXXXXXXX`` scratch folders, ``.log`` files).  63 is the longest DNS
label, the strictest limit a plugin is likely to derive a resource name under.

`safe_segments` is the last line of defence: code that builds a path or an object key
from names passes the parts through it, so a name that reached it without being checked
(a run id typed on the command line, a plugin's input) still cannot escape or overflow.
"""

from __future__ import annotations

import re

from stepframe.exceptions import ConfigError, PipelineDefinitionError, UsageError

__all__ = [
    "COMPONENT_NAME_RULE",
    "MAX_SEGMENT_BYTES",
    "SECRET_NAME_RULE",
    "STEP_NAME_RULE",
    "check_component_name",
    "check_step_name",
    "is_secret_name",
    "safe_segments",
    "shown",
]

MAX_STEP_NAME = 100
MAX_COMPONENT_NAME = 63
MAX_SECRET_NAME = 128
# A file name's limit on ext4, xfs, btrfs, APFS and NTFS (in bytes, or UTF-16 units).
MAX_SEGMENT_BYTES = 255

_STEP_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_.-]{{0,{MAX_STEP_NAME - 1}}}")
_COMPONENT_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_COMPONENT_NAME - 1}}}")
_SECRET_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_SECRET_NAME - 1}}}")

STEP_NAME_RULE = (
    "a step or output name starts with a letter or '_' and has only letters, digits, "
    f"'_', '.' and '-' (at most {MAX_STEP_NAME} characters)"
)
COMPONENT_NAME_RULE = (
    "a name starts with a letter or digit and has only letters, digits, '_', '.' and '-' "
    f"(at most {MAX_COMPONENT_NAME} characters)"
)
SECRET_NAME_RULE = (
    "use letters, digits, '.', '_' and '-', starting with a letter or digit "
    f"(at most {MAX_SECRET_NAME} characters)"
)


def shown(name: object, limit: int = 40) -> str:
    """``name`` quoted for a one-line message, shortened if long (a 5000-character name
    must not become a 5000-character error)."""
    text = str(name)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def check_step_name(name: object, what: str = "step", fix: str = "@step(name=...)") -> str:
    """``name`` if it is a valid step (or output) name, else `PipelineDefinitionError`.

    :param what: what the name names, for the message (``"pipeline 'p': step"``).
    :param fix: where the user sets a valid one.
    """
    if isinstance(name, str) and _STEP_NAME.fullmatch(name):
        return name
    if not isinstance(name, str):
        raise PipelineDefinitionError(
            f"{what} name {name!r} is a {type(name).__name__}, not a string; {STEP_NAME_RULE}"
        )
    raise PipelineDefinitionError(
        f"{what} name {shown(name)} is invalid: {STEP_NAME_RULE}; set a valid one with {fix}"
    )


def check_component_name(name: object, where: str) -> str:
    """``name`` if it is a valid component or stack name, else `ConfigError`.

    :param where: what names it, for the message: ``"step operator"``, ``"stacks"``...
    """
    if isinstance(name, str) and _COMPONENT_NAME.fullmatch(name):
        return name
    raise ConfigError(f"{where}: {shown(name)} is not a valid name: {COMPONENT_NAME_RULE}")


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.fullmatch(name))


def safe_segments(*parts: str) -> tuple[str, ...]:
    """``parts`` unchanged if each is safe as one segment of a path or object key.

    Refuses (with `UsageError`) an empty part, ``.`` or ``..``, a ``/`` or ``\\``, a NUL
    or other control character, and a part longer than `MAX_SEGMENT_BYTES` in UTF-8.
    """
    for part in parts:
        problem = _segment_problem(part)
        if problem:
            raise UsageError(f"{shown(part)} cannot be part of a path: {problem}")
    return parts


def _segment_problem(part: object) -> str | None:
    if not isinstance(part, str):
        return f"it is a {type(part).__name__}, not a string"
    if part in ("", ".", ".."):
        return "it is empty, '.' or '..'"
    if "/" in part or "\\" in part:
        return "it contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in part):
        return "it contains a control character"
    if len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return f"it is longer than {MAX_SEGMENT_BYTES} bytes"
    return None
