"""The ``local`` operator's pre-warmed parent: forks job processes, ready-made.

    python -m stepframe._builtin.local_zygote

Starting a Python interpreter and importing what ``stepframe.entrypoint`` needs costs
about 0.1 s of CPU per job, which 32 parallel steps on a two-core machine turn into
seconds.  This process pays it once: it imports the entrypoint's dependencies (never a
user module), then forks one child per request.  Each child becomes what
``python -m stepframe.entrypoint MANIFEST_URI`` would be -- its own session, stdin from
``/dev/null``, stdout and stderr appended to the job's log, the job's working directory
and environment, default signal handlers -- and runs exactly that entrypoint.

Protocol, one JSON object a line.  On start the zygote writes ``{"ready": true, "pid":
...}``.  Each request on stdin is ``{"argv": [...], "cwd": ..., "env": {...}, "log":
...}`` (plus ``"store_credentials"`` when the job gets the artifact store's credentials);
the reply on stdout is ``{"pid": ..., "start_ticks": ...}``, or ``{"error": ...}`` when no
child was started.  The reply is sent only once the child leads its own session and
process group (it says so through a pipe), so whoever gets the PID can stop the whole job
with ``killpg`` at once: a cancel that came a moment after the reply would otherwise find
no group yet, take the job for gone, and leave it running.

A job's store credentials never enter an environment: the child writes them into a pipe
of its own and names only the pipe's descriptor in `STORE_CREDENTIALS_FD_ENV`; the
entrypoint reads and closes it before the step runs.

Each job's exit status ends up in ``LOG.exit`` (written atomically): the child writes it
after the entrypoint returns; when the child ended some other way (``os._exit`` in the
step, a signal) the zygote writes what ``waitpid`` said, a negative number for a signal.

The zygote stays single-threaded, so forking is safe.  It ignores SIGINT (Ctrl-C in the
terminal belongs to the orchestrator, which cancels the jobs itself) and exits when its
stdin reaches end of file -- the orchestrator finished or died -- leaving running
children alone: the run ledger knows them, so they can be re-attached or stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import importlib
import io
import json
import os
import select
import signal
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from stepframe._crashpoints import reached
from stepframe._files import write_atomically
from stepframe._processes import start_ticks

__all__ = [
    "EXIT_SUFFIX",
    "PRELOAD",
    "RECORD_SUFFIX",
    "STORE_CREDENTIALS_FD_ENV",
    "credentials_pipe",
    "main",
    "read_exit_status",
    "write_exit_status",
    "write_job_record",
]

# What a job process imports anyway: the entrypoint and its dependencies, and the public
# API that step modules import.  Imported before the zygote says it is ready.
PRELOAD = (
    "stepframe.entrypoint",
    "stepframe._artifacts.local",
    "stepframe._pipeline.step",
    "stepframe._pipeline.typecheck",
    "stepframe._pipeline.pipeline",
)
# What only some jobs need (those that load plugins): imported once the zygote is idle,
# so that it does not delay the first jobs of a run.
PRELOAD_WHEN_IDLE = ("stepframe._plugins.manager",)
# How long without a request counts as idle.
IDLE_SECONDS = 0.25

EXIT_SUFFIX = ".exit"
# Next to a job's log: its record, what ``find_job`` finds a job by when the answer to its
# submit was lost.  ``{}`` while a start is under way, then the process's handle data
# (pid, start ticks and, for a child of the zygote, the zygote's), written by whoever
# started it before answering: the zygote, or the client after Popen.
RECORD_SUFFIX = ".job"

# The variable that names the descriptor a job reads its store credentials from (the read
# end of a pipe that holds them; `stepframe.entrypoint` reads it to the end and closes it).
STORE_CREDENTIALS_FD_ENV = "STEPFRAME_STORE_CREDENTIALS_FD"

# Crash points (`stepframe._crashpoints`, set through the zygote's environment) in a job's
# start, where a test lands a signal exactly instead of by timing luck: in the zygote
# before it forks, and in the new child before it leads its own process group.
BEFORE_FORK = "zygote-before-fork"
BEFORE_SETSID = "job-before-setsid"

# The zygote's own standard streams: a child replaces sys.std* but must never let these
# objects be collected, since closing them would close the child's log descriptors.
_kept_streams: list[object] = []


def write_exit_status(log_path: str, status: int) -> None:
    """Publish a job's exit status next to its log, all at once."""
    write_atomically(log_path + EXIT_SUFFIX, f"{status}\n", durable=False)


def write_job_record(log_path: str, record: Mapping[str, Any]) -> None:
    """Publish a job's record (see `RECORD_SUFFIX`) next to its log, all at once."""
    write_atomically(log_path + RECORD_SUFFIX, json.dumps(dict(record)), durable=False)


def read_exit_status(log_path: str) -> int | None:
    """The status in ``LOG.exit``: an exit code, or minus a signal number; None if absent."""
    try:
        text = Path(log_path + EXIT_SUFFIX).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def credentials_pipe(payload: str) -> int:
    """The read end of a new pipe that holds ``payload`` and nothing more (its write end
    is closed): a channel to a job that is empty once read, unlike an environment."""
    data = payload.encode()
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        written = 0
        while written < len(data):
            written += os.write(write_end, data[written:])  # a pipe holds 64 KiB
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def _pythonpath(env: Mapping[str, str]) -> list[str]:
    return [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]


# sys.path as a fresh interpreter builds it after its script folder and PYTHONPATH:
# the standard library and site-packages.  Set by `main`.
_base_path: list[str] = []


# ---- the child ----------------------------------------------------------------------


def _text_stream(fd: int, mode: str, like: Any) -> io.TextIOWrapper:
    """A standard stream on ``fd`` as ``python -u`` makes it, encoded like ``like``."""
    raw = io.FileIO(fd, mode, closefd=False)
    encoding = getattr(like, "encoding", None) or "utf-8"
    errors = getattr(like, "errors", None) or "strict"
    if mode == "r":
        return io.TextIOWrapper(io.BufferedReader(raw), encoding=encoding, errors=errors)
    return io.TextIOWrapper(
        raw,  # unbuffered, as PYTHONUNBUFFERED makes them
        encoding=encoding,
        errors=errors,
        newline="\n",
        line_buffering=True,
        write_through=True,
    )


def _become_job(request: Mapping[str, Any], inherited: Sequence[int], leader: int) -> None:
    """Turn this fresh fork into the process ``python -m stepframe.entrypoint`` would be.

    :param leader: the pipe to tell the zygote that this process leads its own group.
    """
    reached(BEFORE_SETSID)
    os.setsid()  # its own session and process group: a cancel stops its children too
    # Fails (EPIPE) if the zygote died meanwhile: then nobody got this job's PID and the
    # orchestrator starts the job in a new interpreter, so this one must not run it.
    os.write(leader, b"1")
    os.close(leader)
    signal.set_wakeup_fd(-1)
    for fd in inherited:
        if fd > 2:  # the standard ones are replaced below
            with contextlib.suppress(OSError):
                os.close(fd)
    # The signal dispositions of a fresh interpreter: Python's own SIGINT handler, SIGPIPE
    # (and SIGXFSZ) ignored as Python does at start-up, everything else the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    _kept_streams.extend((sys.stdin, sys.stdout, sys.stderr))
    _kept_streams.extend((sys.__stdin__, sys.__stdout__, sys.__stderr__))
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        stream = _text_stream(fd, mode, getattr(sys, f"__{name}__"))
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)  # what the interpreter started with, too

    cwd = str(request["cwd"])
    os.chdir(cwd)
    env = {str(key): str(value) for key, value in dict(request["env"]).items()}
    secret = request.get("store_credentials")
    if secret:
        env[STORE_CREDENTIALS_FD_ENV] = str(credentials_pipe(str(secret)))
    os.environ.clear()
    os.environ.update(env)
    # `python -m` puts the working directory first, then PYTHONPATH, then the rest.
    sys.path[:] = [cwd, *_pythonpath(env), *_base_path]
    importlib.invalidate_caches()


def _exit_code(code: object) -> int:
    """The process exit status for ``SystemExit(code)``, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish() -> None:
    """What interpreter shutdown does before exit: join threads, run atexit functions."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        with contextlib.suppress(BaseException):
            shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


def _run_child(request: Mapping[str, Any], inherited: Sequence[int], leader: int) -> NoReturn:
    """Run the job in this forked child; never returns into the zygote's loop."""
    status = 1
    try:
        _become_job(request, inherited, leader)
        from stepframe import entrypoint

        argv = [str(arg) for arg in request["argv"]]
        sys.argv = [str(entrypoint.__file__), *argv]
        sys.modules["__main__"] = entrypoint  # the module ``python -m`` would be running
        try:
            status = entrypoint.main(argv) & 0xFF
        except SystemExit as exit_:
            status = _exit_code(exit_.code)
        except KeyboardInterrupt:
            # A fresh interpreter dies of the SIGINT it did not handle; so does this one.
            traceback.print_exc()
            _finish()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            traceback.print_exc()
            status = 1
        _finish()
        write_exit_status(str(request["log"]), status)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(status)


# ---- the zygote ---------------------------------------------------------------------


class _Zygote:
    def __init__(self, requests: int, replies: int) -> None:
        self.requests = requests
        self.replies = replies
        self.children: dict[int, str] = {}  # pid -> log path
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)

    def reply(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        while data:
            written = os.write(self.replies, data)
            data = data[written:]

    def reap(self) -> None:
        """Collect every ended child; publish the status of those that could not."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            log = self.children.pop(pid, None)
            if log is None:
                continue
            if os.WIFSIGNALED(wait_status):
                status = -os.WTERMSIG(wait_status)
            else:
                status = os.waitstatus_to_exitcode(wait_status)
            if read_exit_status(log) is None:
                with contextlib.suppress(OSError):
                    write_exit_status(log, status)

    def spawn(self, request: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("argv", "cwd", "env", "log"):
            if key not in request:
                return {"error": f"request without {key!r}"}
        if threading.active_count() != 1:
            return {"error": "the zygote is not single-threaded; it will not fork"}
        inherited = (self.requests, self.replies, self.wake_read, self.wake_write)
        reached(BEFORE_FORK)
        leader_read, leader_write = os.pipe()
        try:
            pid = os.fork()
        except OSError as error:
            os.close(leader_read)
            os.close(leader_write)
            return {"error": f"fork failed: {error}"}
        if pid == 0:
            os.close(leader_read)
            _run_child(request, inherited, leader_write)
        os.close(leader_write)
        self.children[pid] = str(request["log"])
        try:
            # Until the child has called setsid() its PID names no process group, and a
            # cancel's killpg would miss it: answer only once it has (or it died trying;
            # then the end of file comes without a byte).
            os.read(leader_read, 1)
        finally:
            os.close(leader_read)
        # Read before the next reap, so the PID cannot have been reused yet.
        started = {"pid": pid, "start_ticks": start_ticks(pid)}
        with contextlib.suppress(OSError):  # the client may be gone: say it before answering
            write_job_record(
                str(request["log"]),
                {**started, "zygote": os.getpid(), "zygote_ticks": start_ticks(os.getpid())},
            )
        return started

    def handle(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            self.reply({"error": f"bad request: {error}"})
            return
        self.reply(self.spawn(request))

    def serve(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # SIGCHLD wakes the loop through the wakeup pipe; the handler itself does nothing.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_write)
        self.reply({"ready": True, "pid": os.getpid()})
        pending = b""
        idle_preload = list(PRELOAD_WHEN_IDLE)
        while True:
            self.reap()
            timeout = IDLE_SECONDS if idle_preload else 5.0
            try:
                readable, _, _ = select.select([self.requests, self.wake_read], [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select
                continue
            if not readable and idle_preload:
                importlib.import_module(idle_preload.pop(0))
            if self.wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_read, 512):
                        pass
            if self.requests not in readable:
                continue
            data = os.read(self.requests, 1 << 16)
            if not data:
                return  # the orchestrator is gone: leave the children to their jobs
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    self.reap()
                    self.handle(line)


def _warm_up() -> None:
    """Do once what every job would do first: build the manifests' (de)serializers."""
    from stepframe._manifests import LaunchManifest, ResultManifest, _converter

    _converter.get_structure_hook(LaunchManifest)
    _converter.get_unstructure_hook(ResultManifest)


def main() -> int:
    global _base_path
    # `python -m` put the zygote's working directory first: no place to import from.
    script_dir = sys.path[0] if sys.path else None
    own_pythonpath = set(_pythonpath(os.environ))
    _base_path = [p for p in sys.path[1:] if p not in own_pythonpath and p != script_dir]
    for name in PRELOAD:
        importlib.import_module(name)
    _warm_up()
    zygote = _Zygote(sys.stdin.fileno(), sys.stdout.fileno())
    try:
        zygote.serve()
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
