"""The built-in materializers and the registry that picks one for a value.

Order matters: plugin materializers first (a plugin can take over any type), then the
exact formats (bytes, paths, numpy arrays), then JSON for plain data, and pickle last,
with a warning, because pickles break across library versions and run code when loaded.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import posixpath
import tarfile
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, BinaryIO

from stepframe._artifacts.materializer import Materializer
from stepframe.exceptions import ArtifactError, NoMaterializerError

__all__ = [
    "CHUNK_SIZE",
    "BytesMaterializer",
    "JsonMaterializer",
    "MaterializerRegistry",
    "NumpyMaterializer",
    "PathMaterializer",
    "PickleFallbackWarning",
    "PickleMaterializer",
    "storing_output",
    "type_name",
]

# Values are streamed in pieces of this size, so memory does not grow with the value.
CHUNK_SIZE = 1 << 20

# Fixed rather than pickle.HIGHEST_PROTOCOL, so a newer Python on the client still
# writes pickles that an older Python in the job can read.
PICKLE_PROTOCOL = 5


def type_name(value: object) -> str:
    """The qualified name of a value's type, as recorded in `ArtifactRef.type_name`."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class PickleFallbackWarning(UserWarning):
    """A value was stored with pickle because no other materializer handles its type.

    Shown as one line, ``stepframe: warning: step 'S' output 'O': ...``, rather than with
    the file and line of stepframe's code that stored it, which would tell the user
    nothing; it is a warning all the same, for filters and ``pytest.warns``.
    """


# What is being stored, for the warning: set around each output a step stores.
_storing: ContextVar[str | None] = ContextVar("stepframe_storing", default=None)


@contextmanager
def storing_output(step: str, output: str) -> Iterator[None]:
    """Name the step output stored within the block in a `PickleFallbackWarning`."""
    token = _storing.set(f"step {step!r} output {output!r}")
    try:
        yield
    finally:
        _storing.reset(token)


def _one_line_pickle_warnings() -> None:
    """Show `PickleFallbackWarning` as one line; every other warning as before."""
    previous = warnings.formatwarning

    def formatwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        if issubclass(category, PickleFallbackWarning):
            return f"stepframe: warning: {message}\n"
        return previous(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


_one_line_pickle_warnings()


# -------------------------------------------------------------------------------------
# JSON and bytes
# -------------------------------------------------------------------------------------

_JSON_SCALARS = (type(None), bool, int, float, str)


def _is_json_value(value: object, active: set[int]) -> bool:
    """Whether ``value`` survives a JSON round trip (tuples aside, which become lists).

    Exact types only: an ``IntEnum`` or ``OrderedDict`` would come back as a plain
    ``int`` or ``dict``, so those go to a materializer that keeps the type.
    """
    if type(value) in _JSON_SCALARS:
        return True
    if type(value) not in (list, tuple, dict) or id(value) in active:
        return False  # not plain data, or a container that contains itself
    active.add(id(value))
    try:
        if isinstance(value, dict):
            return all(type(k) is str and _is_json_value(v, active) for k, v in value.items())
        assert isinstance(value, (list, tuple))
        return all(_is_json_value(item, active) for item in value)
    finally:
        active.discard(id(value))


class JsonMaterializer(Materializer):
    """Plain data: None, bool, int, float, str, and lists, tuples and str-keyed dicts of them.

    JSON is readable by any tool and stable across Python versions.  The value decides,
    not the annotation: a ``tuple[int, int]`` output is stored as a JSON list, and the
    loader returns the list (turning it back into the hinted type happens elsewhere).
    """

    name = "json"

    def can_save(self, value: object, annotation: Any) -> bool:
        try:
            return _is_json_value(value, set())
        except RecursionError:
            return False

    def save(self, value: object, stream: BinaryIO) -> None:
        # The C encoder builds the whole text, but is several times faster than the
        # pure-Python iterencode; JSON outputs are small compared with arrays and files.
        data = json.dumps(value, ensure_ascii=False).encode("utf-8")
        _write_chunked(stream, data)

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        return json.loads(stream.read().decode("utf-8"))


class BytesMaterializer(Materializer):
    """``bytes`` and ``bytearray``, stored raw."""

    name = "bytes"

    def can_save(self, value: object, annotation: Any) -> bool:
        return isinstance(value, (bytes, bytearray))

    def save(self, value: object, stream: BinaryIO) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"the bytes materializer cannot store a {type_name(value)}")
        _write_chunked(stream, value)

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        data = stream.read()
        return bytearray(data) if annotation is bytearray else data


def _write_chunked(stream: BinaryIO, data: bytes | bytearray) -> None:
    view = memoryview(data)
    stream.writelines(view[start : start + CHUNK_SIZE] for start in range(0, len(view), CHUNK_SIZE))


# -------------------------------------------------------------------------------------
# Files and directories
# -------------------------------------------------------------------------------------


class PathMaterializer(Materializer):
    """A ``pathlib.Path`` to a file or directory, stored as a tar stream of its contents.

    Both directions stream through `tarfile`'s ``|`` modes, so memory stays flat however
    large the file.  Loading extracts into a new directory below ``scratch_dir`` and
    returns the path of the extracted file or directory, under its original name.
    """

    name = "path"

    def can_save(self, value: object, annotation: Any) -> bool:
        return isinstance(value, Path)

    def save(self, value: object, stream: BinaryIO) -> None:
        if not isinstance(value, PurePath):
            raise TypeError(f"the path materializer cannot store a {type_name(value)}")
        if not os.path.exists(value):
            raise ArtifactError(
                f"output path {value} does not exist; the step must create the file or "
                "directory before returning its path"
            )
        # The name is kept; a symlinked output is stored by its content.
        arcname = os.path.basename(os.path.abspath(value)) or "root"
        with tarfile.open(fileobj=stream, mode="w|", bufsize=CHUNK_SIZE) as archive:
            archive.add(os.path.realpath(value), arcname=arcname, filter=_refuse_unsafe_on_save)

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        destination = Path(tempfile.mkdtemp(prefix="path-", dir=scratch_dir))
        tops: set[str] = set()
        with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK_SIZE) as archive:
            members = _checked_members(archive, tops)
            try:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(destination, members=members, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: our own checks are the only guard
                    archive.extractall(destination, members=members)
            except _FILTER_ERRORS as error:
                raise ArtifactError(f"refusing to extract a path artifact: {error}") from None
        if not tops:
            raise ArtifactError("the path artifact is an empty archive; it holds no file")
        return destination / tops.pop()


# Raised by the "data" extraction filter; absent (so never caught) on older Pythons.
_FILTER_ERRORS: tuple[type[Exception], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` could write outside its directory, or None if it is safe."""
    name = PurePosixPath(member.name)
    if not name.parts or name.is_absolute() or ".." in name.parts:
        return f"member {member.name!r} has an absolute path or '..'"
    if member.issym() or member.islnk():
        # Symlink targets are relative to the link's directory, hard links to the root.
        base = str(name.parent) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if posixpath.isabs(member.linkname) or target == ".." or target.startswith("../"):
            return f"link {member.name!r} points outside the archive (to {member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        return f"member {member.name!r} is a device or other special file"
    return None


def _checked_members(archive: tarfile.TarFile, tops: set[str]) -> Iterator[tarfile.TarInfo]:
    """The archive's members, refusing unsafe ones and recording the top-level name."""
    for member in archive:
        reason = _unsafe_reason(member)
        if reason is not None:
            raise ArtifactError(f"refusing to extract a path artifact: {reason}")
        tops.add(PurePosixPath(member.name).parts[0])
        if len(tops) > 1:
            raise ArtifactError(
                f"a path artifact must hold one file or directory, found {sorted(tops)}"
            )
        yield member


def _refuse_unsafe_on_save(member: tarfile.TarInfo) -> tarfile.TarInfo:
    reason = _unsafe_reason(member)
    if reason is not None:
        raise ArtifactError(
            f"cannot store the output path: {reason}; make the links relative and inside "
            "the directory, or copy the files they point to"
        )
    return member


# -------------------------------------------------------------------------------------
# numpy
# -------------------------------------------------------------------------------------


class NumpyMaterializer(Materializer):
    """A ``numpy.ndarray`` or numpy scalar in ``.npy`` format, without pickle.

    numpy is imported only for values whose type comes from numpy (so it is already
    loaded) and when such an artifact is loaded.  Arrays of Python objects are left to
    pickle.  Scalars are stored as 0-d arrays, and 0-d arrays load as scalars.  This
    calls the ``.npy`` writer and reader that ``np.save`` and ``np.load`` use, because
    ``np.load`` seeks back in its stream and artifact streams only go forward.
    """

    name = "numpy"

    def can_save(self, value: object, annotation: Any) -> bool:
        if type(value).__module__ != "numpy":
            return False
        import numpy as np  # free: numpy made this value, so it is imported already

        if type(value) is not np.ndarray and not isinstance(value, np.generic):
            return False  # subclasses (matrix, memmap) would not come back as themselves
        return not value.dtype.hasobject

    def save(self, value: object, stream: BinaryIO) -> None:
        import numpy as np
        from numpy.lib import format as npy_format

        npy_format.write_array(stream, np.asarray(value), allow_pickle=False)

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        try:
            from numpy.lib import format as npy_format
        except ImportError:
            raise ArtifactError(
                "this artifact is a numpy array, but numpy is not installed; pip install "
                "'stepframe-core[numpy]' (in the job's image too, for remote steps)"
            ) from None
        array = npy_format.read_array(stream, allow_pickle=False)
        if array.ndim == 0:
            scalar: object = array[()]
            return scalar
        return array


# -------------------------------------------------------------------------------------
# pickle, the last resort
# -------------------------------------------------------------------------------------


class PickleMaterializer(Materializer):
    """Anything picklable, with a `PickleFallbackWarning` each time it is used.

    Pickles can stop loading when a library changes, and loading one runs code; they are
    fine within a project's own store, but a dedicated materializer is always better.
    """

    name = "pickle"

    def can_save(self, value: object, annotation: Any) -> bool:
        return True

    def save(self, value: object, stream: BinaryIO) -> None:
        kind = type_name(value)
        try:
            pickle.dump(value, stream, protocol=PICKLE_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise NoMaterializerError(
                f"cannot store a value of type {kind}: no materializer handles it and it "
                f"cannot be pickled ({error}); register a materializer for {kind} through "
                "the register_materializers hook, or return a JSON-friendly value "
                "(dict, list, str, int, float, bool, None) instead"
            ) from error
        what = _storing.get()
        warnings.warn(
            f"{what + ': ' if what else ''}stored a {kind} with pickle, which may stop "
            "loading when libraries change; register a materializer for the type "
            "(register_materializers hook) or return JSON-friendly data (dict, list, str, "
            "number, bool, None)",
            PickleFallbackWarning,
            stacklevel=2,
        )

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        value: object = pickle.load(stream)
        return value


# -------------------------------------------------------------------------------------
# The registry
# -------------------------------------------------------------------------------------


class MaterializerRegistry:
    """Picks the materializer that stores a value, and finds the one that loads an artifact.

    :param plugin_materializers: from the ``register_materializers`` hook; asked before
        the built-in ones, in order.  If two plugins use the same name, the first wins
        (with a warning), since an artifact records only the name.
    """

    def __init__(self, plugin_materializers: Sequence[Materializer] = ()) -> None:
        builtins: tuple[Materializer, ...] = (
            BytesMaterializer(),
            PathMaterializer(),
            NumpyMaterializer(),
            JsonMaterializer(),
            PickleMaterializer(),
        )
        plugins = tuple(m for m in plugin_materializers if _has_name(m))
        self.materializers: tuple[Materializer, ...] = (*plugins, *builtins)
        self._by_name: dict[str, Materializer] = {}
        for materializer in self.materializers:
            first = self._by_name.setdefault(materializer.name, materializer)
            if first is not materializer and materializer in plugins:
                warnings.warn(
                    f"materializers {type(first).__qualname__} and "
                    f"{type(materializer).__qualname__} are both named {materializer.name!r}; "
                    f"artifacts named {materializer.name!r} load with the first. "
                    "Uninstall one of the plugins or give one another name",
                    stacklevel=2,
                )

    def for_value(self, value: object, annotation: Any = inspect.Parameter.empty) -> Materializer:
        """The first materializer that stores ``value`` (pickle, if nothing else does)."""
        for materializer in self.materializers:
            if materializer.can_save(value, annotation):
                return materializer
        raise NoMaterializerError(  # only reachable without the pickle fallback
            f"no materializer stores a value of type {type_name(value)}"
        )

    def by_name(self, name: str) -> Materializer:
        """The materializer an artifact was written with, by its recorded name."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ArtifactError(
                f"no materializer named {name!r} is installed, so this artifact cannot be "
                "loaded; it was written by a plugin that is missing here. Install the "
                "plugin that registers it (in the job's image too, for remote steps). "
                f"Installed materializers: {', '.join(sorted(self._by_name))}"
            ) from None


def _has_name(materializer: Materializer) -> bool:
    """Whether a plugin's materializer has the name artifacts record; warns if not."""
    name = getattr(materializer, "name", None)
    if isinstance(name, str) and name:
        return True
    warnings.warn(
        f"ignoring materializer {type(materializer).__qualname__}: it has no name; its "
        "plugin must set the class attribute `name` (a non-empty string)",
        stacklevel=3,
    )
    return False
