"""The artifact store conformance suite."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from stepframe._artifacts.io import load_artifact, save_artifact, verify_artifact
from stepframe._artifacts.materializers import MaterializerRegistry, PickleFallbackWarning
from stepframe._artifacts.store import ArtifactStore
from stepframe._plugins.manager import Plugins
from stepframe._types import ArtifactRef, Credentials
from stepframe.exceptions import (
    ArtifactCorruptedError,
    ArtifactExistsError,
    ArtifactNotFoundError,
)
from stepframe.testing._fixtures import make_plugins

__all__ = ["ArtifactStoreSuite", "StoreCase"]

_MIB = 1 << 20


@attrs.define
class StoreCase:
    """One test's store: opened through the ``open_artifact_store`` hook."""

    plugins: Plugins
    store: ArtifactStore
    credentials: Credentials | None
    registry: MaterializerRegistry
    scratch: Path
    files: Path  # where tests make the files and folders they store

    def save(self, name: str, value: object, annotation: Any = Any) -> ArtifactRef:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PickleFallbackWarning)
            return save_artifact(
                self.store, self.store.uri_for("kit", name), value, annotation, self.registry
            )

    def load(self, ref: ArtifactRef, annotation: Any = Any) -> object:
        return load_artifact(self.store, ref, annotation, self.registry, self.scratch)

    def stored_bytes(self, uri: str) -> bytes:
        with self.store.open_read(uri) as stream:
            return stream.read()


def _tree(path: Path) -> dict[str, bytes | None]:
    """A file's or folder's contents by relative path (None for folders)."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    found: dict[str, bytes | None] = {}
    for item in sorted(path.rglob("*")):
        found[item.relative_to(path).as_posix()] = item.read_bytes() if item.is_file() else None
    return found


# Each case: how to make the value (numpy and files need the test's context), which
# materializer must store it, the annotation to load it with.
_CASES = [
    "bytes",
    "bytearray",
    "json-mapping",
    "json-list",
    "json-scalar",
    "json-none",
    "path-file",
    "path-folder",
    "numpy-array",
    "numpy-scalar",
    "pickle",
]


def _make_value(case: str, files: Path) -> tuple[object, str, Any]:
    if case == "bytes":
        return random.Random(1).randbytes(300_000), "bytes", Any
    if case == "bytearray":
        return bytearray(b"kit bytearray " * 100), "bytes", bytearray
    if case == "json-mapping":
        return {"a": [1, 2.5, None, True], "unicode \u2603": "snow \u00fc", "n": {}}, "json", Any
    if case == "json-list":
        return [1, "two", [3.0, [4]], {"five": 5}], "json", Any
    if case == "json-scalar":
        return "a plain string \u00e9", "json", Any
    if case == "json-none":
        return None, "json", Any
    if case == "path-file":
        path = files / "model.bin"
        path.write_bytes(random.Random(2).randbytes(3 * _MIB + 17))
        return path, "path", Path
    if case == "path-folder":
        folder = files / "dataset"
        (folder / "nested" / "deeper").mkdir(parents=True)
        (folder / "a.txt").write_text("alpha\n")
        (folder / "nested" / "b.bin").write_bytes(bytes(range(256)) * 10)
        (folder / "nested" / "deeper" / "empty").write_bytes(b"")
        return folder, "path", Path
    if case in ("numpy-array", "numpy-scalar"):
        numpy = pytest.importorskip("numpy")
        if case == "numpy-array":
            return numpy.arange(24, dtype="float32").reshape(2, 3, 4), "numpy", Any
        return numpy.int64(7), "numpy", Any
    if case == "pickle":
        return {1, 2, 3}, "pickle", Any
    raise AssertionError(case)


class ArtifactStoreSuite:
    """Conformance tests for an artifact store flavor.  Subclass it in a ``Test*`` class.

    Set `scheme` and which plugins to load; override `store_uri` (a fresh, empty store
    root for each test) and `corrupt` (change an object's bytes at rest) unless the
    store uses ``file://`` URIs.
    """

    #: the URI scheme the store handles (``file``, ``s3``, ...).
    scheme: ClassVar[str] = ""
    #: installed entry points to load besides the core's; None loads every installed one.
    plugin_names: ClassVar[tuple[str, ...] | None] = None
    #: plugin objects to register directly: modules, instances or (name, plugin) pairs.
    extra_plugins: ClassVar[tuple[Any, ...]] = ()
    #: ``ArtifactStore.list`` is implemented.
    supports_list: ClassVar[bool] = True
    #: size of the file streamed through the store in the bounded-memory test.
    large_file_bytes: ClassVar[int] = 64 * _MIB
    #: peak Python memory (tracemalloc) allowed while storing and loading that file.
    max_stream_memory_bytes: ClassVar[int] = 16 * _MIB

    # ---- what a flavor overrides ----------------------------------------------------

    def make_plugins(self) -> Plugins:
        return make_plugins(*self.extra_plugins, load=self.plugin_names)

    def store_uri(self, tmp_path: Path) -> str:
        """A fresh, empty store root for one test."""
        if self.scheme == "file":
            return (tmp_path / "store").as_uri()
        raise NotImplementedError(
            f"{type(self).__name__}: override store_uri() to give a fresh {self.scheme}:// root"
        )

    def make_credentials(self, plugins: Plugins) -> Credentials | None:
        return None

    def corrupt(self, store: ArtifactStore, uri: str) -> None:
        """Change one byte of the object stored at ``uri``, behind the store's back."""
        if self.scheme != "file":
            raise NotImplementedError(
                f"{type(self).__name__}: override corrupt() to change an object's bytes at "
                "rest (with the backend's own client), so the suite can check that loading "
                "it fails"
            )
        from stepframe._artifacts.local import path_from_file_uri

        path = path_from_file_uri(uri)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.chmod(0o644)
        path.write_bytes(bytes(data))

    # ---- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def store_case(self, tmp_path: Path) -> Iterator[StoreCase]:
        assert self.scheme, f"{type(self).__name__} must set `scheme`"
        plugins = self.make_plugins()
        credentials = self.make_credentials(plugins)
        store = plugins.hooks.open_artifact_store(self.store_uri(tmp_path), credentials)
        files = tmp_path / "files"
        files.mkdir()
        yield StoreCase(
            plugins=plugins,
            store=store,
            credentials=credentials,
            registry=MaterializerRegistry(plugins.materializers),
            scratch=tmp_path / "scratch",
            files=files,
        )

    # ---- the tests ------------------------------------------------------------------

    def test_the_flavor_declares_its_uri_scheme(self, store_case: StoreCase) -> None:
        """The core finds a URI's store by the scheme its flavor declares, not by trial."""
        owner = store_case.plugins.flavors.scheme_provider(self.scheme)
        assert owner is not None, (
            f"no artifact store flavor declares URI scheme {self.scheme!r}: register the "
            f"flavor with Flavor(..., uri_schemes=({self.scheme!r},))"
        )
        implemented = store_case.plugins.infos[owner].hooks
        assert "open_artifact_store" in implemented, (
            f"plugin {owner!r} declares scheme {self.scheme!r} but does not implement "
            "open_artifact_store: the core asks the plugin that declared the scheme"
        )

    def test_the_store_answers_for_its_scheme_only(self, store_case: StoreCase) -> None:
        assert store_case.store.root_uri.startswith(f"{self.scheme}:"), (
            f"the store's root_uri {store_case.store.root_uri!r} is not a {self.scheme}: URI"
        )
        from stepframe.exceptions import PluginError

        with pytest.raises(PluginError, match="no installed plugin implements"):
            other = store_case.plugins.hooks.open_artifact_store(
                "stepframe-kit-nowhere://bucket/prefix", None
            )
            raise AssertionError(
                f"open_artifact_store answered {other!r} for a URI of another scheme; declare "
                "your schemes in Flavor.uri_schemes (or return None for others' URIs)"
            )

    def test_write_read_and_exists(self, store_case: StoreCase) -> None:
        store = store_case.store
        uri = store.uri_for("kit", "plain", "object.bin")
        assert not store.exists(uri)
        with store.open_write(uri) as stream:
            stream.write(b"first chunk, ")
            stream.write(b"second chunk")
        assert store.exists(uri), "a written object does not exist"
        stored = store_case.stored_bytes(uri)
        assert stored == b"first chunk, second chunk", f"wrote two chunks, read back {stored!r}"

    def test_an_object_uri_opens_its_store(self, store_case: StoreCase) -> None:
        """Jobs open the store by their launch manifest's URI, not by its root."""
        store = store_case.store
        uri = store.uri_for("kit", "runs", "r1", "launch.json")
        with store.open_write(uri) as stream:
            stream.write(b"{}")
        again = store_case.plugins.hooks.open_artifact_store(uri, store_case.credentials)
        assert again.exists(uri), f"the store opened from {uri} does not see that object"
        with again.open_read(uri) as stream:
            stored = stream.read()
        assert stored == b"{}", f"wrote b'{{}}', read back {stored!r}"

    def test_objects_are_written_once(self, store_case: StoreCase) -> None:
        store = store_case.store
        uri = store.uri_for("kit", "once")
        with store.open_write(uri) as stream:
            stream.write(b"original")
        with pytest.raises(ArtifactExistsError), store.open_write(uri) as stream:
            stream.write(b"overwritten")
        stored = store_case.stored_bytes(uri)
        assert stored == b"original", f"the first write was b'original', now it is {stored!r}"

    def test_a_missing_object_is_not_found(self, store_case: StoreCase) -> None:
        store = store_case.store
        uri = store.uri_for("kit", "never-written")
        assert not store.exists(uri)
        with pytest.raises(ArtifactNotFoundError), store.open_read(uri) as stream:
            stream.read()

    def test_a_failed_write_leaves_nothing_behind(self, store_case: StoreCase) -> None:
        store = store_case.store
        uri = store.uri_for("kit", "interrupted")
        with pytest.raises(RuntimeError, match="kit: the writer failed"):
            with store.open_write(uri) as stream:
                stream.write(b"half of it")
                raise RuntimeError("kit: the writer failed")
        assert not store.exists(uri), "an interrupted write left an object behind"
        with store.open_write(uri) as stream:  # and the name is still free
            stream.write(b"complete")
        stored = store_case.stored_bytes(uri)
        assert stored == b"complete", f"wrote b'complete', read back {stored!r}"

    @pytest.mark.parametrize("case", _CASES)
    def test_round_trip_of_each_builtin_materializer(
        self, store_case: StoreCase, case: str
    ) -> None:
        value, materializer, annotation = _make_value(case, store_case.files)
        ref = store_case.save(case, value, annotation)
        assert ref.materializer == materializer, f"stored with {ref.materializer!r}"
        stored = store_case.stored_bytes(ref.uri)
        assert len(stored) == ref.size, f"stored {len(stored)} bytes, wrote {ref.size}"
        assert hashlib.sha256(stored).hexdigest() == ref.sha256, (
            "the store returns other bytes than were written to it"
        )
        loaded = store_case.load(ref, annotation)
        if case.startswith("numpy"):
            import numpy

            assert type(loaded) is type(value) and numpy.array_equal(loaded, value)  # type: ignore[arg-type]
        elif case.startswith("path"):
            assert isinstance(loaded, Path) and isinstance(value, Path)
            assert loaded.name == value.name
            assert _tree(loaded) == _tree(value), "the file or folder came back different"
        else:
            assert loaded == value and type(loaded) is type(value), f"came back as {loaded!r}"

    def test_a_large_file_streams_with_bounded_memory(self, store_case: StoreCase) -> None:
        path = store_case.files / "large.bin"
        digest = hashlib.sha256()
        block = random.Random(3).randbytes(_MIB)
        with path.open("wb") as out:
            for number in range(self.large_file_bytes // _MIB):
                chunk = number.to_bytes(8, "big") + block[8:]
                out.write(chunk)
                digest.update(chunk)
        del block
        tracemalloc.start()
        try:
            ref = store_case.save("large", path, Path)
            loaded = store_case.load(ref, Path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert ref.size >= self.large_file_bytes
        assert isinstance(loaded, Path)
        again = hashlib.sha256()
        with loaded.open("rb") as data:
            while chunk := data.read(_MIB):
                again.update(chunk)
        assert again.hexdigest() == digest.hexdigest(), "the large file came back different"
        assert peak <= self.max_stream_memory_bytes, (
            f"storing and loading a {self.large_file_bytes // _MIB} MiB file peaked at "
            f"{peak / _MIB:.1f} MiB of Python memory (limit {self.max_stream_memory_bytes // _MIB}"
            " MiB): stream objects in chunks, never hold one whole in memory"
        )

    def test_corruption_at_rest_is_detected(self, store_case: StoreCase) -> None:
        value = random.Random(4).randbytes(200_000)
        ref = store_case.save("to-corrupt", value)
        self.corrupt(store_case.store, ref.uri)
        with pytest.raises(ArtifactCorruptedError):
            verify_artifact(store_case.store, ref)
        with pytest.raises(ArtifactCorruptedError):
            store_case.load(ref)

    def test_listing_objects_by_prefix(self, store_case: StoreCase) -> None:
        if not self.supports_list:
            pytest.skip(f"{self.scheme}:// store does not list (supports_list = False)")
        store = store_case.store
        names = ["runs/r1/a", "runs/r1/b/c", "runs/r2/a"]
        for name in names:
            with store.open_write(store.uri_for(name)) as stream:
                stream.write(name.encode())
        listed = list(store.list(store.uri_for("runs", "r1") + "/"))
        assert listed == [store.uri_for("runs/r1/a"), store.uri_for("runs/r1/b/c")], listed
