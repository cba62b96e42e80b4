"""``stepframe report``: one HTML file about a run, checked in headless Chromium.

The run is real: in-process and ``local`` steps, one failing, one skipped after it, and a
second run that takes unchanged steps from the cache.  The tests read the DOM Chromium
built from the file: the DAG's SVG nodes, colours and edges, and each step's details.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

from stepframe._report.html import STATE_COLOURS

PIPELINE = """
    from stepframe import pipeline, step

    @step
    def load(rows: int = 6) -> list[int]:
        return list(range(rows))

    @step(outputs=["train", "test"])
    def split(xs: list[int]) -> tuple[list[int], list[int]]:
        return xs[:4], xs[4:]

    @step(operator="local")
    def fit(train: list[int]) -> dict[str, float]:
        print("fitting on", len(train), "rows")
        return {"slope": 1.5, "rows": len(train)}

    @step
    def evaluate(model: dict[str, float], test: list[int]) -> float:
        raise ValueError("the test split is too small to evaluate")

    @step
    def publish(score: float) -> None:
        pass

    @step
    def side(seed: int = 1) -> int:
        return seed * 2

    @pipeline
    def reported(rows: int = 6, seed: int = 1) -> None:
        train, test = split(load(rows))
        publish(evaluate(fit(train), test))
        side(seed)
"""

EDGES = {("load", "split"), ("split", "fit"), ("split", "evaluate"), ("fit", "evaluate")}


@pytest.fixture
def browser() -> ModuleType:
    """tests/browser.py (helpers are loaded by path: the tests run in importlib mode)."""
    spec = importlib.util.spec_from_file_location(
        "_sf_browser", Path(__file__).with_name("browser.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def statuses(project, run_id: str) -> dict[str, str]:
    with sqlite3.connect(project.database_path) as conn:
        rows = conn.execute("SELECT step, status FROM steps WHERE run_id = ?", (run_id,))
        return dict(rows.fetchall())


def test_the_report_draws_the_dag_states_operators_and_details(
    project, run, cli, browser, tmp_path
) -> None:
    pipeline = project.load(PIPELINE)
    first = run(pipeline, raise_on_failure=False)
    second = run(pipeline, raise_on_failure=False, use_cache=True)
    states = statuses(project, second.run_id)
    assert states == {
        "load": "cached",
        "split": "cached",
        "fit": "cached",
        "side": "cached",
        "evaluate": "failed",
        "publish": "skipped",
    }

    done = cli("report", second.run_id[-6:], "-o", "out/run.html")
    assert done.returncode == 0, done.stderr
    report = project.root / "out" / "run.html"
    assert f"wrote out/run.html (run {second.run_id}" in done.stdout

    text = report.read_text()
    # Self-contained: nothing for a browser to fetch.
    for fetch in ("<link", "src=", "@import", "url(http"):
        assert fetch not in text

    dom = browser.dump_dom(report.as_uri(), tmp_path / "profile")
    nodes, edges = browser.dag(dom)
    assert set(nodes) == set(states)
    for step, node in nodes.items():
        assert node["data-state"] == states[step]
        assert node["fill"] == STATE_COLOURS[states[step]]
        assert node["data-operator"] == ("local" if step == "fit" else "inprocess")
    # Edges come from the launch manifests; the step that never started has none.
    assert edges == EDGES
    assert "their inputs, and so their edges in the DAG, are known only once a step starts" in dom

    page = browser.Elements(dom)
    sections = {s["data-step"] for s in page.find("section", **{"class": "step"})}
    assert sections == set(states)
    assert "ValueError: the test split is too small to evaluate" in dom  # the traceback
    assert f"taken from the cache: the outputs of run {first.run_id}, step 'fit'" in dom
    assert "fitting on 4 rows" in dom  # the log of the local job that computed `fit`
    assert '{"rows": 4, "slope": 1.5}' in dom  # a small JSON output's preview
    assert page.find("tr", **{"class": "output", "data_output": "train"})
    assert page.find("rect", **{"class": "segment", "data_step": "evaluate"})


def test_the_first_run_shows_why_steps_ran(project, run, cli, browser, tmp_path) -> None:
    first = run(project.load(PIPELINE), raise_on_failure=False)
    done = cli("report", first.run_id, "-o", "first.html")
    assert done.returncode == 0, done.stderr
    dom = browser.dump_dom((project.root / "first.html").as_uri(), tmp_path / "profile")
    nodes, edges = browser.dag(dom)
    assert {s: n["data-state"] for s, n in nodes.items()} == statuses(project, first.run_id)
    assert edges == EDGES
    assert "ran: no earlier run had the same code, inputs, settings and operator" in dom


def test_an_unknown_run_is_one_line_and_exit_2(project, run, cli) -> None:
    run(project.load(PIPELINE), raise_on_failure=False)
    done = cli("report", "nosuchrun")
    assert done.returncode == 2
    assert done.stderr.startswith("stepframe: error: no run 'nosuchrun' in ")
    assert "Traceback" not in done.stderr
    elsewhere = project.root / "empty"
    elsewhere.mkdir()
    done = cli("report", "x", cwd=elsewhere)
    assert done.returncode == 2
    assert "no runs recorded at" in done.stderr


FLAKY = """
    from pathlib import Path
    from stepframe import pipeline, step

    @step
    def fetch() -> int:
        return 3

    @step
    def check(n: int) -> int:
        if Path("fail-check").exists():  # the test decides
            raise RuntimeError("check failed on purpose")
        return n

    @step
    def ship(n: int) -> int:
        return n + 1

    @pipeline
    def flaky() -> None:
        ship(check(fetch()))
"""


def test_edges_of_steps_that_did_not_start_come_dashed_from_an_earlier_run(
    project, run, cli, browser, tmp_path
) -> None:
    pipeline = project.load(FLAKY)
    first = run(pipeline)
    (project.root / "fail-check").touch()
    second = run(pipeline, use_cache=False, raise_on_failure=False)
    assert statuses(project, second.run_id)["ship"] == "skipped"

    done = cli("report", second.run_id, "-o", "second.html")
    assert done.returncode == 0, done.stderr
    dom = browser.dump_dom((project.root / "second.html").as_uri(), tmp_path / "profile")
    nodes, edges = browser.dag(dom)
    assert nodes["ship"]["data-state"] == "skipped"
    assert edges == {("fetch", "check")}  # what this run's manifests say
    dashed = browser.Elements(dom).find("path", **{"class": "inferred-edge"})
    assert {(e["data-from"], e["data-to"]) for e in dashed} == {("check", "ship")}
    assert all(e["stroke-dasharray"] for e in dashed)
    assert f"their edges (dashed) are as in run {first.run_id}" in dom
