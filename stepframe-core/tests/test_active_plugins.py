"""The plugins a run activates are its own: two runs on two threads of one process each
see theirs, in the run's threads and in its in-process steps (a context variable, not a
process-wide list)."""

from __future__ import annotations

import threading
from typing import Any

from stepframe import Plugins
from stepframe._plugins.manager import activated, get_plugins

TWO_RUNS = """
import time
from pathlib import Path

from stepframe import step, pipeline
from stepframe._plugins.manager import get_plugins


@step
def which(tag: str) -> list[str]:
    \"\"\"Wait (a while at most) until both runs' steps run, then name this run's marker.\"\"\"
    Path(f"{tag}.running").touch()
    deadline = time.monotonic() + 60
    while len(list(Path().glob("*.running"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return sorted(name for name in get_plugins().infos if name.startswith("marker_"))


@pipeline
def tagged(tag: str):
    which(tag)
"""


class Marker:
    """A plugin with no hooks: only its name tells one set of plugins from the other."""


def test_two_threads_each_see_the_plugins_they_activated(make_plugins: Any) -> None:
    mine: dict[str, Plugins] = {"a": make_plugins(), "b": make_plugins()}
    both = threading.Barrier(2, timeout=30)
    seen: dict[str, Plugins] = {}

    def use(name: str) -> None:
        with activated(mine[name]):
            both.wait()  # both are active now...
            seen[name] = get_plugins()
            both.wait()  # ...and stay so until both have looked

    threads = [threading.Thread(target=use, args=(name,)) for name in mine]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert seen == mine
    assert get_plugins() not in mine.values()  # and this thread activated none


def test_two_runs_at_once_each_run_their_steps_with_their_plugins(
    project: Any, run: Any, make_plugins: Any
) -> None:
    tagged = project.module(TWO_RUNS).tagged
    outputs: dict[str, object] = {}
    errors: list[BaseException] = []

    def run_tagged(tag: str) -> None:
        try:
            result = run(tagged.compile(tag), plugins=make_plugins((f"marker_{tag}", Marker())))
            outputs[tag] = result.output("which")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run_tagged, args=(tag,)) for tag in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert errors == []
    assert outputs == {"a": ["marker_a"], "b": ["marker_b"]}
