"""The artifact layer: the local store, the built-in materializers, hashed streaming."""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import pytest

from stepframe._artifacts.io import load_artifact, save_artifact, verify_artifact
from stepframe._artifacts.local import (
    STORE_MARKER,
    LocalArtifactStore,
    file_uri,
    find_store_root,
    path_from_file_uri,
)
from stepframe._artifacts.materializer import Materializer
from stepframe._artifacts.materializers import (
    MaterializerRegistry,
    PathMaterializer,
    PickleFallbackWarning,
)
from stepframe._builtin import artifact_store as plugin
from stepframe._types import ArtifactRef, ComponentKind, Flavor
from stepframe.exceptions import (
    ArtifactCorruptedError,
    ArtifactError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    NoMaterializerError,
)

EMPTY = inspect.Parameter.empty


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore.at(tmp_path / "my project" / ".stepframe" / "artifacts", create=True)


@pytest.fixture
def registry() -> MaterializerRegistry:
    return MaterializerRegistry()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


def round_trip(
    store: LocalArtifactStore,
    registry: MaterializerRegistry,
    scratch: Path,
    value: object,
    annotation: Any = EMPTY,
    name: str = "out",
) -> tuple[ArtifactRef, object]:
    ref = save_artifact(store, store.uri_for("run", name), value, annotation, registry)
    return ref, load_artifact(store, ref, annotation, registry, scratch)


def stored_file(store: LocalArtifactStore, ref: ArtifactRef) -> Path:
    return store.path_for(ref.uri)


# -------------------------------------------------------------------------------------
# Materializers, round trip
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        42,
        -1.5,
        "héllo",
        [1, "two", None, [3.0, {"four": [5]}]],
        {"a": {"b": [1, 2, {"c": None}]}, "é": True},
    ],
)
def test_json_round_trip(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path, value: object
) -> None:
    ref, loaded = round_trip(store, registry, scratch, value)
    assert ref.materializer == "json"
    assert loaded == value
    assert json.loads(stored_file(store, ref).read_bytes()) == value


def test_json_tuple_comes_back_as_list(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    ref, loaded = round_trip(store, registry, scratch, (1, 2), annotation=tuple[int, int])
    assert ref.materializer == "json"
    assert ref.type_name == "tuple"
    assert loaded == [1, 2]


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"a": {1, 2}},
        [b"bytes inside"],
        threading.Event(),
    ],
)
def test_json_refuses_what_it_cannot_round_trip(
    registry: MaterializerRegistry, value: object
) -> None:
    assert registry.for_value(value, EMPTY).name != "json"


def test_json_refuses_self_containing_list(registry: MaterializerRegistry) -> None:
    cycle: list[object] = [1]
    cycle.append(cycle)
    assert registry.for_value(cycle, EMPTY).name == "pickle"


@pytest.mark.parametrize("value", [b"", b"\x00\xffraw", bytearray(b"mutable")])
def test_bytes_round_trip(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path, value: bytes
) -> None:
    ref, loaded = round_trip(store, registry, scratch, value, annotation=type(value))
    assert ref.materializer == "bytes"
    assert loaded == value
    assert type(loaded) is type(value)
    assert stored_file(store, ref).read_bytes() == value


def test_path_file_round_trip(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path, tmp_path: Path
) -> None:
    source = tmp_path / "model weights.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    ref, loaded = round_trip(store, registry, scratch, source)
    assert ref.materializer == "path"
    assert ref.type_name.startswith("pathlib.")
    assert isinstance(loaded, Path)
    assert loaded.name == "model weights.bin"
    assert loaded.is_relative_to(scratch)
    assert loaded.read_bytes() == source.read_bytes()


def test_path_directory_round_trip(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path, tmp_path: Path
) -> None:
    source = tmp_path / "dataset"
    (source / "train" / "deep").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "README").write_text("top")
    (source / "train" / "a.csv").write_text("x,y\n1,2\n")
    (source / "train" / "deep" / "b.bin").write_bytes(b"\x00" * 100_000)
    (source / "train" / "link").symlink_to("a.csv")

    _, loaded = round_trip(store, registry, scratch, source)

    assert isinstance(loaded, Path)
    assert loaded.name == "dataset"
    assert (loaded / "README").read_text() == "top"
    assert (loaded / "train" / "a.csv").read_text() == "x,y\n1,2\n"
    assert (loaded / "train" / "deep" / "b.bin").read_bytes() == b"\x00" * 100_000
    assert (loaded / "empty").is_dir()
    assert (loaded / "train" / "link").is_symlink()
    assert (loaded / "train" / "link").read_text() == "x,y\n1,2\n"


def test_path_with_link_escaping_the_directory_is_refused_on_save(
    store: LocalArtifactStore, registry: MaterializerRegistry, tmp_path: Path
) -> None:
    source = tmp_path / "out"
    source.mkdir()
    (source / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match="points outside"):
        save_artifact(store, store.uri_for("x"), source, EMPTY, registry)
    assert not store.exists(store.uri_for("x"))


def test_missing_output_path_is_reported(
    store: LocalArtifactStore, registry: MaterializerRegistry, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        save_artifact(store, store.uri_for("x"), tmp_path / "nope", EMPTY, registry)


def test_numpy_round_trip(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ref, loaded = round_trip(store, registry, scratch, array)
    assert ref.materializer == "numpy"
    assert ref.type_name == "numpy.ndarray"
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, array)
    # The stored bytes are a plain .npy file.
    np.testing.assert_array_equal(np.load(stored_file(store, ref), allow_pickle=False), array)


def test_numpy_layouts_and_scalars_round_trip(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    np = pytest.importorskip("numpy")
    values = [
        np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
        np.arange(20)[::3],  # not contiguous
        np.zeros((0, 5), dtype=np.uint8),
        np.array([(1, 2.5)], dtype=[("a", "i4"), ("b", "f8")]),
    ]
    for index, array in enumerate(values):
        ref, loaded = round_trip(store, registry, scratch, array, name=f"a{index}")
        assert ref.materializer == "numpy"
        assert isinstance(loaded, np.ndarray)
        assert loaded.dtype == array.dtype
        np.testing.assert_array_equal(loaded, array)
    ref, loaded = round_trip(store, registry, scratch, np.float64(0.25), name="scalar")
    assert ref.materializer == "numpy"
    assert ref.type_name == "numpy.float64"
    assert type(loaded) is np.float64
    assert loaded == 0.25


def test_numpy_object_arrays_go_to_pickle(registry: MaterializerRegistry) -> None:
    np = pytest.importorskip("numpy")
    assert registry.for_value(np.array([{"a": 1}], dtype=object), EMPTY).name == "pickle"


def test_materializers_do_not_import_numpy() -> None:
    code = textwrap.dedent(
        """
        import sys, tempfile, inspect
        from pathlib import Path
        from stepframe._builtin import artifact_store
        from stepframe._artifacts.io import save_artifact, load_artifact
        from stepframe._artifacts.local import LocalArtifactStore
        from stepframe._artifacts.materializers import MaterializerRegistry
        root = Path(tempfile.mkdtemp())
        store = LocalArtifactStore.at(root / "s", create=True)
        registry = MaterializerRegistry()
        ref = save_artifact(store, store.uri_for("a"), {"x": [1]}, inspect.Parameter.empty,
                            registry)
        load_artifact(store, ref, inspect.Parameter.empty, registry, root / "scratch")
        assert "numpy" not in sys.modules, "numpy was imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_child_env())


@attrs.define
class Point:
    x: int
    y: int


def test_pickle_fallback_warns_and_round_trips(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    with pytest.warns(PickleFallbackWarning, match=r"test_artifacts\.Point.*register"):
        ref, loaded = round_trip(store, registry, scratch, Point(1, 2))
    assert ref.materializer == "pickle"
    assert ref.type_name.endswith("test_artifacts.Point")
    assert loaded == Point(1, 2)


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(threading.Lock(), "_thread.lock"), (_generator(), "generator")],
)
def test_unpicklable_value_raises_no_materializer(
    store: LocalArtifactStore, registry: MaterializerRegistry, value: object, type_name: str
) -> None:
    uri = store.uri_for("run", "bad")
    with pytest.raises(NoMaterializerError) as caught:
        save_artifact(store, uri, value, EMPTY, registry)
    message = str(caught.value)
    assert type_name in message
    assert "register_materializers" in message
    assert "JSON-friendly" in message
    assert not store.exists(uri)
    assert _leftovers(store) == []


# -------------------------------------------------------------------------------------
# The registry
# -------------------------------------------------------------------------------------


class IntAsText(Materializer):
    """A plugin-style materializer that takes ints away from the JSON one."""

    name = "int-as-text"

    def can_save(self, value: object, annotation: Any) -> bool:
        return type(value) is int

    def save(self, value: object, stream: BinaryIO) -> None:
        stream.write(f"int:{value}".encode())

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        return int(stream.read().decode().removeprefix("int:"))


def test_plugin_materializer_takes_precedence(store: LocalArtifactStore, scratch: Path) -> None:
    registry = MaterializerRegistry([IntAsText()])
    ref, loaded = round_trip(store, registry, scratch, 7)
    assert ref.materializer == "int-as-text"
    assert stored_file(store, ref).read_bytes() == b"int:7"
    assert loaded == 7
    # Values it does not want still reach the built-ins.
    assert registry.for_value("seven", EMPTY).name == "json"


class OtherIntAsText(IntAsText):
    """A second plugin's materializer that picked the same name."""


def test_two_plugins_with_one_name_warn_and_the_first_wins() -> None:
    first = IntAsText()
    with pytest.warns(UserWarning, match="both named 'int-as-text'"):
        registry = MaterializerRegistry([first, OtherIntAsText()])
    assert registry.by_name("int-as-text") is first


def test_unknown_materializer_name_names_the_missing_plugin(
    registry: MaterializerRegistry,
) -> None:
    with pytest.raises(ArtifactError, match=r"'int-as-text'.*plugin"):
        registry.by_name("int-as-text")


def test_loading_an_artifact_from_a_missing_plugin_fails_clearly(
    store: LocalArtifactStore, scratch: Path
) -> None:
    ref = save_artifact(store, store.uri_for("n"), 7, EMPTY, MaterializerRegistry([IntAsText()]))
    with pytest.raises(ArtifactError, match=r"(?i)install the plugin") as caught:
        load_artifact(store, ref, EMPTY, MaterializerRegistry(), scratch)
    assert ref.uri in str(caught.value)


# -------------------------------------------------------------------------------------
# The local store
# -------------------------------------------------------------------------------------


def _leftovers(store: LocalArtifactStore) -> list[str]:
    return [str(p) for p in store.root.rglob("*") if p.is_file() and ".stepframe-tmp-" in p.name]


def test_artifacts_are_write_once(store: LocalArtifactStore) -> None:
    uri = store.uri_for("run", "once")
    with store.open_write(uri) as stream:
        stream.write(b"first")
    with pytest.raises(ArtifactExistsError, match="write-once") as caught, store.open_write(uri):
        pass
    assert uri in str(caught.value)
    with store.open_read(uri) as stream:
        assert stream.read() == b"first"


def test_racing_writers_cannot_both_win(store: LocalArtifactStore) -> None:
    uri = store.uri_for("run", "race")
    first = store.open_write(uri)
    second = store.open_write(uri)
    first.__enter__().write(b"first")
    second.__enter__().write(b"second")
    first.__exit__(None, None, None)
    with pytest.raises(ArtifactExistsError):
        second.__exit__(None, None, None)
    with store.open_read(uri) as stream:
        assert stream.read() == b"first"
    assert _leftovers(store) == []


def test_crash_inside_open_write_leaves_nothing(store: LocalArtifactStore) -> None:
    uri = store.uri_for("run", "crash")
    with pytest.raises(RuntimeError), store.open_write(uri) as stream:
        stream.write(b"half")
        raise RuntimeError("step died")
    assert not store.exists(uri)
    assert _leftovers(store) == []
    with store.open_write(uri) as stream:  # the name is still free
        stream.write(b"whole")


def test_missing_artifact(store: LocalArtifactStore) -> None:
    uri = store.uri_for("run", "never")
    assert not store.exists(uri)
    with pytest.raises(ArtifactNotFoundError, match=r"never"):
        store.open_read(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "ROOT/../escape",
        "ROOT",
        "ROOT/.stepframe-artifact-store",
        "s3://bucket/key",
        "file://otherhost/x",
    ],
)
def test_uris_outside_the_store_are_refused(store: LocalArtifactStore, uri: str) -> None:
    uri = uri.replace("ROOT", store.root_uri)
    with pytest.raises(ArtifactError):
        store.open_write(uri)
    with pytest.raises(ArtifactError):
        store.exists(uri)


def test_list(store: LocalArtifactStore) -> None:
    for name in ("run/abc/out", "run/abc/sub/x", "run/abd/out", "other/y"):
        with store.open_write(store.uri_for(name)) as stream:
            stream.write(b".")
    assert list(store.list(store.uri_for("run", "abc"))) == [
        store.uri_for("run/abc/out"),
        store.uri_for("run/abc/sub/x"),
    ]
    assert len(list(store.list(store.uri_for("run", "ab")))) == 3
    assert len(list(store.list(store.root_uri))) == 4  # the marker is not an object
    assert list(store.list(store.uri_for("nothing"))) == []


def test_file_uris_with_spaces_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a dir" / "b%c.txt"
    uri = file_uri(path)
    assert " " not in uri
    assert uri.startswith("file:///")
    assert path_from_file_uri(uri) == path
    assert path_from_file_uri("file://localhost/tmp/x%20y") == Path("/tmp/x y")


def test_store_marker_lets_object_uris_find_their_root(store: LocalArtifactStore) -> None:
    assert (store.root / STORE_MARKER).is_file()
    assert find_store_root(store.uri_for("run", "deep", "object")) == file_uri(store.root)
    assert find_store_root(store.root_uri) == file_uri(store.root)
    assert find_store_root(file_uri(store.root.parent)) is None


# -------------------------------------------------------------------------------------
# Hashes: corruption never becomes a value
# -------------------------------------------------------------------------------------


def test_flipped_byte_raises_corrupted(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    ref = save_artifact(store, store.uri_for("x"), b"0123456789" * 1000, EMPTY, registry)
    path = stored_file(store, ref)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptedError) as caught:
        load_artifact(store, ref, EMPTY, registry, scratch)
    message = str(caught.value)
    assert ref.uri in message
    assert ref.sha256 in message
    with pytest.raises(ArtifactCorruptedError):
        verify_artifact(store, ref)


def test_corruption_that_breaks_parsing_is_reported_as_corruption(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    ref = save_artifact(store, store.uri_for("x"), {"a": [1, 2]}, EMPTY, registry)
    stored_file(store, ref).write_bytes(b'{"a": [1, 2')  # truncated
    with pytest.raises(ArtifactCorruptedError, match=ref.sha256):
        load_artifact(store, ref, EMPTY, registry, scratch)


def test_size_mismatch_raises_corrupted(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    ref = save_artifact(store, store.uri_for("x"), b"payload", EMPTY, registry)
    with open(stored_file(store, ref), "ab") as stream:
        stream.write(b"extra")
    with pytest.raises(ArtifactCorruptedError, match="7 bytes"):
        load_artifact(store, ref, EMPTY, registry, scratch)
    # Same bytes, wrong recorded size: also refused.
    ref2 = save_artifact(store, store.uri_for("y"), b"payload", EMPTY, registry)
    with pytest.raises(ArtifactCorruptedError):
        load_artifact(store, attrs.evolve(ref2, size=8), EMPTY, registry, scratch)


def test_corrupted_path_artifact_leaves_no_files_in_scratch(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path, tmp_path: Path
) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x" * 5000)
    ref = save_artifact(store, store.uri_for("p"), source, EMPTY, registry)
    path = stored_file(store, ref)
    data = bytearray(path.read_bytes())
    data[600] ^= 0x01  # inside the file's content, past the 512-byte header
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptedError):
        load_artifact(store, ref, EMPTY, registry, scratch)
    assert list(scratch.iterdir()) == []


def test_intact_artifact_verifies(
    store: LocalArtifactStore, registry: MaterializerRegistry
) -> None:
    ref = save_artifact(store, store.uri_for("x"), [1, 2, 3], EMPTY, registry)
    verify_artifact(store, ref)
    assert ref.size == stored_file(store, ref).stat().st_size


# -------------------------------------------------------------------------------------
# Unsafe tar streams are refused
# -------------------------------------------------------------------------------------


def _tar_with(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "members",
    [
        [(tarfile.TarInfo("../evil.txt"), b"pwned")],
        [(tarfile.TarInfo("out/../../evil.txt"), b"pwned")],
        [(tarfile.TarInfo("/tmp/evil.txt"), b"pwned")],
        [(_symlink("out", "/etc"), b"")],
        [(_symlink("out", "../../.."), b"")],
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "absolute-link", "escaping-link"],
)
def test_path_traversal_members_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    scratch = tmp_path / "deep" / "scratch"
    scratch.mkdir(parents=True)
    stream = io.BytesIO(_tar_with(*members))
    with pytest.raises(ArtifactError, match="refusing to extract"):
        PathMaterializer().load(stream, EMPTY, scratch)
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_unsafe_tar_in_the_store_is_refused_through_load_artifact(
    store: LocalArtifactStore, registry: MaterializerRegistry, scratch: Path
) -> None:
    import hashlib

    data = _tar_with((tarfile.TarInfo("../evil.txt"), b"pwned"))
    uri = store.uri_for("evil")
    with store.open_write(uri) as stream:
        stream.write(data)
    ref = ArtifactRef(uri, hashlib.sha256(data).hexdigest(), len(data), "path")
    with pytest.raises(ArtifactError, match="refusing to extract"):
        load_artifact(store, ref, EMPTY, registry, scratch)
    assert not (scratch / "evil.txt").exists()
    assert list(scratch.iterdir()) == []


# -------------------------------------------------------------------------------------
# The plugin module
# -------------------------------------------------------------------------------------


def test_plugin_registers_the_local_flavor() -> None:
    flavors: list[Flavor] = []
    plugin.register_flavors(register=flavors.append)
    assert [(f.kind, f.name) for f in flavors] == [(ComponentKind.ARTIFACT_STORE, "local")]
    assert flavors[0].config_class is plugin.LocalArtifactStoreConfig
    assert plugin.LocalArtifactStoreConfig().path is None


def test_plugin_opens_file_uris_only(store: LocalArtifactStore) -> None:
    assert plugin.open_artifact_store(uri="s3://bucket/prefix", credentials=None) is None
    opened = plugin.open_artifact_store(uri=store.uri_for("run", "x", "out"), credentials=None)
    assert isinstance(opened, LocalArtifactStore)
    assert opened.root == store.root


def test_plugin_creates_a_missing_root_so_its_objects_find_it_later(tmp_path: Path) -> None:
    root_uri = file_uri(tmp_path / "project" / ".stepframe" / "artifacts")
    opened = plugin.open_artifact_store(uri=root_uri, credentials=None)
    assert isinstance(opened, LocalArtifactStore)
    assert opened.root == tmp_path / "project" / ".stepframe" / "artifacts"
    assert (opened.root / STORE_MARKER).is_file()
    manifest = opened.uri_for("runs", "r1", "launch.json")
    with opened.open_write(manifest) as stream:
        stream.write(b"{}")
    again = plugin.open_artifact_store(uri=manifest, credentials=None)
    assert isinstance(again, LocalArtifactStore)
    assert again.root == opened.root


def test_plugin_takes_an_unmarked_existing_files_directory_as_root(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "obj").write_bytes(b"x")
    opened = plugin.open_artifact_store(uri=file_uri(loose / "obj"), credentials=None)
    assert isinstance(opened, LocalArtifactStore)
    assert opened.root == loose
    assert not (loose / STORE_MARKER).exists()


def test_config_opens_the_project_store(tmp_path: Path) -> None:
    opened = plugin.LocalArtifactStoreConfig().open(tmp_path)
    assert opened.root == tmp_path / ".stepframe" / "artifacts"
    assert (opened.root / STORE_MARKER).is_file()
    custom = plugin.LocalArtifactStoreConfig(path="elsewhere/art").open(tmp_path)
    assert custom.root == tmp_path / "elsewhere" / "art"


# -------------------------------------------------------------------------------------
# Memory stays flat for huge values
# -------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    """The child finds stepframe where this process did, installed or not."""
    import stepframe

    src = str(Path(stepframe.__file__).resolve().parents[1])
    paths = [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_streaming_a_200_mib_file_keeps_memory_flat(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import inspect, os, resource, sys
        from pathlib import Path
        from stepframe._artifacts.io import load_artifact, save_artifact
        from stepframe._artifacts.local import LocalArtifactStore
        from stepframe._artifacts.materializers import MaterializerRegistry

        root = Path({str(tmp_path)!r})
        source = root / "big.bin"
        block = os.urandom(1 << 20)
        with open(source, "wb") as f:
            for _ in range(200):
                f.write(block)
        del block
        store = LocalArtifactStore.at(root / "store", create=True)
        registry = MaterializerRegistry()

        def peak_mib():
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024

        before = peak_mib()
        ref = save_artifact(store, store.uri_for("big"), source, inspect.Parameter.empty,
                            registry)
        loaded = load_artifact(store, ref, inspect.Parameter.empty, registry, root / "scratch")
        growth = peak_mib() - before
        assert ref.size > 200 * (1 << 20), ref.size
        assert loaded.stat().st_size == source.stat().st_size
        print(growth)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    assert result.returncode == 0, result.stderr
    growth = float(result.stdout.strip())
    assert growth < 50, f"peak RSS grew by {growth:.0f} MiB while streaming 200 MiB"
