"""Small disks for full-disk tests: a tmpfs mounted over a folder, filled and freed.

Private: stepframe's own suites use it (the core's ``test_disk_full.py`` and the
repository's crash suite); it is not part of the testing kit's public API.  Mounting
needs root (as on CI).  Where it is not permitted the test skips, unless
``STEPFRAME_REQUIRE_MOUNT=1`` or ``CI=true`` makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["SmallDisk", "fill", "small_disks"]


def _mount_required() -> bool:
    return os.environ.get("STEPFRAME_REQUIRE_MOUNT") == "1" or os.environ.get("CI") == "true"


def fill(folder: Path | str, name: str = "filler") -> None:
    """Write ``folder/name`` until the disk under it has not one byte left (tmpfs counts in
    pages, so the last writes are small); also from inside a step, in a job's process."""
    with open(Path(folder) / name, "ab", buffering=0) as filler:
        for chunk in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"x" * chunk)


class SmallDisk:
    """A mounted tmpfs that a test fills and frees."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        fill(self.path)
        assert shutil.disk_usage(self.path).free == 0, f"{self.path} did not fill"

    def free(self) -> None:
        """Remove what `fill` wrote, here or from a step (``filler*``)."""
        for filler in self.path.glob("filler*"):
            filler.unlink()


class _Mounter:
    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def __call__(self, path: Path, size: str = "2m", inodes: int | None = None) -> SmallDisk:
        """A tmpfs of ``size`` (and at most ``inodes`` files and folders) at ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
        if shutil.which("mount") is None:
            problem = "there is no mount command"
        else:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            problem = result.stderr.strip() if result.returncode else ""
        if problem:
            what = f"cannot mount a small tmpfs to fill ({problem})"
            if _mount_required():
                pytest.fail(f"{what}; these tests need root (CI runs them as root)")
            pytest.skip(f"{what} (set STEPFRAME_REQUIRE_MOUNT=1 to fail instead)")
        self.mounted.append(path)
        return SmallDisk(path)


@contextlib.contextmanager
def small_disks() -> Iterator[_Mounter]:
    """``with small_disks() as mount: mount(path, size="2m", inodes=None)``: tmpfs disks
    mounted for the block, unmounted at its end (inner mounts first).  A ``small_disk``
    fixture is this, yielded."""
    mounter = _Mounter()
    try:
        yield mounter
    finally:
        for path in reversed(mounter.mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)
