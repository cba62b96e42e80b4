"""Headless Chromium for the tests of the report and `stepframe ui` (not a test module).

The tests load pages in Debian's ``chromium`` and check the DOM it built: what is drawn,
not what was sent.  Without chromium they skip, except under CI (``CI=true``), where the
browser is part of the machine (``bash .ci/services.sh`` installs it) and its absence
is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium() -> str:
    """The browser's path; skips (fails under CI) when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install chromium; .ci/services.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def browser_command(url: str, profile: Path, *extra: str) -> list[str]:
    return [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url]


def dump_dom(url: str, profile: Path, *extra: str, timeout: float = 120) -> str:
    """The DOM after the page loaded (and ran its scripts for the virtual time given)."""
    done = subprocess.run(
        browser_command(url, profile, *extra, "--dump-dom"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, profile: Path, path: Path, width: int = 1300, height: int = 1500) -> None:
    done = subprocess.run(
        browser_command(url, profile, f"--window-size={width},{height}", f"--screenshot={path}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and path.is_file(), done.stderr[-2000:]


class Elements(HTMLParser):
    """Every element of a document as ``(tag, attributes)``, with the text inside the
    elements that have a class (enough for these pages)."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        """Elements of ``tag`` whose attributes include ``wanted`` (class: one of its
        classes; a trailing underscore in a name stands for a dash: data_step)."""
        found = []
        for name, attributes in self.elements:
            if name != tag:
                continue
            ok = True
            for key, value in wanted.items():
                key = key.replace("_", "-")
                if key == "class":
                    ok = ok and value in attributes.get("class", "").split()
                else:
                    ok = ok and attributes.get(key) == value
            if ok:
                found.append(attributes)
        return found


def dag(document: str) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    """The drawn DAG: nodes by step (their attributes, and their rectangle's fill), and
    edges as ``(from, to)``."""
    nodes: dict[str, dict[str, str]] = {}
    current: str | None = None
    parsed = Elements(document)
    for tag, attributes in parsed.elements:
        if tag == "g" and "node" in attributes.get("class", "").split():
            current = attributes["data-step"]
            nodes[current] = dict(attributes)
        elif tag == "rect" and current is not None and "fill" not in nodes[current]:
            nodes[current]["fill"] = attributes.get("fill", "")
    edges = {(e["data-from"], e["data-to"]) for e in parsed.find("path", **{"class": "edge"})}
    return nodes, edges
