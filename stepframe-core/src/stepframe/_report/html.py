"""The pages of the run report and of ``stepframe ui``: pure functions from views to HTML.

No network and no assets: styles are inline, the DAG and the timeline are SVG drawn
here, and the only script (in `stepframe ui`'s live pages) is a few lines that ask the
server for the page again when the run changes.  Every value is escaped.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stepframe._cli.runs import _first_line, _size
from stepframe._cli.runs import _seconds as seconds_text

if TYPE_CHECKING:
    from stepframe._history.database import RunRecord
    from stepframe._report.model import RunView, StepView

__all__ = [
    "STATE_COLOURS",
    "dag_layout",
    "dag_svg",
    "render_compare_page",
    "render_error_page",
    "render_report",
    "render_run_body",
    "render_run_page",
    "render_runs_list",
    "render_step_body",
    "render_step_page",
    "timeline_svg",
]

#: Fill colour of a step (and a run) in each state.
STATE_COLOURS: dict[str, str] = {
    "succeeded": "#2e9d5b",
    "failed": "#d64545",
    "cached": "#4f7fe0",
    "skipped": "#a3a3a3",
    "cancelled": "#e08a1e",
    "running": "#f2c230",
    "pending": "#e4e4e4",
    "interrupted": "#9b59b6",
}
# Text on each fill: dark on light fills.
_TEXT_ON = {"running": "#222", "pending": "#222", "skipped": "#222"}
_SEGMENT_COLOURS = {"prepare": "#c9c9c9", "queue": "#f5d88a", "fetch": "#a9c7f5"}

StepHref = Callable[[str], str]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#1f2430;color:#fff;padding:12px 24px}
header a{color:#cfe0ff}
main{padding:16px 24px;max-width:1400px}
h1{font-size:20px;margin:0}h2{font-size:17px;margin:24px 0 8px}h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.pill{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto;max-height:420px;margin:4px 0;
white-space:pre-wrap;word-break:break-all}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.scroll{overflow:auto;border:1px solid #ddd;background:#fff;max-height:720px}
.step{background:#fff;border:1px solid #ddd;border-left-width:6px;padding:4px 12px 10px;
margin:10px 0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}
dt{color:#666}dd{margin:0}
.legend span{margin-right:12px;white-space:nowrap}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
.note{color:#8a5a00;background:#fff6dd;border:1px solid #f0dc9c;padding:4px 10px;margin:6px 0}
form.filters{display:flex;gap:10px;align-items:end;flex-wrap:wrap;margin:8px 0}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#555}
svg text{font-family:system-ui,sans-serif}
"""

_LIVE_SCRIPT = """
(function () {
  var box = document.getElementById("live");
  if (!box || box.dataset.live !== "yes") return;
  function poll() {
    fetch(box.dataset.poll + "?after=" + encodeURIComponent(box.dataset.version))
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) {
        if (d.version !== box.dataset.version) {
          box.innerHTML = d.html;
          box.dataset.version = d.version;
          document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
        }
        box.dataset.live = d.live ? "yes" : "no";
        if (d.live) setTimeout(poll, 0);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))


def _seconds(value: float | None) -> str:
    return "-" if value is None else seconds_text(value)


def _pill(state: str) -> str:
    colour = STATE_COLOURS.get(state, "#777")
    text = _TEXT_ON.get(state, "#fff")
    return (
        f'<span class="pill state-{esc(state)}" style="background:{colour};color:{text}">'
        f"{esc(state)}</span>"
    )


def _document(title: str, body: str, *, header: str = "", script: str = "") -> str:
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header>{header or f'<h1>{esc(title)}</h1>'}</header><main>{body}</main>{tail}"
        "</body></html>"
    )


def _duration(run: RunRecord, now: float) -> str:
    if run.ended_at is None:
        suffix = " so far" if run.status == "running" else ""
        return _seconds(now - run.started_at) + suffix
    return _seconds(run.ended_at - run.started_at)


def _legend(states: Iterable[str]) -> str:
    items = "".join(
        f'<span><i class="swatch" style="background:{STATE_COLOURS[s]}"></i>{esc(s)}</span>'
        for s in states
        if s in STATE_COLOURS
    )
    return f'<div class="legend">{items}</div>'


# ---- the DAG ----------------------------------------------------------------------------

_NODE_H = 44
_ROW_GAP = 14
_COL_GAP = 70
_MAX_LABEL = 30


def dag_layout(
    names: Sequence[str], edges: Iterable[tuple[str, str]]
) -> dict[str, tuple[int, int]]:
    """Column (longest path from a source) and row of every step, for a left-to-right
    drawing; rows follow the parents' rows so that edges cross less."""
    parents: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        if source in parents and target in parents:
            parents[target].append(source)
    column: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in column:
            if name in seen:  # not a DAG: never loop
                return 0
            column[name] = 1 + max((depth(p, seen | {name}) for p in parents[name]), default=-1)
        return column[name]

    for name in names:
        depth(name)
    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(column[name], []).append(name)
    row: dict[str, int] = {}
    order = {name: index for index, name in enumerate(names)}
    for col in sorted(columns):
        members = columns[col]

        def centre(name: str) -> tuple[float, int]:
            rows = [row[p] for p in parents[name] if p in row]
            return (sum(rows) / len(rows) if rows else float(order[name]), order[name])

        # In order of their parents' mean row, each as near that row as the ones above
        # allow: a child sits beside its parents instead of at the top of its column.
        next_free = 0
        for name in sorted(members, key=centre):
            wanted = round(centre(name)[0]) if parents[name] else next_free
            row[name] = max(next_free, wanted)
            next_free = row[name] + 1
    return {name: (column[name], row[name]) for name in names}


def _lift(place: Mapping[str, tuple[int, int]], source: str, target: str) -> int:
    """How high an edge arcs: not at all to the next column; over the nodes between
    (drawn straight, it would hide behind them) further, the further the higher."""
    span = place[target][0] - place[source][0]
    return 0 if span <= 1 else min(_NODE_H // 2 + 8 * span, 70)


def _label(name: str) -> str:
    return name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"


def dag_svg(view: RunView, href: StepHref) -> str:
    """The run's DAG: a node per step coloured by state and marked with its operator, an
    edge per input fed by another step."""
    names = [s.name for s in view.steps]
    if not names:
        return "<p>No steps recorded.</p>"
    place = dag_layout(names, [*view.edges, *view.inferred_edges])
    widths: dict[int, int] = {}
    for step in view.steps:
        label = max(len(_label(step.name)), len(step.operator or "") + 4)
        col = place[step.name][0]
        widths[col] = max(widths.get(col, 140), min(260, 24 + int(label * 7.4)))
    x_of: dict[int, int] = {}
    x = 10
    for col in sorted(widths):
        x_of[col] = x
        x += widths[col] + _COL_GAP
    drawn = [(e, "edge") for e in view.edges] + [(e, "inferred-edge") for e in view.inferred_edges]
    lifts = {
        edge: _lift(place, *edge) for edge, _ in drawn if edge[0] in place and edge[1] in place
    }
    top = 10 + int(0.75 * max(lifts.values(), default=0))
    height = top + max(r for _, r in place.values()) * (_NODE_H + _ROW_GAP) + _NODE_H + 10
    width = x - _COL_GAP + 10

    def box(name: str) -> tuple[int, int, int]:
        col, r = place[name]
        return x_of[col], top + r * (_NODE_H + _ROW_GAP), widths[col]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="DAG of run {esc(view.run.run_id)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker>'
        "</defs>",
    ]
    for (source, target), kind in drawn:
        if source not in place or target not in place:
            continue
        sx, sy, sw = box(source)
        tx, ty, _ = box(target)
        x1, y1, x2, y2 = sx + sw, sy + _NODE_H // 2, tx - 2, ty + _NODE_H // 2
        bend = max(20, (x2 - x1) // 2)
        lift = lifts[(source, target)]
        if lift:
            x1, y1, x2, y2 = sx + sw - 12, sy, tx + 12, ty
            bend = 0
        dashes = ' stroke-dasharray="5 4"' if kind == "inferred-edge" else ""
        parts.append(
            f'<path class="{kind}" data-from="{esc(source)}" data-to="{esc(target)}" '
            f'd="M{x1},{y1} C{x1 + bend},{y1 - lift} {x2 - bend},{y2 - lift} {x2},{y2}" '
            f'fill="none" stroke="#999" stroke-width="1.4"{dashes} marker-end="url(#arrow)"/>'
        )
    for step in view.steps:
        bx, by, bw = box(step.name)
        fill = STATE_COLOURS.get(step.status, "#777")
        ink = _TEXT_ON.get(step.status, "#fff")
        operator = step.operator or "?"
        parts.append(
            f'<a href="{esc(href(step.name))}"><g class="node" data-step="{esc(step.name)}" '
            f'data-state="{esc(step.status)}" data-operator="{esc(operator)}">'
            f"<title>{esc(step.name)}: {esc(step.status)} on {esc(operator)}</title>"
            f'<rect x="{bx}" y="{by}" width="{bw}" height="{_NODE_H}" rx="6" fill="{fill}" '
            'stroke="#00000030"/>'
            f'<text x="{bx + 9}" y="{by + 18}" font-size="13" font-weight="600" '
            f'fill="{ink}">{esc(_label(step.name))}</text>'
            f'<text class="operator" x="{bx + 9}" y="{by + 35}" font-size="11" fill="{ink}" '
            f'opacity="0.9">⚙ {esc(operator)}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ---- the timeline -----------------------------------------------------------------------

_ROW_H = 18
_LABEL_W = 200
_BAR_W = 780


def timeline_svg(view: RunView, href: StepHref, now: float) -> str:
    """A bar per step from its start to its end: before submit (grey), the backend's queue
    and start-up (amber), in the job (its state's colour), fetching the result (blue)."""
    start = view.run.started_at
    ends = [s.ended_at or now for s in view.steps if s.started_at is not None]
    end = max([view.run.ended_at or now, *ends])
    total = max(end - start, 1e-3)
    height = 24 + len(view.steps) * _ROW_H + 6
    width = _LABEL_W + _BAR_W + 20

    def x(t: float) -> float:
        return _LABEL_W + (t - start) / total * _BAR_W

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f'<text x="{_LABEL_W}" y="14" font-size="11" fill="#666">0s</text>',
        f'<text x="{_LABEL_W + _BAR_W}" y="14" font-size="11" fill="#666" '
        f'text-anchor="end">{esc(_seconds(total))}</text>',
    ]
    for index, step in enumerate(view.steps):
        y = 24 + index * _ROW_H
        parts.append(
            f'<a href="{esc(href(step.name))}"><text x="{_LABEL_W - 8}" y="{y + 12}" '
            f'font-size="12" text-anchor="end">{esc(_label(step.name))}</text></a>'
        )
        if step.started_at is None:
            continue
        colour = STATE_COLOURS.get(step.status, "#777")
        t0 = step.started_at
        t_end = step.ended_at or now
        segments: list[tuple[str, float, float, str]] = []
        if step.run_s is not None and step.queue_s is not None:
            t = t0
            for kind, length in (
                ("prepare", step.prepare_s or 0.0),
                ("queue", step.queue_s),
                ("run", step.run_s),
                ("fetch", step.fetch_s or 0.0),
            ):
                segments.append((kind, t, t + length, _SEGMENT_COLOURS.get(kind, colour)))
                t += length
        else:
            segments.append(("run", t0, t_end, colour))
        for kind, a, b, fill in segments:
            w = max(x(b) - x(a), 1.5 if kind == "run" else 0.0)
            if w <= 0:
                continue
            parts.append(
                f'<rect class="segment {kind}" data-step="{esc(step.name)}" x="{x(a):.1f}" '
                f'y="{y + 2}" width="{w:.1f}" height="{_ROW_H - 5}" fill="{fill}">'
                f"<title>{esc(step.name)} {kind}: {esc(_seconds(b - a))}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


# ---- a run -------------------------------------------------------------------------------


def _summary(view: RunView, now: float) -> str:
    run = view.run
    counts = ", ".join(f"{n} {state}" for state, n in view.counts.items()) or "no steps"
    rows = [
        ("run", f'<span class="mono">{esc(run.run_id)}</span>'),
        ("pipeline", esc(run.pipeline)),
        ("status", _pill(run.status)),
        ("steps", esc(counts)),
        ("started", esc(_when(run.started_at))),
        ("duration", esc(_duration(run, now))),
        ("stack", esc(run.stack or "-")),
        ("host", esc(f"{run.hostname} (pid {run.pid})")),
        ("project", f'<span class="mono">{esc(run.project_root)}</span>'),
    ]
    if run.source:
        rows.append(("source", f'<span class="mono">{esc(run.source)}</span>'))
    body = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    out = f'<dl class="summary">{body}</dl>'
    if run.error:
        out += f"<h3>Error</h3><pre>{esc(run.error)}</pre>"
    return out


def _params(params: Mapping[str, Any]) -> str:
    if not params:
        return "<p>No parameters.</p>"
    rows = "".join(
        f'<tr><td class="mono">{esc(k)}</td><td class="mono">{esc(_plain(v))}</td></tr>'
        for k, v in sorted(params.items())
    )
    return f"<table><tr><th>parameter</th><th>value</th></tr>{rows}</table>"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def render_run_body(view: RunView, href: StepHref, now: float, *, details: bool) -> str:
    """The run's summary, parameters, DAG, timeline, a table of steps and (with
    ``details``) every step's details."""
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in view.notes)
    rows = []
    for step in view.steps:
        job = step.job.job_id if step.job is not None and step.job.job_id else "-"
        rows.append(
            f'<tr data-step="{esc(step.name)}"><td><a href="{esc(href(step.name))}">'
            f"{esc(step.name)}</a></td><td>{_pill(step.status)}</td>"
            f'<td>{esc(step.operator or "-")}</td><td class="mono">{esc(job)}</td>'
            f"<td>{esc(_step_duration(step, now))}</td>"
            f"<td>{esc(_first_line(step.error))}</td></tr>"
        )
    table = (
        '<table class="steps"><tr><th>step</th><th>state</th><th>operator</th><th>job</th>'
        f"<th>duration</th><th>error</th></tr>{''.join(rows)}</table>"
    )
    parts = [
        _summary(view, now),
        notes,
        "<h2>Parameters</h2>",
        _params(view.run.params),
        "<h2>DAG</h2>",
        _legend(STATE_COLOURS),
        f'<div class="scroll">{dag_svg(view, href)}</div>',
        "<h2>Timeline</h2>",
        '<div class="legend"><span><i class="swatch" style="background:#c9c9c9"></i>'
        'before submit</span><span><i class="swatch" style="background:#f5d88a"></i>'
        "queued and starting</span><span>in the job: its state's colour</span>"
        '<span><i class="swatch" style="background:#a9c7f5"></i>fetching the result</span>'
        "</div>",
        f'<div class="scroll">{timeline_svg(view, href, now)}</div>',
        "<h2>Steps</h2>",
        table,
    ]
    if details:
        parts.append("<h2>Step details</h2>")
        parts.extend(render_step_body(step, anchor=True, now=now) for step in view.steps)
    return "".join(parts)


def _step_duration(step: StepView, now: float) -> str:
    if step.started_at is None:
        return "-"
    if step.ended_at is None:
        return _seconds(now - step.started_at) + (" so far" if step.status == "running" else "")
    return _seconds(step.ended_at - step.started_at)


def render_step_body(step: StepView, *, anchor: bool, now: float) -> str:
    """One step's details: job, timings, cache, settings, inputs, outputs, error, log."""
    colour = STATE_COLOURS.get(step.status, "#777")
    facts: list[tuple[str, str]] = [
        ("state", _pill(step.status)),
        ("operator", esc(f"{step.operator or '-'} (flavor {step.flavor or '-'})")),
        ("attempt", esc(step.attempt or "-")),
        ("duration", esc(_step_duration(step, now))),
    ]
    if step.function:
        facts.append(("function", f'<span class="mono">{esc(step.function)}</span>'))
    if step.job is not None:
        facts.append(("job id", f'<span class="mono">{esc(step.job.job_id or "-")}</span>'))
        facts.append(("job state", esc(step.job.state)))
        if step.job.region:
            facts.append(("region", esc(step.job.region)))
        if step.job.note:
            facts.append(("job note", esc(step.job.note)))
    if step.console_url:
        facts.append(
            (
                "console",
                f'<a class="console" href="{esc(step.console_url)}" rel="noreferrer">'
                f"{esc(step.console_url)}</a>",
            )
        )
    timings = [
        ("before submit", step.prepare_s),
        ("queued and starting", step.queue_s),
        ("in the job", step.run_s),
        ("fetching the result", step.fetch_s),
    ]
    shown = "; ".join(f"{name} {_seconds(value)}" for name, value in timings if value is not None)
    if shown:
        facts.append(("timings", esc(shown)))
    if step.cache_reason:
        facts.append(("cache", esc(step.cache_reason)))
    if step.cache_key:
        facts.append(("cache key", f'<span class="mono">{esc(step.cache_key[:16])}…</span>'))
    out = [
        f'<section class="step" id="step-{esc(step.name)}" data-step="{esc(step.name)}" '
        f'style="border-left-color:{colour}">',
        f"<h3>{esc(step.name)}</h3>" if anchor else "",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
    ]
    if len(step.attempts) > 1:
        rows = "".join(
            f'<tr><td>{j.attempt}</td><td>{esc(j.flavor)}</td><td class="mono">'
            f"{esc(j.job_id or '-')}</td><td>{esc(j.state)}</td><td>{esc(j.note or '')}</td></tr>"
            for j in step.attempts
        )
        out.append(
            "<h4>Attempts</h4><table><tr><th>attempt</th><th>flavor</th><th>job id</th>"
            f"<th>state</th><th>note</th></tr>{rows}</table>"
        )
    if step.settings:
        settings = json.dumps(step.settings, indent=1, sort_keys=True, default=str)
        out.append(f'<h4>Settings</h4><pre class="settings">{esc(settings)}</pre>')
    if step.inputs:
        rows = "".join(
            f"<tr><td>{esc(i.name)}</td><td>{esc('.'.join(i.source) if i.source else 'parameter')}"
            f'</td><td>{esc(_size(i.size))}</td><td class="mono">{esc(i.sha256[:16])}</td>'
            f'<td>{esc(i.materializer)}</td><td class="mono">{esc(i.uri)}</td></tr>'
            for i in step.inputs
        )
        out.append(
            "<h4>Inputs</h4><table><tr><th>input</th><th>from</th><th>size</th><th>sha256</th>"
            f"<th>materializer</th><th>URI</th></tr>{rows}</table>"
        )
    if step.outputs:
        rows = "".join(
            f'<tr class="output" data-output="{esc(o.name)}"><td>{esc(o.name)}</td>'
            f"<td>{esc(o.type_name)}</td><td>{esc(_size(o.size))}</td>"
            f'<td class="mono">{esc(o.sha256[:16])}</td><td>{esc(o.materializer)}</td>'
            f'<td class="mono">{esc(o.uri)}</td>'
            f'<td class="mono preview">{esc(o.preview) if o.preview is not None else ""}</td></tr>'
            for o in step.outputs
        )
        out.append(
            "<h4>Outputs</h4><table><tr><th>output</th><th>type</th><th>size</th><th>sha256</th>"
            f"<th>materializer</th><th>URI</th><th>preview</th></tr>{rows}</table>"
        )
    if step.error:
        out.append(f'<h4>Error</h4><pre class="traceback">{esc(step.error)}</pre>')
    if step.log_tail is not None:
        out.append(
            f"<h4>{'Log of the step it was taken from' if step.status == 'cached' else 'Log'}"
            f' <span class="mono">{esc(step.log_path or "")}</span></h4>'
            f'<pre class="log">{esc(step.log_tail)}</pre>'
        )
    out.append("</section>")
    return "".join(out)


def render_report(view: RunView, now: float) -> str:
    """The whole run as one self-contained HTML file."""
    body = render_run_body(view, lambda name: f"#step-{name}", now, details=True)
    footer = (
        f'<p style="color:#777;margin-top:30px">Written by stepframe report at '
        f"{esc(_when(now))}.</p>"
    )
    run = view.run
    header = f"<h1>Run {esc(run.run_id)} of {esc(run.pipeline)} {_pill(run.status)}</h1>"
    return _document(f"stepframe run {run.run_id}", body + footer, header=header)


# ---- stepframe ui -------------------------------------------------------------------------


def _ui_header(title: str) -> str:
    return f'<h1><a href="/" style="color:#fff;text-decoration:none">stepframe</a> · {title}</h1>'


def _live(content: str, *, poll: str, version: str, live: bool) -> str:
    return (
        f'<div id="live" data-poll="{esc(poll)}" data-version="{esc(version)}" '
        f'data-live="{"yes" if live else "no"}">{content}</div>'
    )


def render_run_page(view: RunView, now: float, *, version: str) -> str:
    """A run in the web view; while it runs, the page follows it (``version`` says which
    state of the run it shows)."""
    run = view.run
    live = run.status == "running"
    content = render_ui_run_body(view, now)
    return _document(
        f"run {run.run_id}",
        _live(content, poll=f"/api/run/{run.run_id}", version=version, live=live),
        header=_ui_header(f"run {esc(run.run_id)} of {esc(run.pipeline)}"),
        script=_LIVE_SCRIPT,
    )


def render_ui_run_body(view: RunView, now: float) -> str:
    run_id = view.run.run_id
    compare = (
        f'<p><a href="/compare?a={esc(run_id)}">compare with another run of '
        f'{esc(view.run.pipeline)}</a> · <a href="/report/{esc(run_id)}">download the '
        "report</a></p>"
    )
    return compare + render_run_body(
        view, lambda name: f"/run/{run_id}/step/{name}", now, details=False
    )


def render_step_page(view: RunView, step: StepView, now: float, *, version: str) -> str:
    live = view.run.status == "running"
    content = render_step_body(step, anchor=False, now=now)
    back = f'<p><a href="/run/{esc(view.run.run_id)}">← run {esc(view.run.run_id)}</a></p>'
    return _document(
        f"{step.name} · run {view.run.run_id}",
        back
        + _live(
            content,
            poll=f"/api/run/{view.run.run_id}/step/{step.name}",
            version=version,
            live=live,
        ),
        header=_ui_header(f"step {esc(step.name)} of run {esc(view.run.run_id)}"),
        script=_LIVE_SCRIPT,
    )


def render_runs_list(
    records: Sequence[RunRecord],
    *,
    filters: Mapping[str, str],
    pipelines: Sequence[str],
    statuses: Sequence[str],
    now: float,
    limit: int,
) -> str:
    def options(values: Sequence[str], chosen: str) -> str:
        items = ['<option value="">any</option>']
        items += [
            f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>'
            for v in values
        ]
        return "".join(items)

    form = (
        '<form class="filters" method="get" action="/">'
        f'<label>pipeline<select name="pipeline">{options(pipelines, filters.get("pipeline", ""))}'
        "</select></label>"
        f'<label>status<select name="status">{options(statuses, filters.get("status", ""))}'
        "</select></label>"
        f'<label>from<input type="date" name="since" value="{esc(filters.get("since", ""))}">'
        "</label>"
        f'<label>to<input type="date" name="until" value="{esc(filters.get("until", ""))}">'
        "</label>"
        '<button type="submit">filter</button></form>'
    )
    rows = "".join(
        f'<tr class="run" data-run="{esc(r.run_id)}" data-status="{esc(r.status)}">'
        f'<td class="mono"><a href="/run/{esc(r.run_id)}">{esc(r.run_id)}</a></td>'
        f"<td>{esc(r.pipeline)}</td><td>{_pill(r.status)}</td>"
        f"<td>{esc(_when(r.started_at))}</td><td>{esc(_duration(r, now))}</td>"
        f"<td>{esc(_first_line(r.error))}</td></tr>"
        for r in records
    )
    table = (
        '<table class="runs"><tr><th>run</th><th>pipeline</th><th>status</th><th>started</th>'
        f"<th>duration</th><th>error</th></tr>{rows}</table>"
        if records
        else "<p>No runs match.</p>"
    )
    more = (
        f"<p>The newest {limit} are shown; narrow the filters to see older ones.</p>"
        if len(records) >= limit
        else ""
    )
    return _document("stepframe runs", form + table + more, header=_ui_header("runs"))


def render_compare_page(
    a: RunView | None,
    b: RunView | None,
    rows: Sequence[tuple[str, str, str, str]],
    *,
    candidates: Sequence[RunRecord],
    chosen_a: str,
) -> str:
    if a is None or b is None:
        items = "".join(
            f'<li><a href="/compare?a={esc(chosen_a)}&amp;b={esc(r.run_id)}">'
            f"{esc(r.run_id)}</a> {_pill(r.status)}</li>"
            for r in candidates
            if r.run_id != chosen_a
        )
        body = (
            f'<p>Compare run <span class="mono">{esc(chosen_a)}</span> with:</p>'
            f"<ul>{items or '<li>no other run of this pipeline</li>'}</ul>"
        )
        return _document("compare runs", body, header=_ui_header("compare runs"))
    head = (
        f'<p>Run <a class="mono" href="/run/{esc(a.run.run_id)}">{esc(a.run.run_id)}</a> '
        f'({_pill(a.run.status)}) and run <a class="mono" href="/run/{esc(b.run.run_id)}">'
        f"{esc(b.run.run_id)}</a> ({_pill(b.run.status)}) of pipeline "
        f"{esc(a.run.pipeline)}.</p>"
    )
    if rows:
        body_rows = "".join(
            f'<tr class="difference" data-kind="{esc(kind)}"><td>{esc(kind)}</td>'
            f'<td class="mono">{esc(name)}</td><td class="mono">{esc(left)}</td>'
            f'<td class="mono">{esc(right)}</td></tr>'
            for kind, name, left, right in rows
        )
        table = (
            f"<table><tr><th>what</th><th>name</th><th>{esc(a.run.run_id)}</th>"
            f"<th>{esc(b.run.run_id)}</th></tr>{body_rows}</table>"
        )
    else:
        table = "<p>No differences in parameters, settings, hashes or cache keys.</p>"
    return _document("compare runs", head + table, header=_ui_header("compare runs"))


def render_error_page(status: int, message: str) -> str:
    return _document(
        f"{status}",
        f'<p class="note">{esc(message)}</p><p><a href="/">all runs</a></p>',
        header=_ui_header(str(status)),
    )
