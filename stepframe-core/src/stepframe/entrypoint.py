"""The program every job runs: ``python -m stepframe.entrypoint MANIFEST_URI``.

``--torchrun [--processes-per-host=N]`` before the URI starts the step under torchrun
across the job's hosts (SageMaker's ``distribution = "torchrun"``).  On several hosts or
processes every one runs the step and only rank 0 (`stepframe.current_job`) writes the
outputs and the result manifest; the others exit 0 once the function returns.

It reads the launch manifest from the artifact store, imports the step, loads and
type-checks its inputs, runs it, stores its outputs and writes a result manifest.  It
needs no server: the artifact store is the only meeting point with the client.  It
exits 0 when the step succeeded and 1 when it raised (the error is in the result
manifest); 2 when it could not even read its launch manifest.

Every job pays for this module's imports, so it keeps them to what running a step
needs.  A ``file://`` launch manifest is read through the built-in local store without
loading any plugin; plugins (and with them pluggy and the entry point scan) are loaded
only for a store of another scheme, or when the client used plugin materializers -- and
then only the plugins the manifest names, besides the core's own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepframe._artifacts.io import load_artifact, save_artifact
from stepframe._artifacts.materializers import MaterializerRegistry

# Defined where the local operator makes the pipe (`credentials_pipe`): one name on both
# sides.  That module is light (the standard library and two small helpers).
from stepframe._builtin.local_zygote import STORE_CREDENTIALS_FD_ENV as STORE_CREDENTIALS_FD_ENV
from stepframe._crashpoints import reached
from stepframe._manifests import (
    FunctionRef,
    LaunchManifest,
    ResultManifest,
    read_manifest,
    write_manifest,
)
from stepframe._types import ArtifactRef, RemoteError
from stepframe.exceptions import (
    InputTypeError,
    NoMaterializerError,
    StepframeError,
    UsageError,
)

if TYPE_CHECKING:
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._plugins.manager import Plugins
    from stepframe._types import Credentials

__all__ = ["execute_launch", "main"]

MANIFEST_ENV = "STEPFRAME_LAUNCH_MANIFEST"
CODE_ROOT_ENV = "STEPFRAME_CODE_ROOT"


def take_store_credentials() -> Credentials | None:
    """The store credentials the job's operator put in a pipe for it, or None.

    Read to the end and closed, and the variable naming the pipe removed, before the
    step's code runs: nothing of them is left for the step or its subprocesses to find.
    """
    fd_text = os.environ.pop(STORE_CREDENTIALS_FD_ENV, "")
    if not fd_text:
        return None
    chunks = []
    try:
        fd = int(fd_text)
        try:
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except (ValueError, OSError) as error:
        raise UsageError(
            f"{STORE_CREDENTIALS_FD_ENV}={fd_text!r} names no readable pipe ({error}); "
            "a job's operator sets it to a descriptor the job inherits"
        ) from None
    from stepframe._artifacts.shared import job_store_credentials

    return job_store_credentials(b"".join(chunks).decode())


_IMPORT_LOCK = threading.RLock()


def _import_function(ref: FunctionRef, code_root: Path) -> tuple[Callable[..., Any], Any]:
    """The step's plain function and the `Step` object around it (or None)."""
    from stepframe._pipeline.step import Step

    # In-process steps run on threads of one process: without the lock, one thread could
    # find in sys.modules the module another is still executing from its file, and miss
    # the step function in it.
    with _IMPORT_LOCK:
        try:
            module = importlib.import_module(ref.module)
        except ImportError:
            if ref.path is None or not (code_root / ref.path).is_file():
                raise
            spec = importlib.util.spec_from_file_location(ref.module, code_root / ref.path)
            if spec is None or spec.loader is None:
                raise
            module = importlib.util.module_from_spec(spec)
            sys.modules[ref.module] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(ref.module, None)  # never leave a half-executed module
                raise
    target: Any = module
    for part in ref.qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, Step):
        return target.func, target
    return target, None


def _qualified_name(tp: type) -> str:
    return tp.__qualname__ if tp.__module__ == "builtins" else f"{tp.__module__}.{tp.__qualname__}"


def _load_inputs(
    manifest: LaunchManifest,
    step: Any,
    store: ArtifactStore,
    registry: MaterializerRegistry,
    scratch: Path,
) -> dict[str, Any]:
    from stepframe._pipeline.step import EMPTY
    from stepframe._pipeline.typecheck import TypeMismatch, conform

    annotations = step.input_annotations if step is not None else {}
    kwargs = {}
    for name, ref in manifest.inputs.items():
        hint = annotations.get(name, EMPTY)
        value = load_artifact(store, ref, hint, registry, scratch)
        try:
            kwargs[name] = conform(value, hint)
        except TypeMismatch as mismatch:
            raise InputTypeError(
                f"step {manifest.step!r} input {name!r}: {mismatch} "
                f"(loaded from {ref.uri}, stored as {ref.type_name or ref.materializer}); "
                "fix the producing step's return value or this step's type hint"
            ) from None
    return kwargs


def _save_outputs(
    manifest: LaunchManifest,
    step: Any,
    value: Any,
    store: ArtifactStore,
    registry: MaterializerRegistry,
) -> dict[str, ArtifactRef]:
    from stepframe._artifacts.materializers import storing_output
    from stepframe._pipeline.step import EMPTY

    targets = manifest.outputs
    if len(targets) == 1:
        values: Sequence[Any] = (value,)
    elif isinstance(value, (tuple, list)) and len(value) == len(targets):
        values = value
    else:
        raise StepframeError(
            f"step {manifest.step!r} declares {len(targets)} outputs "
            f"({', '.join(t.name for t in targets)}) but returned "
            f"{type(value).__name__}; return a tuple of {len(targets)} values"
        )
    annotations = step.output_annotations if step is not None else {}
    refs = {}
    for target, item in zip(targets, values):
        try:
            with storing_output(manifest.step, target.name):  # named in a pickle warning
                refs[target.name] = save_artifact(
                    store, target.uri, item, annotations.get(target.name, EMPTY), registry
                )
        except NoMaterializerError as error:
            raise NoMaterializerError(
                f"step {manifest.step!r} output {target.name!r}: {error}"
            ) from None
    return refs


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _user_traceback(error: BaseException) -> str:
    """The traceback from the first frame outside stepframe and the import machinery.

    The step's own frames are what the user needs; the entrypoint's are noise.  When
    no frame is the user's (stepframe could not load an input or store an output),
    there is no traceback: the error's message says what is wrong.
    """
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(("<frozen ", _PACKAGE_DIR)):
        tb = tb.tb_next
    if tb is None:
        return ""
    return "".join(traceback.format_exception(type(error), error, tb))


def execute_launch(
    store: ArtifactStore,
    manifest_uri: str,
    registry: MaterializerRegistry,
    code_root: Path,
    *,
    manifest: LaunchManifest | None = None,
) -> ResultManifest:
    """Run the step a launch manifest describes and write its result manifest.

    Step failures are captured in the result, never raised: the client learns about
    them from the result manifest, wherever the step ran.

    :param manifest: the launch manifest at ``manifest_uri``, if the caller read it.
    """
    if manifest is None:
        manifest = read_manifest(store, manifest_uri, LaunchManifest)
    from stepframe._current_job import current_job

    # On several hosts (or processes) every one runs the step; only rank 0 writes the
    # outputs and the result manifest, which are write-once.
    placement = current_job()
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix=f"stepframe-{manifest.step}-"))
    try:
        func, step = _import_function(manifest.function, code_root)
        kwargs = _load_inputs(manifest, step, store, registry, scratch)
        value = func(**kwargs)
        if not placement.is_main:
            return ResultManifest(outputs={}, started_at=started, ended_at=time.time())
        outputs = _save_outputs(manifest, step, value, store, registry)
        reached("outputs-written", manifest.step)  # the crash suite's stop: no result yet
        result = ResultManifest(outputs=outputs, started_at=started, ended_at=time.time())
    except BaseException as error:  # the step's failure is data for the client
        if isinstance(error, KeyboardInterrupt):
            raise
        result = ResultManifest(
            error=RemoteError(
                type=_qualified_name(type(error)),
                message=str(error),
                traceback=_user_traceback(error),
            ),
            started_at=started,
            ended_at=time.time(),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if placement.is_main:
        write_manifest(store, manifest.result_uri, result)
    return result


# The core's plugin that opens file:// stores; disabling it by name sends file:// URIs
# through the plugins like any other scheme.
_LOCAL_STORE_PLUGIN = "local-artifact-store"


def _plugins_for(materializer_plugins: Sequence[str]) -> Plugins:
    """The core's plugins plus those named, for a job on a ``file://`` store."""
    from stepframe._plugins.manager import LOAD_ENV, load_plugins

    return load_plugins(env={**os.environ, LOAD_ENV: ",".join(materializer_plugins)})


def _local_store_is_builtin(uri: str) -> bool:
    if urllib.parse.urlsplit(uri).scheme != "file":
        return False
    disabled = os.environ.get("STEPFRAME_DISABLE_PLUGINS", "")
    return _LOCAL_STORE_PLUGIN not in {name.strip() for name in disabled.split(",")}


def _open(
    manifest_uri: str, store_credentials: Credentials | None
) -> tuple[ArtifactStore, LaunchManifest, MaterializerRegistry]:
    """The store, the launch manifest and the materializers a job needs, loading as
    few plugins as the manifest allows (none for a plain step on a local store)."""
    if _local_store_is_builtin(manifest_uri):
        from stepframe._artifacts.local import open_local_store

        store: ArtifactStore = open_local_store(manifest_uri)
        manifest = read_manifest(store, manifest_uri, LaunchManifest)
        if not manifest.materializer_plugins:
            return store, manifest, MaterializerRegistry()
        plugins = _plugins_for(manifest.materializer_plugins)
    else:
        # Which plugin opens this scheme is only known once they are loaded: load them.
        from stepframe._plugins.manager import get_plugins

        plugins = get_plugins()
        store = plugins.hooks.open_artifact_store(manifest_uri, store_credentials)
        manifest = read_manifest(store, manifest_uri, LaunchManifest)
    missing = set(manifest.materializer_plugins) - set(plugins.infos)
    if missing:
        print(
            f"stepframe entrypoint: the client stored artifacts with materializers of "
            f"plugin(s) {', '.join(sorted(missing))}, which are not installed here; "
            "steps reading those artifacts will fail",
            file=sys.stderr,
        )
    return store, manifest, MaterializerRegistry(plugins.materializers)


# Options a remote operator puts before the manifest URI (SageMaker's entry point).
_TORCHRUN = "--torchrun"
_PROCESSES_PER_HOST = "--processes-per-host="


def _torchrun(manifest_uri: str, processes_per_host: int | None) -> int:
    """Start the step under torchrun on this host: one process per GPU (or
    ``processes_per_host``), ranks spread over every host of the job, meeting on the
    first.  Each process is this entrypoint again, which rank 0's outputs come from."""
    import subprocess

    from stepframe._current_job import current_job

    placement = current_job()
    if processes_per_host is None:
        processes_per_host = max(int(os.environ.get("SM_NUM_GPUS") or 0), 1)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={placement.num_hosts}",
        f"--node_rank={placement.host_rank}",
        f"--nproc_per_node={processes_per_host}",
        f"--master_addr={placement.master_addr}",
        f"--master_port={placement.master_port}",
        "-m",
        "stepframe.entrypoint",
        manifest_uri,
    ]
    print(f"stepframe entrypoint: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    return subprocess.run(command, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    torchrun = False
    processes_per_host: int | None = None
    while args and args[0].startswith("--"):
        option = args.pop(0)
        if option == _TORCHRUN:
            torchrun = True
        elif option.startswith(_PROCESSES_PER_HOST):
            processes_per_host = int(option[len(_PROCESSES_PER_HOST) :])
        else:
            print(f"stepframe entrypoint: unknown option {option!r}", file=sys.stderr)
            return 2
    manifest_uri = args[0] if args else os.environ.get(MANIFEST_ENV)
    if not manifest_uri:
        print(
            f"usage: python -m stepframe.entrypoint MANIFEST_URI (or set {MANIFEST_ENV})",
            file=sys.stderr,
        )
        return 2
    if torchrun and "RANK" not in os.environ:  # not yet one of torchrun's processes
        return _torchrun(manifest_uri, processes_per_host)
    code_root = Path(os.environ.get(CODE_ROOT_ENV) or os.getcwd()).resolve()
    if str(code_root) not in sys.path:
        sys.path.insert(0, str(code_root))
    try:
        store, manifest, registry = _open(manifest_uri, take_store_credentials())
        result = execute_launch(store, manifest_uri, registry, code_root, manifest=manifest)
    except (StepframeError, UsageError, OSError) as error:
        print(f"stepframe entrypoint: {error}", file=sys.stderr)
        return 2
    if result.error is not None:
        remote = result.error
        print(remote.traceback or f"{remote.type}: {remote.message}\n", file=sys.stderr, end="")
        return 1
    from stepframe._current_job import current_job

    placement = current_job()
    if not placement.is_main:
        print(
            f"stepframe entrypoint: {placement.current_host} (rank {placement.rank} of "
            f"{placement.world_size}) ran the step; rank 0 on {placement.hosts[0]} writes "
            "its outputs",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
