"""What a process remembers about builds is bounded and kept on objects (issue 12)."""

from __future__ import annotations

import threading
from pathlib import Path

from stepframe import ImageRef
from stepframe_docker._builder import BuildReport, Builds
from stepframe_docker._context import FileDigests


def test_answered_references_are_bounded_least_recently_used_first() -> None:
    builds = Builds(remembered=2)
    for name in ("a", "b"):
        builds.remember(name, ImageRef(f"r/{name}:1"))
    assert builds.answered("a") is not None  # "a" is now the most recently used
    builds.remember("c", ImageRef("r/c:1"))
    assert builds.answered("b") is None
    assert builds.answered("a") is not None and builds.answered("c") is not None


def test_reports_are_bounded_oldest_first() -> None:
    builds = Builds(reports=3)
    for index in range(5):
        builds.report(BuildReport(f"r/x:{index}", None, "built"))
    assert [r.uri for r in builds.reports()] == ["r/x:2", "r/x:3", "r/x:4"]


def test_a_references_lock_goes_once_nobody_holds_or_waits_for_it() -> None:
    builds = Builds()
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with builds.exclusive("r/x:1"):
            inside.set()
            release.wait()
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    waiter = threading.Thread(target=lambda: _hold(builds, order))
    waiter.start()
    assert builds.lock_count() == 1
    release.set()
    thread.join()
    waiter.join()
    assert order == ["first", "second"]  # the same reference: one after the other
    assert builds.lock_count() == 0


def _hold(builds: Builds, order: list[str]) -> None:
    with builds.exclusive("r/x:1"):
        order.append("second")


def test_file_digests_are_bounded(tmp_path: Path) -> None:
    digests = FileDigests(limit=3)
    files = []
    for index in range(5):
        path = tmp_path / f"f{index}"
        path.write_text(str(index))
        files.append(path)
        digests(path)
    assert len(digests) == 3
    assert digests(files[0]) == digests(files[0])  # hashed again, same answer
