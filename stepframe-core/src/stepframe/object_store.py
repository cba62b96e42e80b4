"""What every artifact store over an object service (S3, Cloud Storage, Blob Storage) does
alike, so each plugin writes only the calls that differ.

- `STORE_MARKER` / `RESERVED_PREFIX`: the object at a store's root that marks it, and the
  names stepframe keeps for itself (the local store uses the same).
- `check_in_store`: refuse a URI outside a store's root, or one naming a reserved object.
- `find_store_root`: the root of the store an object URI is in (the nearest marker above
  it), or a configured root, marked on first open.
- `PartWriter`: one new object written in parts, a bounded number of parts sending at
  once from worker threads while the next one fills; the plugin says how a part is sent
  and how the object is committed; ``committing()`` is ``open_write``'s stream.
- `PartReader`: one version of one object read in ranges, a bounded number of them
  fetched at once by worker threads while the reader takes them in order; a dropped
  connection is picked up where it broke.  The plugin says how one range is asked for
  (pinned to the version); it is ``open_read``'s stream.
- `exists_error`: the error for a write to a URI that holds an object already.

Part of the public API: plugins import them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from stepframe._artifacts.local import STORE_MARKER
from stepframe._artifacts.part_reader import PartReader, RangeBody
from stepframe._artifacts.part_writer import PartWriter
from stepframe.exceptions import ArtifactError, ArtifactExistsError, ConnectorError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "RESERVED_PREFIX",
    "STORE_MARKER",
    "ObjectLocation",
    "PartReader",
    "PartWriter",
    "RangeBody",
    "check_in_store",
    "exists_error",
    "find_store_root",
]

#: Object names starting with this are stepframe's own (the root marker), never artifacts.
RESERVED_PREFIX = ".stepframe-"
_MARKER_TEXT = b"This prefix is a stepframe artifact store.\n"


class ObjectLocation(Protocol):
    """A place in an object service: a bucket (or account and container) and an object
    name or prefix, ``""`` for the bucket itself.  ``uri`` is canonical: no trailing
    slash, the bucket alone when the name is empty."""

    @property
    def uri(self) -> str: ...

    def child(self, part: str, /) -> Self:
        """The name ``part`` below this one, as below a folder."""
        ...

    def ancestors(self) -> list[Self]:
        """This location and every "folder" above it, nearest first, the bucket last."""
        ...


Location = TypeVar("Location", bound=ObjectLocation)


def check_in_store(root: ObjectLocation, location: Location, uri: str) -> Location:
    """``location`` (parsed from ``uri``), refused unless it names an object below
    ``root`` that is not one of stepframe's own.

    :raises ArtifactError: one line naming the URI and what to do instead.
    """
    if not location.uri.startswith(f"{root.uri}/"):
        raise ArtifactError(
            f"{uri} is outside the artifact store at {root.uri}; open the store that URI "
            "belongs to, or build URIs with store.uri_for()"
        )
    if location.uri.rpartition("/")[2].startswith(RESERVED_PREFIX):
        raise ArtifactError(
            f"{uri}: names starting with {RESERVED_PREFIX!r} are reserved for stepframe's "
            "own objects; choose another object name"
        )
    return location


def find_store_root(
    location: Location,
    *,
    is_object: Callable[[Location], bool],
    write_new: Callable[[Location, bytes], None],
) -> Location:
    """The root of the store that ``location``, a store root or an object in one, is in.

    An existing object (a job's launch manifest) belongs to the store of the nearest
    marker above it, or failing that to a store rooted at its bucket.  Anything else is a
    store root (the stack's configured path) and is used as given, even below another
    store's root: its marker is written, so that object URIs below it find it later.

    :param is_object: whether an object is stored at a location.
    :param write_new: store bytes as a new object; raises `ArtifactExistsError` when the
        name is taken and `ConnectorError` when the credentials may not write.  Neither
        stops the store opening: another process marked the root first, or the caller
        may only read (a user looking at runs), and the marker only helps jobs find it.
    """
    if is_object(location.child(STORE_MARKER)):
        return location  # a root, marked when it was first opened
    places = location.ancestors()
    if len(places) > 1 and is_object(location):
        # An object: a job opening its store by its manifest's URI.
        for candidate in places[1:]:
            if is_object(candidate.child(STORE_MARKER)):
                return candidate
        return places[-1]
    # A configured root.  Walking up from it would swap a nested root for a store marked
    # above it.
    try:
        write_new(location.child(STORE_MARKER), _MARKER_TEXT)
    except (ArtifactExistsError, ConnectorError):
        pass
    return location


def exists_error(uri: str) -> ArtifactExistsError:
    """The error for a write to a URI that already holds an object."""
    return ArtifactExistsError(
        f"an artifact is already stored at {uri}; artifacts are write-once, so write to a "
        "new URI (a new run or attempt) instead of overwriting"
    )
