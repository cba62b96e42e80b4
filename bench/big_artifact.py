"""Peak memory while a 1 GiB file artifact passes between two steps.

    python bench/big_artifact.py [--size-mib 1024] [--writer inprocess] [--reader local]

The first step writes the file in 1 MiB chunks and returns its ``pathlib.Path``; the
path materializer streams it into the artifact store; the second step (by default in a
fresh process through the ``local`` operator) gets it back as a file, reads it in chunks
and returns its sha256, which is checked.  Target: the run's peak memory under 200 MiB.

Figures: the peak RSS of the largest single process (``getrusage(RUSAGE_CHILDREN)``, exact)
and of the whole process tree summed (sampled from /proc every 20 ms), with each
process's own peak (VmHWM).  Everything happens in a temporary folder (TMPDIR included),
removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from _support import stepframe_command

TARGET_MIB = 200
CHUNK = 1 << 20

PIPELINE = """\
import hashlib
import random
from pathlib import Path

from stepframe import pipeline, step

CHUNK = 1 << 20


@step(operator={writer!r})
def write_file(folder: str, size_mib: int) -> Path:
    block = random.Random(0).randbytes(CHUNK)
    path = Path(folder) / "big.bin"
    with path.open("wb") as out:
        for _ in range(size_mib):
            out.write(block)
    return path


@step(operator={reader!r})
def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@pipeline
def big_artifact(folder: str = {folder!r}, size_mib: int = {size_mib}) -> None:
    hash_file(write_file(folder, size_mib))
"""


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants from /proc."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.stop = threading.Event()
        self.peak_total = 0
        self.peaks: dict[int, tuple[int, str]] = {}  # pid -> (VmHWM bytes, command)

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, frontier = [self.root], [self.root]
        while frontier:
            children = [pid for pid, parent in parents.items() if parent in frontier]
            tree.extend(children)
            frontier = children
        return tree

    def _sample(self) -> None:
        total = 0
        for pid in self._tree():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", status, re.MULTILINE))
            total += int(fields.get("VmRSS", 0)) * 1024
            hwm = int(fields.get("VmHWM", 0)) * 1024
            label = command.decode(errors="replace").strip()
            if hwm >= self.peaks.get(pid, (0, ""))[0]:
                self.peaks[pid] = (hwm, label)
        self.peak_total = max(self.peak_total, total)

    def run(self) -> None:
        while not self.stop.is_set():
            self._sample()
            self.stop.wait(self.interval)


def expected_digest(size_mib: int) -> str:
    block = random.Random(0).randbytes(CHUNK)
    digest = hashlib.sha256()
    for _ in range(size_mib):
        digest.update(block)
    return digest.hexdigest()


def mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file artifact")
    parser.add_argument("--writer", default="inprocess", help="operator of the writing step")
    parser.add_argument("--reader", default="local", help="operator of the reading step")
    parser.add_argument("--dir", default=None, help="where to make the temporary project")
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="stepframe-bench-big-", dir=options.dir))
    try:
        data_dir, tmp_dir = folder / "data", folder / "tmp"
        data_dir.mkdir()
        tmp_dir.mkdir()
        source = PIPELINE.format(
            writer=options.writer,
            reader=options.reader,
            folder=str(data_dir),
            size_mib=options.size_mib,
        )
        (folder / "big_pipeline.py").write_text(source)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
        env["TMPDIR"] = str(tmp_dir)  # step scratch folders land here, and go with it

        print(
            f"{options.size_mib} MiB file artifact: write_file on {options.writer!r}, "
            f"hash_file on {options.reader!r}"
        )
        start = time.perf_counter()
        process = subprocess.Popen(
            [*stepframe_command(), "run", "big_pipeline.py"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sampler = TreeSampler(process.pid)
        sampler.start()
        output, _ = process.communicate()
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
        # ru_maxrss of waited-for descendants: the largest single process, in KiB.
        largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if process.returncode != 0:
            print(output)
            print(f"bench: the run failed with exit code {process.returncode}")
            return 1

        run_id = re.search(r"^run (\S+) of pipeline", output, re.MULTILINE)
        assert run_id is not None, output
        shown = subprocess.run(
            [*stepframe_command(), "runs", "show", run_id.group(1), "--json"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        artifacts = {(a["step"], a["output"]): a for a in json.loads(shown.stdout)["artifacts"]}
        stored = artifacts[("write_file", "output")]
        result_path = Path(unquote(urlparse(artifacts[("hash_file", "output")]["uri"]).path))
        digest = json.loads(result_path.read_text())
        expected = expected_digest(options.size_mib)

        print(f"wall time:                      {wall:.1f} s")
        print(f"file artifact stored:           {mib(stored['size'])} ({stored['materializer']})")
        print(f"sha256 seen by hash_file:       {'correct' if digest == expected else 'WRONG'}")
        print("per-process peak RSS (VmHWM, sampled):")
        for hwm, label in sorted(sampler.peaks.values(), reverse=True):
            print(f"  {mib(hwm):>10}  {label[:90]}")
        verdict = "meets" if largest < TARGET_MIB << 20 else "MISSES"
        print(
            f"peak RSS, largest process:      {mib(largest)}  "
            f"(target < {TARGET_MIB} MiB: {verdict})"
        )
        verdict = "meets" if sampler.peak_total < TARGET_MIB << 20 else "MISSES"
        print(
            f"peak RSS, process tree summed:  {mib(sampler.peak_total)}  "
            f"(target < {TARGET_MIB} MiB: {verdict})"
        )
        return 0 if digest == expected else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
