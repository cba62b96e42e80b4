"""``stepframe ui``: the project's runs in a browser, served read-only on 127.0.0.1."""

from __future__ import annotations

import click

from stepframe._cli.errors import reports_errors

__all__ = ["ui"]


@click.command("ui")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="The port to serve on (0: a free one, printed).",
)
@reports_errors
def ui(port: int) -> None:
    """Serve the runs list, run pages (live while a run goes), step pages with their
    logs, and run comparisons on http://127.0.0.1:PORT/, straight from the run history,
    read-only.  Ctrl-C stops it."""
    from stepframe._client.stores import ProjectStores
    from stepframe._history.database import RunHistory
    from stepframe._project import Project
    from stepframe._report.server import Viewer, make_server
    from stepframe.exceptions import UsageError

    project = Project.discover()
    history = RunHistory.open_read_only(project.database_path)
    viewer = Viewer(project, history, ProjectStores(project))
    try:
        server = make_server(viewer, port)
    except OSError as error:
        history.close()
        raise UsageError(
            f"cannot serve on 127.0.0.1:{port}: {error.strerror}; pick another --port "
            "(or 0 for a free one)"
        ) from None
    bound = server.server_address[1]
    click.echo(
        f"stepframe ui: serving {project.root} on http://127.0.0.1:{bound}/ "
        "(read-only; Ctrl-C stops it)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stopping.set()
        server.server_close()
        history.close()
