"""``stepframe ui``: the pages in headless Chromium, served by the real command.

The live test holds a step of a real run at a gate (a file it waits for), loads the
run's page, waits until the page asks the server for news, opens the gate, and checks
that the page it kept open now shows the finished run, updated in place.
"""

from __future__ import annotations

import importlib.util
import queue
import re
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from stepframe._report.html import STATE_COLOURS

NUMBERS = """
    from stepframe import pipeline, step

    @step
    def load(rows: int = 6) -> list[int]:
        return list(range(rows))

    @step(operator="local")
    def total(xs: list[int]) -> int:
        print("adding", len(xs), "numbers")
        return sum(xs)

    @pipeline
    def numbers(rows: int = 6) -> None:
        total(load(rows))
"""

BROKEN = """
    from stepframe import pipeline, step

    @step
    def explode() -> int:
        raise RuntimeError("boom")

    @pipeline
    def broken() -> None:
        explode()
"""

GATED = """
    import os, time
    from pathlib import Path
    from stepframe import pipeline, step

    @step
    def first() -> int:
        return 1

    @step
    def gate(x: int) -> int:
        gate = Path(os.environ["GATE"])
        print("waiting at the gate", flush=True)
        Path(str(gate) + ".waiting").touch()
        while not gate.exists():  # the test opens the gate
            time.sleep(0.02)
        print("through the gate", flush=True)
        return x + 1

    @step
    def last(y: int) -> int:
        return y * 2

    @pipeline
    def gated() -> None:
        last(gate(first()))
"""


@pytest.fixture
def browser() -> ModuleType:
    """tests/browser.py (helpers are loaded by path: the tests run in importlib mode)."""
    path = Path(__file__).with_name("browser.py")
    spec = importlib.util.spec_from_file_location("_sf_browser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """A running ``stepframe ui``: its address, and its output line by line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()
        first = self.wait_for_line(r"serving .* on (http://127\.0\.0\.1:\d+/)")
        self.url = re.search(r"http://127\.0\.0\.1:\d+/", first).group(0)  # type: ignore[union-attr]

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for_line(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"stepframe ui printed no line matching {pattern!r}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=30) as response:
            return response.read().decode()


@pytest.fixture
def ui(cli_popen) -> Callable[[], Server]:
    return lambda: Server(cli_popen("ui"))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_runs_list_filters_by_pipeline_and_status(project, run, ui, browser, tmp_path) -> None:
    numbers = [run(project.load(NUMBERS), use_cache=False) for _ in range(2)]
    broken = run(project.load(BROKEN), raise_on_failure=False)
    server = ui()

    def listed(query: str) -> dict[str, str]:
        dom = browser.dump_dom(server.url + query, tmp_path / "profile")
        rows = browser.Elements(dom).find("tr", **{"class": "run"})
        return {row["data-run"]: row["data-status"] for row in rows}

    everything = listed("")
    assert everything == {
        numbers[0].run_id: "succeeded",
        numbers[1].run_id: "succeeded",
        broken.run_id: "failed",
    }
    assert set(listed("?pipeline=numbers")) == {r.run_id for r in numbers}
    assert listed("?status=failed") == {broken.run_id: "failed"}
    today = time.strftime("%Y-%m-%d")
    assert len(listed(f"?since={today}&until={today}")) == 3
    assert listed("?until=2000-01-01") == {}


def test_a_step_page_shows_its_job_and_log(project, run, ui, browser, tmp_path) -> None:
    result = run(project.load(NUMBERS))
    server = ui()
    dom = browser.dump_dom(f"{server.url}run/{result.run_id}/step/total", tmp_path / "profile")
    assert "adding 6 numbers" in dom
    assert "(flavor local)" in dom
    missing = browser.dump_dom(f"{server.url}run/{result.run_id}/step/nope", tmp_path / "p2")
    assert f"run {result.run_id} has no step 'nope'" in missing


def test_the_run_page_follows_a_running_run(project, cli_popen, ui, browser, tmp_path) -> None:
    gate = tmp_path / "gate"
    path = project.write(GATED)
    running = cli_popen("run", str(path), env={"GATE": str(gate)})
    wait_for(lambda: Path(str(gate) + ".waiting").exists(), "the step to reach the gate")
    with sqlite3.connect(project.database_path) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
    server = ui()

    before = browser.dump_dom(f"{server.url}run/{run_id}", tmp_path / "profile")
    nodes, edges = browser.dag(before)
    assert {s: n["data-state"] for s, n in nodes.items()} == {
        "first": "succeeded",
        "gate": "running",
        "last": "pending",
    }
    assert nodes["gate"]["fill"] == STATE_COLOURS["running"]
    assert edges == {("first", "gate")}  # `last` has not started: its input is not known

    # The page stays open (virtual time stands still while its request for news waits).
    page = subprocess.Popen(
        browser.browser_command(
            f"{server.url}run/{run_id}?kept=open",  # told apart from the page above
            tmp_path / "profile2",
            "--virtual-time-budget=120000",
            "--dump-dom",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        server.wait_for_line(rf"following run {run_id} for \S+\?kept=open")
        gate.touch()  # the step finishes, and so does the run
        after, _ = page.communicate(timeout=120)
    finally:
        if page.poll() is None:
            page.kill()
            page.wait()
    assert running.wait(timeout=60) == 0

    body = browser.Elements(after).find("body")[0]
    assert int(body.get("data-updates", "0")) >= 1  # updated in place, not reloaded
    live = browser.Elements(after).find("div", id="live")[0]
    assert live["data-live"] == "no"  # the run ended: the page stopped asking
    nodes, edges = browser.dag(after)
    assert {s: n["data-state"] for s, n in nodes.items()} == dict.fromkeys(
        ("first", "gate", "last"), "succeeded"
    )
    assert {n["fill"] for n in nodes.values()} == {STATE_COLOURS["succeeded"]}
    assert edges == {("first", "gate"), ("gate", "last")}


def test_compare_names_what_differs_and_why_the_cache_missed(
    project, run, ui, browser, tmp_path
) -> None:
    pipeline = project.load(NUMBERS)
    six = run(pipeline.compile(rows=6))
    eight = run(pipeline.compile(rows=8))
    broken = run(project.load(BROKEN), raise_on_failure=False)
    server = ui()

    dom = browser.dump_dom(
        f"{server.url}compare?a={six.run_id}&b={eight.run_id}", tmp_path / "profile"
    )
    rows = browser.Elements(dom).find("tr", **{"class": "difference"})
    kinds = [row["data-kind"] for row in rows]
    assert "parameter" in kinds
    assert "input sha256" in kinds  # load's parameter input and total's input
    assert "output sha256" in kinds
    assert "cache key" in kinds
    assert "inputs or settings differ" in dom

    choose = browser.dump_dom(f"{server.url}compare?a={six.run_id}", tmp_path / "p2")
    assert f"compare?a={six.run_id}&amp;b={eight.run_id}" in choose or (
        f"compare?a={six.run_id}&b={eight.run_id}" in choose
    )
    refused = browser.dump_dom(
        f"{server.url}compare?a={six.run_id}&b={broken.run_id}", tmp_path / "p3"
    )
    assert "compare two runs of one pipeline" in refused


def test_the_server_reads_only_and_never_blocks_a_writer(project, run, ui) -> None:
    result = run(project.load(NUMBERS))
    server = ui()
    assert result.run_id in server.get("/")
    writer = sqlite3.connect(project.database_path, timeout=0, isolation_level=None)
    try:
        for _ in range(3):
            server.get(f"/run/{result.run_id}")
            writer.execute("BEGIN IMMEDIATE")  # fails at once if a reader held a lock
            writer.execute("UPDATE runs SET error = 'edited' WHERE run_id = ?", (result.run_id,))
            writer.execute("COMMIT")
    finally:
        writer.close()
    assert "edited" in server.get(f"/run/{result.run_id}")
    with pytest.raises(urllib.error.HTTPError) as missing:
        server.get("/run/nosuchrun")
    assert missing.value.code == 404


def test_a_step_page_follows_its_log(project, cli_popen, ui, browser, tmp_path) -> None:
    gate = tmp_path / "gate"
    running = cli_popen("run", str(project.write(GATED)), env={"GATE": str(gate)})
    wait_for(lambda: Path(str(gate) + ".waiting").exists(), "the step to reach the gate")
    with sqlite3.connect(project.database_path) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
    server = ui()
    path = f"run/{run_id}/step/gate?kept=open"
    wait_for(lambda: "waiting at the gate" in server.get(path), "the step's first line in its log")
    url = server.url + path
    page = subprocess.Popen(
        browser.browser_command(
            url, tmp_path / "profile", "--virtual-time-budget=120000", "--dump-dom"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        server.wait_for_line(rf"/step/gate\?after=\S+: following run {run_id} for \S+kept=open")
        gate.touch()
        after, _ = page.communicate(timeout=120)
    finally:
        if page.poll() is None:
            page.kill()
            page.wait()
    assert running.wait(timeout=60) == 0
    assert int(browser.Elements(after).find("body")[0].get("data-updates", "0")) >= 1
    log = after[after.index('<pre class="log">') :]
    assert "waiting at the gate" in log and "through the gate" in log
