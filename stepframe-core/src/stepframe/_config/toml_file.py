"""Reading and editing ``stepframe.toml`` without losing the user's comments.

Edits hold an exclusive lock for their whole read-modify-write, so two CLI calls at the
same time both land, and are written to a temporary file that replaces the old one in a
single rename, so a crash mid-write never leaves half a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stepframe._files import file_lock, write_atomically
from stepframe.exceptions import ConfigError

__all__ = ["add_table", "edit_toml", "read_toml", "remove_table", "update_table"]


def _parse(text: str, path: Path) -> Any:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text)
    except ParseError as error:
        # tomlkit counts columns from 0; editors and compilers from 1.
        reason = re.sub(r" at line \d+ col \d+$", "", str(error))
        raise ConfigError(
            f"{path}:{error.line}:{error.col + 1}: invalid TOML: {reason}; fix the file by "
            "hand (stepframe only edits files it can parse)"
        ) from None


def read_toml(path: Path) -> Any:
    """The parsed document (a tomlkit document), or an empty one if the file is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    return _parse(text, path)


@contextmanager
def edit_toml(path: Path) -> Iterator[Any]:
    """Yield the document for changes; write it back only if the block succeeds.

    Validation belongs inside the block: raising there leaves the file untouched.
    """
    import tomlkit

    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        document = read_toml(path)
        before = tomlkit.dumps(document)
        yield document
        after = tomlkit.dumps(document)
        if after != before:
            write_atomically(path, after)


# tomlkit keeps the comment lines written just above a table header at the end of the
# *previous* table (or of the document's top level).  Appending a key or a table there
# would put it after those comments, under the wrong header; deleting the previous table
# would delete them.  These helpers move such comments along, so they stay right above
# the header they were written for.


def _header_comments(container: Any) -> list[tuple[None, Any]]:
    """Detach the comment lines (with blank lines among them) ending ``container``: those
    written above the next table's header.  Only blank lines at the end stay."""
    from tomlkit.items import Comment, Whitespace

    body = container.body
    start = len(body)
    while (
        start
        and body[start - 1][0] is None
        and isinstance(body[start - 1][1], (Comment, Whitespace))
    ):
        start -= 1
    trailing: list[tuple[None, Any]] = body[start:]
    if not any(isinstance(item, Comment) for _, item in trailing):
        return []
    del body[start:]  # key-less items only: the container's index of keys stays right
    return trailing


def _attach(container: Any, trailing: list[tuple[None, Any]]) -> None:
    for _, item in trailing:
        container.append(None, item)


def _tables_in_order(document: Any) -> list[Any]:
    """Every table with a header, in the order the file has them."""
    from tomlkit.items import Table

    found: list[Any] = []

    def walk(container: Any) -> None:
        for _, item in container.body:
            if isinstance(item, Table):
                if not item.is_super_table():
                    found.append(item)
                walk(item.value)

    walk(document)
    return found


def update_table(table: Any, values: dict[str, Any]) -> None:
    """Make ``table`` hold exactly ``values``: keys it no longer has go, changed values
    are replaced in place (keeping their comments), new keys follow the last key."""
    trailing = _header_comments(table.value)
    for key in [k for k in table.keys() if k not in values]:
        del table[key]
    for key, value in values.items():
        if key not in table or _plain(table[key]) != value:
            table[key] = value
    _attach(table.value, trailing)


def add_table(document: Any, section: str, name: str, values: dict[str, Any]) -> None:
    """Add ``[section.name]`` after the section's last table (or at the end of the file)."""
    import tomlkit
    from tomlkit.items import Table, Whitespace

    new = tomlkit.table()
    for key, value in values.items():
        new[key] = value
    if section not in document:
        document[section] = tomlkit.table(is_super_table=True)
    parent = document[section]
    children = [item for item in parent.values() if isinstance(item, Table)]
    if children:
        trailing = _header_comments(children[-1].value)
        if trailing:
            if not isinstance(trailing[0][1], Whitespace):
                new.add(tomlkit.nl())
            _attach(new.value, trailing)
        elif _tables_in_order(document)[-1] is not children[-1]:
            new.add(tomlkit.nl())  # a blank line before the table that follows
    parent[name] = new


def remove_table(document: Any, section: str, name: str) -> None:
    """Delete ``[section.name]``, keeping the comments written above the next header."""
    parent = document[section]
    target = parent[name]
    order = _tables_in_order(document)
    position = next((i for i, table in enumerate(order) if table is target), None)
    trailing = _header_comments(target.value)
    del parent[name]
    if trailing and position:
        previous = order[position - 1].value
        if previous.body and _is_blank(previous.body[-1]) and _is_blank(trailing[0]):
            trailing = trailing[1:]  # one blank line between the tables is enough
        _attach(previous, trailing)


def _is_blank(entry: tuple[Any, Any]) -> bool:
    from tomlkit.items import Whitespace

    return entry[0] is None and isinstance(entry[1], Whitespace)


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value
