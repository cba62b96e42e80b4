"""Saving and loading values as artifacts, with sha256 and size checked on the way.

The hash is computed as the bytes stream past, never by buffering a value, so a
1 GiB file costs a chunk of memory.  Every load hashes everything it reads and compares
with the `ArtifactRef`: a corrupted or truncated artifact raises instead of quietly
becoming a step's input.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from stepframe._artifacts.materializers import CHUNK_SIZE, MaterializerRegistry, type_name
from stepframe._artifacts.store import ArtifactStore
from stepframe._storage import disk_is_full, is_storage_oserror, storage_error
from stepframe._types import ArtifactRef
from stepframe.exceptions import ArtifactCorruptedError, ArtifactError, NoMaterializerError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["load_artifact", "save_artifact", "verify_artifact"]

# Where loads put the files a materializer unpacks, as a full-disk error names it.
_SCRATCH = "the scratch folder for loaded artifacts"


class _HashingWriter(io.BufferedIOBase):
    """Passes writes through to a stream, hashing and counting the bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        self.size += view.nbytes
        self._raw.write(view)
        return view.nbytes


class _HashingReader(io.BufferedIOBase):
    """Passes reads through from a stream, hashing and counting the bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def drain(self) -> None:
        """Read what the materializer left (tar padding, say), so the hash covers it all."""
        while self.read(CHUNK_SIZE):
            pass


def save_artifact(
    store: ArtifactStore,
    uri: str,
    value: object,
    annotation: Any,
    registry: MaterializerRegistry,
) -> ArtifactRef:
    """Store ``value`` at ``uri`` with the materializer the registry picks for it.

    :raises NoMaterializerError: nothing can store the value; the message names its type
        (callers add the step and output name).
    :raises ArtifactExistsError: ``uri`` is already taken.
    """
    materializer = registry.for_value(value, annotation)
    kind = type_name(value)
    with store.open_write(uri) as raw:
        writer = _HashingWriter(raw)
        try:
            materializer.save(value, cast(BinaryIO, writer))
        except NoMaterializerError as error:
            if kind in str(error):
                raise
            raise NoMaterializerError(f"cannot store a value of type {kind}: {error}") from error
    return ArtifactRef(
        uri=uri,
        sha256=writer.sha256.hexdigest(),
        size=writer.size,
        materializer=materializer.name,
        type_name=kind,
    )


def load_artifact(
    store: ArtifactStore,
    ref: ArtifactRef,
    annotation: Any,
    registry: MaterializerRegistry,
    scratch_dir: Path,
) -> object:
    """Load the value stored at ``ref.uri``, checking its sha256 and size.

    Files the materializer puts on disk go to a new directory below ``scratch_dir``,
    which is removed again if the load fails.

    :raises ArtifactCorruptedError: the stored bytes are not the ones recorded in ``ref``.
    :raises ArtifactNotFoundError: nothing is stored at ``ref.uri``.
    """
    try:
        materializer = registry.by_name(ref.materializer)
    except ArtifactError as error:
        raise ArtifactError(f"cannot load artifact {ref.uri}: {error}") from None
    try:
        scratch_dir.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix="load-", dir=scratch_dir))
    except OSError as error:
        if not is_storage_oserror(error):
            raise
        raise storage_error(_SCRATCH, scratch_dir, error) from error
    try:
        with store.open_read(ref.uri) as raw:
            reader = _HashingReader(raw)
            try:
                value = materializer.load(cast(BinaryIO, reader), annotation, private)
            except Exception as error:
                # Corrupted bytes often fail to parse first; report the corruption.
                corruption = None
                with contextlib.suppress(Exception):
                    reader.drain()
                    corruption = _corruption(ref, reader)
                if corruption is not None:
                    raise corruption from error
                if is_storage_oserror(error) and disk_is_full(private):
                    # The materializer unpacks into the scratch folder, and its disk filled.
                    raise storage_error(_SCRATCH, private, error) from error
                raise
            reader.drain()
        _check(ref, reader)
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):
        private.rmdir()  # nothing was put on disk
    return value


def verify_artifact(store: ArtifactStore, ref: ArtifactRef) -> None:
    """Hash the stored bytes and compare them with ``ref``, without loading the value.

    :raises ArtifactCorruptedError: they differ.
    """
    with store.open_read(ref.uri) as raw:
        reader = _HashingReader(raw)
        reader.drain()
    _check(ref, reader)


def _check(ref: ArtifactRef, reader: _HashingReader) -> None:
    corruption = _corruption(ref, reader)
    if corruption is not None:
        raise corruption


def _corruption(ref: ArtifactRef, reader: _HashingReader) -> ArtifactCorruptedError | None:
    actual = reader.sha256.hexdigest()
    if actual == ref.sha256 and reader.size == ref.size:
        return None
    return ArtifactCorruptedError(
        f"artifact {ref.uri} is corrupted: expected sha256 {ref.sha256} ({ref.size} bytes), "
        f"found sha256 {actual} ({reader.size} bytes); it was changed or truncated after "
        "it was written. Re-run the step that produced it (delete the bad copy first: "
        "artifacts are write-once)"
    )
