"""Throughput and memory of the s3 artifact store against boto3's own transfers.

    python bench/s3_transfer.py [--size-mib 1024] [--rounds 1]

One file of ``--size-mib`` random bytes goes to moto's S3 server (in a process of its
own, on 127.0.0.1) and back, by stepframe's store (``open_write``/``open_read``, the
file streamed in 1 MiB chunks) and by boto3's ``upload_file``/``download_file``
(s3transfer, its default concurrency of 10 threads and 8 MiB parts), in the same run,
alternating.  Each transfer runs in a fresh child process, so neither warms the other's
connections or memory.

Figures per direction: the median MiB/s of each (every round's in brackets),
stepframe's throughput as a ratio of boto3's medians and round by round (target >= 1.0),
and each transfer's peak memory (the child's VmHWM minus its VmRSS just before the
transfer began, with the client already made; target <= 80 MiB for stepframe).  The
data round-trips: the sha256 of what came back is checked.  Both sides share one core
machine with moto, which does most of the work, so the ratio matters more than the
MiB/s; on a loaded machine, run several rounds and read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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

# What a child runs: one transfer, its time and memory as JSON on stdout.
CHILD = r"""
import hashlib, json, os, sys, time

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

tool, direction, path, bucket, key = sys.argv[1:6]
if tool == "stepframe":
    from stepframe_aws._s3.store import S3ArtifactStore
    store = S3ArtifactStore(f"s3://{bucket}", **json.loads(os.environ["STORE_OPTIONS"]))
    uri = store.uri_for(key)
    # The first request opens the connection pool and loads botocore's S3 model.
    store.exists(uri + "-warm")
else:
    import boto3
    client = boto3.client("s3")
    client.head_bucket(Bucket=bucket)
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
    client.upload_file(path, bucket, key)
else:
    client.download_file(bucket, key, path)
elapsed = time.perf_counter() - start
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": elapsed, "peak": status("VmHWM") - before,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while True:
        try:
            with opener.open(f"{endpoint}/moto-api/", timeout=1):
                return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                sys.exit("bench: moto's server did not start (pip install 'moto[server]')")
            time.sleep(0.1)


def _reset(endpoint: str) -> None:
    """Drop moto's objects between transfers (it keeps them all in memory)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with opener.open(request) as answer:
        answer.read()


def _transfer(
    tool: str, direction: str, path: Path, bucket: str, key: str, env: dict[str, str]
) -> dict[str, float]:
    return run_transfer(CHILD, tool, direction, [str(path), bucket, key], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="transfers per tool and way")
    parser.add_argument(
        "--parts-in-flight", type=int, default=None, help="the store's (default its own)"
    )
    parser.add_argument("--up-only", action="store_true", help="uploads only")
    args = parser.parse_args()
    options = {} if args.parts_in_flight is None else {"parts_in_flight": args.parts_in_flight}

    server, endpoint = _start_moto()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "NO_PROXY": "127.0.0.1,localhost",
        "STORE_OPTIONS": json.dumps(options),
    }
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="stepframe-s3-bench-") as folder:
            source = Path(folder) / "source.bin"
            with source.open("wb") as out:
                for _ in range(args.size_mib):
                    out.write(os.urandom(MIB))
            expected = file_sha256(source)
            import boto3

            for round_ in range(args.rounds):
                for tool in ("boto3", "stepframe"):
                    _reset(endpoint)
                    bucket = f"bench-{round_}-{tool}"
                    boto3.client(
                        "s3",
                        endpoint_url=endpoint,
                        region_name="us-east-1",
                        aws_access_key_id="bench",
                        aws_secret_access_key="bench",
                    ).create_bucket(Bucket=bucket)
                    key = "big.bin"
                    up = _transfer(tool, "up", source, bucket, key, env)
                    results.setdefault((tool, "up"), []).append(up)
                    if args.up_only:
                        continue
                    copy = Path(folder) / f"back-{tool}.bin"
                    down = _transfer(tool, "down", copy, bucket, key, env)
                    if file_sha256(copy) != expected:
                        sys.exit(f"bench: the {tool} round trip changed the data")
                    copy.unlink()
                    results.setdefault((tool, "down"), []).append(down)
    finally:
        server.terminate()
        server.wait(timeout=30)

    size = args.size_mib
    print(f"s3 transfer of {size} MiB to and from moto's server, {args.rounds} round(s)")
    directions = ("up",) if args.up_only else ("up", "down")
    for direction in directions:
        rates = {}
        for tool in ("boto3", "stepframe"):
            runs = results[(tool, direction)]
            seconds = sorted(run["seconds"] for run in runs)
            peak = max(run["peak"] for run in runs) / MIB
            cpu = statistics.median(run["cpu"] for run in runs)
            rates[tool] = size / statistics.median(seconds)
            spread = ", ".join(f"{size / s:.1f}" for s in seconds)
            print(
                f"  {direction:4} {tool:9} median {rates[tool]:7.1f} MiB/s ({spread})  "
                f"peak +{peak:6.1f} MiB  client CPU {cpu:.1f} s"
            )
        # Per round too: both tools of one round ran back to back, at about the same load.
        per_round = [
            results[("boto3", direction)][i]["seconds"]
            / results[("stepframe", direction)][i]["seconds"]
            for i in range(args.rounds)
        ]
        ratio = rates["stepframe"] / rates["boto3"]
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(
            f"  {direction:4} stepframe/boto3 throughput {ratio:.2f}x of the medians, "
            f"per round {', '.join(f'{r:.2f}' for r in per_round)} "
            f"(target >= {TARGET_RATIO}): {verdict}"
        )
    memory = max(run["peak"] for d in directions for run in results[("stepframe", d)]) / MIB
    verdict = "meets" if memory <= TARGET_MEMORY_MIB else "MISSES"
    print(f"  stepframe peak memory +{memory:.1f} MiB (target <= {TARGET_MEMORY_MIB}): {verdict}")


if __name__ == "__main__":
    main()
