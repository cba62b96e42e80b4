"""Throughput and memory of the azure-blob artifact store against azure-storage-blob's own
transfers, on Azurite.

    python bench/azure_blob_transfer.py [--size-mib 1024] [--rounds 3]

One file of ``--size-mib`` random bytes goes to Azurite (``azurite-blob`` 3.35.0 in a
process of its own on 127.0.0.1, blobs kept on disk; found as the tests find it:
``STEPFRAME_AZURITE``, ``.ci/services.sh``'s install, PATH) and back, by stepframe's store
(``open_write``/``open_read``, the file streamed in 1 MiB pieces) and by azure-storage-blob
(``BlobClient.upload_blob``/``download_blob().readinto``, with its default concurrency and
block sizes), alternating, each transfer in a fresh child process so neither warms the
other's connections or memory.  Both sign with the development account's key.

Figures per direction: the median MiB/s of each, stepframe's as a ratio of the SDK's
(target >= 1.0), and each transfer's peak memory (the child's VmHWM minus its VmRSS just
before the transfer began, the client already made; target <= 80 MiB for stepframe).  The
sha256 of what came back is checked.  Both share the machine's cores with Azurite (Node),
which does much of the work, so the ratio matters more than the MiB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from _support import file_sha256, run_transfer

TARGET_RATIO = 1.0
TARGET_MEMORY_MIB = 80
MIB = 1 << 20
TOOLS = ("azure-sdk", "stepframe")
_AZURITE = Path(__file__).resolve().parent.parent / "stepframe-azure" / "tests" / "_azurite.py"


def _azurite() -> ModuleType:
    """The tests' Azurite helpers (finding, starting and talking to azurite-blob)."""
    import importlib.util

    if "_azurite" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_azurite", _AZURITE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["_azurite"] = module
        spec.loader.exec_module(module)
    return sys.modules["_azurite"]


# What a child runs: one transfer; its time and memory as JSON on stdout.
CHILD = r"""
import json, os, sys, time

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

tool, direction, path, container, name, api_version = sys.argv[1:7]
connection = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
if tool == "stepframe":
    from stepframe_azure._blob.store import AzureBlobArtifactStore
    options = json.loads(os.environ.get("STORE_OPTIONS", "{}"))
    store = AzureBlobArtifactStore.open(f"az://devstoreaccount1/{container}", None, **options)
    uri = store.uri_for(name)
    store.exists(uri + "-warm")  # the connection pool is open
else:
    from azure.storage.blob import BlobServiceClient
    service = BlobServiceClient.from_connection_string(connection, api_version=api_version)
    blob = service.get_blob_client(container, name)
    service.get_container_client(container).get_container_properties()
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
    with open(path, "rb") as source:
        blob.upload_blob(source, overwrite=True)
else:
    with open(path, "wb") as sink:
        blob.download_blob().readinto(sink)
elapsed = time.perf_counter() - start
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": elapsed, "peak": status("VmHWM") - before,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def _transfer(
    tool: str, direction: str, path: Path, container: str, env: dict[str, str]
) -> dict[str, float]:
    return run_transfer(
        CHILD, tool, direction, [str(path), container, "big.bin", _azurite().SDK_API_VERSION], env
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="transfers per tool and way")
    parser.add_argument("--block-mib", type=int, help="the store's block size (default its own)")
    parser.add_argument("--range-mib", type=int, help="the store's read range (default its own)")
    parser.add_argument("--in-flight", type=int, help="the store's blocks/ranges in flight")
    args = parser.parse_args()
    options = {
        name: value
        for name, value in (
            ("block_size", args.block_mib and args.block_mib * MIB),
            ("range_size", args.range_mib and args.range_mib * MIB),
            ("blocks_in_flight", args.in_flight),
        )
        if value
    }

    program = _azurite().find_azurite()
    if program is None:
        sys.exit("bench: azurite-blob not found; run .ci/services.sh or set STEPFRAME_AZURITE")
    server = _azurite().start_azurite(program)
    env = {
        **os.environ,
        "AZURE_STORAGE_CONNECTION_STRING": server.connection_string(),
        "NO_PROXY": "127.0.0.1,localhost",
        "STORE_OPTIONS": json.dumps(options),
    }
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="stepframe-azure-bench-") as folder:
            source = Path(folder) / "source.bin"
            with source.open("wb") as out:
                for _ in range(args.size_mib):
                    out.write(os.urandom(MIB))
            expected = file_sha256(source)
            service = server.service()
            for round_ in range(args.rounds):
                for tool in TOOLS:
                    container = f"bench-{round_}-{tool}"
                    service.create_container(container)
                    up = _transfer(tool, "up", source, container, env)
                    results.setdefault((tool, "up"), []).append(up)
                    copy = Path(folder) / f"back-{tool}.bin"
                    down = _transfer(tool, "down", copy, container, env)
                    if file_sha256(copy) != expected:
                        sys.exit(f"bench: the {tool} round trip changed the data")
                    copy.unlink()
                    results.setdefault((tool, "down"), []).append(down)
                    service.delete_container(container)  # Azurite's disk, not its memory
    finally:
        server.stop()

    size = args.size_mib
    print(f"azure-blob transfer of {size} MiB to and from Azurite, {args.rounds} round(s), medians")
    for direction in ("up", "down"):
        rates = {}
        for tool in TOOLS:
            runs = results[(tool, direction)]
            rates[tool] = size / statistics.median(run["seconds"] for run in runs)
            peak = max(run["peak"] for run in runs) / MIB
            cpu = statistics.median(run["cpu"] for run in runs)
            print(
                f"  {direction:4} {tool:9} {rates[tool]:7.1f} MiB/s  peak +{peak:6.1f} MiB  "
                f"client CPU {cpu:.1f} s"
            )
        ratio = rates["stepframe"] / rates["azure-sdk"]
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(
            f"  {direction:4} stepframe/azure-sdk throughput {ratio:.2f}x "
            f"(target >= {TARGET_RATIO}): {verdict}"
        )
    memory = max(run["peak"] for d in ("up", "down") for run in results[("stepframe", d)]) / MIB
    verdict = "meets" if memory <= TARGET_MEMORY_MIB else "MISSES"
    print(f"  stepframe peak memory +{memory:.1f} MiB (target <= {TARGET_MEMORY_MIB}): {verdict}")


if __name__ == "__main__":
    main()
