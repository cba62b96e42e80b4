"""``stepframe ui``: the run pages served read-only on 127.0.0.1 by the standard library.

The run history is opened read-only (SQLite ``mode=ro``), so the server never takes a
write lock and never blocks a run.  A page of a running run asks ``/api/...?after=V``
for news; the server answers as soon as the run's version differs from V (or after
`POLL_SECONDS`, saying nothing changed), so the page follows the run without reloading.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Collection
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from stepframe._report import html
from stepframe._report.model import ManifestCache, compare_runs, gather_run, run_version
from stepframe.exceptions import StepframeError

if TYPE_CHECKING:
    from stepframe._client.stores import ProjectStores
    from stepframe._history.database import RunHistory
    from stepframe._project import Project
    from stepframe._report.model import RunView

__all__ = ["POLL_SECONDS", "Viewer", "make_server"]

#: How long a live page's request waits for the run to change before answering "same".
POLL_SECONDS = 20.0
# How often a waiting request looks at the history.
_CHECK_SECONDS = 0.25
_RUNS_SHOWN = 200
_STATUSES = ("running", "interrupted", "succeeded", "failed", "cancelled")


class Viewer:
    """What every request of one server shares: the read-only history and the stores."""

    def __init__(self, project: Project, history: RunHistory, stores: ProjectStores) -> None:
        self.project = project
        self.history = history
        self.manifests = ManifestCache(stores)
        self.stopping = threading.Event()

    def view(self, run_id: str, details: Collection[str] | None = ()) -> RunView:
        """A run's view; with the log tails and previews of the ``details`` steps only
        (None: every step's, for the report)."""
        run = self.history.find_run(run_id)
        return gather_run(
            self.history, run, project=self.project, manifests=self.manifests, details=details
        )

    def wait_for_change(self, run_id: str, after: str) -> str:
        """The run's version once it differs from ``after``, or after `POLL_SECONDS`."""
        deadline = time.monotonic() + POLL_SECONDS
        while True:
            version = run_version(self.history, run_id)
            if version != after or time.monotonic() >= deadline:
                return version
            if self.stopping.wait(_CHECK_SECONDS):
                return version


def make_server(viewer: Viewer, port: int = 0) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (``port`` 0: a free one) answering with ``viewer``'s pages."""

    class Handler(_Handler):
        pass

    Handler.viewer = viewer
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


class _Handler(BaseHTTPRequestHandler):
    viewer: Viewer
    server_version = "stepframe-ui"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"stepframe ui: {format % args}\n")
        sys.stderr.flush()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        now = time.time()
        try:
            if not parts:
                self._send_html(self._runs_list(query, now))
            elif parts[0] == "run" and len(parts) == 2:
                view = self.viewer.view(parts[1])
                version = run_version(self.viewer.history, view.run.run_id)
                self._send_html(html.render_run_page(view, now, version=version))
            elif parts[0] == "run" and len(parts) == 4 and parts[2] == "step":
                view = self.viewer.view(parts[1], details={parts[3]})
                step = view.step(parts[3])
                if step is None:
                    missing = f"run {view.run.run_id} has no step {parts[3]!r}"
                    self._send_error(HTTPStatus.NOT_FOUND, missing)
                    return
                version = run_version(self.viewer.history, view.run.run_id)
                self._send_html(html.render_step_page(view, step, now, version=version))
            elif parts[0] == "api" and len(parts) in (3, 5) and parts[1] == "run":
                self._live_update(parts, query.get("after", ""))
            elif parts[0] == "compare":
                self._send_html(self._compare(query))
            elif parts[0] == "report" and len(parts) == 2:
                view = self.viewer.view(parts[1], details=None)
                self._send_html(
                    html.render_report(view, now),
                    disposition=f'attachment; filename="run-{view.run.run_id}.html"',
                )
            else:
                self._send_error(HTTPStatus.NOT_FOUND, f"no page at {url.path}")
        except StepframeError as error:  # an unknown or ambiguous run id, say
            self._send_error(HTTPStatus.NOT_FOUND, str(error))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as error:  # the history went away, say: one line, no traceback
            message = f"{type(error).__name__}: {error}"
            self.log_message("%s failed: %s", url.path, message)
            with contextlib.suppress(OSError):
                self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, message)

    def _runs_list(self, query: dict[str, str], now: float) -> str:
        pipeline = query.get("pipeline") or None
        status = query.get("status") or None
        if status is not None and status not in _STATUSES:
            status = None
        records = self.viewer.history.query_runs(
            pipeline=pipeline,
            status=status,
            since=_day(query.get("since")),
            until=_day(query.get("until"), next_day=True),
            limit=_RUNS_SHOWN,
        )
        return html.render_runs_list(
            records,
            filters=query,
            pipelines=self.viewer.history.pipelines(),
            statuses=_STATUSES,
            now=now,
            limit=_RUNS_SHOWN,
        )

    def _compare(self, query: dict[str, str]) -> str:
        first = self.viewer.history.find_run(query.get("a", ""))
        if not query.get("b"):
            candidates = self.viewer.history.query_runs(pipeline=first.pipeline, limit=50)
            return html.render_compare_page(
                None, None, [], candidates=candidates, chosen_a=first.run_id
            )
        a = self.viewer.view(first.run_id)
        b = self.viewer.view(query["b"])
        if a.run.pipeline != b.run.pipeline:
            raise _NotComparable(
                f"run {a.run.run_id} is of pipeline {a.run.pipeline!r} and run "
                f"{b.run.run_id} of {b.run.pipeline!r}; compare two runs of one pipeline"
            )
        return html.render_compare_page(
            a, b, compare_runs(a, b), candidates=[], chosen_a=a.run.run_id
        )

    def _live_update(self, parts: list[str], after: str) -> None:
        run_id = self.viewer.history.find_run(parts[2]).run_id
        # Logged on arrival (requests are logged when answered): a page is following it.
        page = self.headers.get("Referer", "?")
        self.log_message("%s: following run %s for %s", self.path, run_id, page)
        version = self.viewer.wait_for_change(run_id, after)
        view = self.viewer.view(run_id, details={parts[4]} if len(parts) == 5 else ())
        now = time.time()
        if len(parts) == 5:
            step = view.step(parts[4])
            content = "" if step is None else html.render_step_body(step, anchor=False, now=now)
        else:
            content = html.render_ui_run_body(view, now)
        document = {"version": version, "live": view.run.status == "running", "html": content}
        self._send(json.dumps(document).encode(), "application/json")

    def _send_html(self, page: str, *, disposition: str | None = None) -> None:
        self._send(page.encode(), "text/html; charset=utf-8", disposition=disposition)

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        page = html.render_error_page(int(status), message).encode()
        self._send(page, "text/html; charset=utf-8", status=status)

    def _send(
        self,
        body: bytes,
        content_type: str,
        *,
        status: HTTPStatus = HTTPStatus.OK,
        disposition: str | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if disposition:
            self.send_header("Content-Disposition", disposition)
        self.end_headers()
        self.wfile.write(body)


class _NotComparable(StepframeError):
    pass


def _day(text: str | None, *, next_day: bool = False) -> float | None:
    """A ``YYYY-MM-DD`` date as the Unix time its local day starts (or the next one)."""
    if not text:
        return None
    try:
        parsed = time.strptime(text, "%Y-%m-%d")
    except ValueError:
        return None
    start = time.mktime(parsed)
    return start + 86400 if next_day else start
