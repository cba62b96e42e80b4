"""What a flavor's configuration and settings look like, for people: fields with their
types, defaults and one-line help (from the attrs class's ``:param name:`` docstring
lines), and the nearest valid option for a misspelt one.

``stepframe flavor describe`` prints it, ``stepframe <kind> register --flavor F --help``
lists the same options, and an unknown ``--option`` is answered with the nearest valid one.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from typing import Any

import attrs

from stepframe._types import Flavor

__all__ = ["FieldInfo", "describe_flavor", "fields_of", "unknown_options"]

_PARAM = re.compile(r"^\s*:param\s+(\w+):\s*(.*)$")


@attrs.frozen
class FieldInfo:
    """One field of a flavor's config or settings class.

    :param name: the field's name (``--name-with-dashes`` on the command line).
    :param type: its type, as written in the class.
    :param default: its default, shown as Python would; None when the field is required.
    :param help: the first sentence of its ``:param:`` line, or empty.
    """

    name: str
    type: str
    default: str | None
    help: str = ""

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def _help_lines(cls: type) -> dict[str, str]:
    """``:param name: text`` from the class docstring, continuation lines joined."""
    found: dict[str, str] = {}
    current = None
    for line in (inspect.getdoc(cls) or "").splitlines():
        match = _PARAM.match(line)
        if match:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif current and line.startswith((" ", "\t")) and line.strip():
            found[current] += " " + line.strip()
        else:
            current = None
    return found


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")


def _type_name(hint: Any) -> str:
    # On Python 3.10 `list[str]` passes isinstance(..., type) too: only a bare class is
    # named by its __name__.
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def fields_of(cls: type | None) -> list[FieldInfo]:
    """The fields of an attrs config or settings class, in declaration order."""
    if cls is None or not attrs.has(cls):
        return []
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a forward reference that does not resolve: show what is written
        hints = {}
    helps = _help_lines(cls)
    infos = []
    for field in attrs.fields(cls):
        if field.default is attrs.NOTHING:
            default = None
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = repr(field.default.factory())
        else:
            default = repr(field.default)
        hint = hints.get(field.name, field.type)
        infos.append(
            FieldInfo(
                field.name, _type_name(hint), default, _first_sentence(helps.get(field.name, ""))
            )
        )
    return infos


def _table(fields: list[FieldInfo], indent: str, as_options: bool) -> list[str]:
    if not fields:
        return [f"{indent}(none)"]
    lines = []
    for info in fields:
        name = info.option if as_options else info.name
        default = "required" if info.default is None else f"default {info.default}"
        lines.append(f"{indent}{name}  ({info.type}, {default})")
        if info.help:
            lines.append(f"{indent}    {info.help}")
    return lines


def describe_flavor(flavor: Flavor, plugin: str | None, distribution: str | None) -> str:
    """What ``stepframe flavor describe`` prints for one flavor."""
    kind = flavor.kind.value.replace("_", " ")
    source = f"plugin {plugin!r}" if plugin else "an unknown plugin"
    source += f" (distribution {distribution})" if distribution else ""
    lines = [f"{kind} flavor {flavor.name!r}, from {source}"]
    if flavor.description:
        lines.append(f"  {flavor.description}")
    if flavor.uri_schemes:
        lines.append(f"  URI schemes: {', '.join(flavor.uri_schemes)}")
    if flavor.kind.value == "step_operator":
        image = "yes" if flavor.needs_image else "no"
        if flavor.needs_image and flavor.image_platform:
            image += f", built for {flavor.image_platform}"
        lines.append(
            f"  runs steps in an image: {image}; jobs outlive "
            f"the client: {'yes' if flavor.jobs_outlive_client else 'no'}"
        )
    command = flavor.kind.value.replace("_", "-")
    lines.append(
        f"config (`stepframe {command} register NAME --flavor {flavor.name} --option value`):"
    )
    lines += _table(fields_of(flavor.config_class), "  ", as_options=True)
    if flavor.settings_class is not None:
        lines.append(f'settings (`@step(settings={{"{flavor.name}": {{...}}}})`, run configs):')
        lines += _table(fields_of(flavor.settings_class), "  ", as_options=False)
    return "\n".join(lines)


def option_lines(flavor: Flavor) -> list[str]:
    """The flavor's config options, for ``--help``."""
    return _table(fields_of(flavor.config_class), "  ", as_options=True)


def unknown_options(
    given: list[str], cls: type | None, allowed: tuple[str, ...] = ()
) -> str | None:
    """A message for the options in ``given`` (field names) that ``cls`` does not have,
    with the nearest valid option and the list of valid ones; None when all are known."""
    valid = [info.name for info in fields_of(cls)] + list(allowed)
    unknown = [name for name in given if name not in valid]
    if not unknown or cls is None:
        return None
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f" (did you mean --{close[0].replace('_', '-')}?)" if close else ""
        parts.append(f"{name}{hint}")
    choices = ", ".join("--" + name.replace("_", "-") for name in valid) or "none"
    return f"unknown key(s) {', '.join(parts)}; valid options: {choices}"
