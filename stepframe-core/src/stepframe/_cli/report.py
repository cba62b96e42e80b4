"""``stepframe report RUN -o run.html``: one self-contained HTML file about a run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from stepframe._cli.errors import reports_errors

__all__ = ["report"]


@click.command("report")
@click.argument("run_id", metavar="RUN")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The HTML file to write (default: run-RUN_ID.html here).",
)
@reports_errors
def report(run_id: str, output: Path | None) -> None:
    """Write a run's report: summary, parameters, DAG, timeline and every step's details.

    RUN is a run id or any unique part of one.  The file needs no network and no other
    file: attach it to a pull request or keep it as a CI artifact.
    """
    from stepframe._client.stores import ProjectStores
    from stepframe._history.database import RunHistory
    from stepframe._project import Project
    from stepframe._report.html import render_report
    from stepframe._report.model import ManifestCache, gather_run
    from stepframe.exceptions import UsageError

    project = Project.discover()
    history = RunHistory.open_read_only(project.database_path)
    try:
        run = history.find_run(run_id)
        manifests = ManifestCache(ProjectStores(project))
        view = gather_run(history, run, project=project, manifests=manifests)
    finally:
        history.close()
    page = render_report(view, time.time())
    path = output or Path(f"run-{run.run_id}.html")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        raise UsageError(
            f"cannot write the report to {path}: {error.strerror or error}; give another "
            "file with -o"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    click.echo(
        f"wrote {path} (run {run.run_id} of {run.pipeline}, {run.status}, {len(view.steps)} steps)"
    )
