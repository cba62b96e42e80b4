"""A full disk under the artifact store or under ``runs.db``, then room again.

For the ``local`` and the ``docker`` operator, the disk (a small tmpfs mounted where the
project keeps it) is full before the run starts, or fills while ``middle``'s job runs.
The run must stop with one line naming what is full and where, exit non-zero without a
traceback, and, once there is room again, one ``stepframe run --resume`` (or a new run,
when the first could not even be recorded) must finish it with every promise of the
suite kept.

Mounting needs root (as on CI).  Where it is not permitted the cases skip, unless
``STEPFRAME_REQUIRE_MOUNT=1`` or ``CI=true`` makes that a failure.
"""

from __future__ import annotations

from typing import Any

import pytest

EXIT_FAILED = 1
DISKS = ("store", "runs.db")
MOMENTS = ("before the run", "while running")


def _cases() -> list[Any]:
    return [
        pytest.param(
            operator,
            disk,
            moment,
            id=f"{operator}-{disk}-full-{moment.replace(' ', '-')}",
            marks=pytest.mark.crash_case(operator, f"{disk} full {moment}", "-", "-"),
        )
        for operator in ("local", "docker")
        for disk in DISKS
        for moment in MOMENTS
    ]


@pytest.mark.parametrize(("operator", "disk", "moment"), _cases())
def test_full_disk_then_resume(
    crash_project: Any, small_disk: Any, operator: str, disk: str, moment: str
) -> None:
    project = crash_project(operator)
    if disk == "store":
        full = small_disk(project.store_root, "1m")
    else:  # .stepframe (runs.db, the jobs' logs) fills; the store has room of its own
        full = small_disk(project.state_dir, "2m")
        small_disk(project.store_root, "16m")
    project.make_case_folder()
    while_running = moment == "while running"
    project.write_case({"hold": while_running})
    if not while_running:
        full.fill()

    run = project.start()
    if while_running:
        project.wait_reached("running", run)
        full.fill()
        project.release_all()
    run.process.wait(timeout=120)

    output = run.output()
    assert run.process.returncode == EXIT_FAILED, output
    assert "Traceback" not in output, output
    if disk == "store":
        what = f"the artifact store at {project.store_root} cannot be written: the disk is full"
    else:
        what = f"the run history at {project.database_path} cannot be written: the disk is full"
    lines = [line for line in output.splitlines() if what in line]
    assert len(lines) == 1, f"expected one line saying {what!r}:\n{output}"
    errors = [line for line in output.splitlines() if line.startswith("stepframe: error:")]
    assert len(errors) <= 1, output

    full.free()
    run_ids = project.run_ids()
    if run_ids:
        (run_id,) = run_ids
        assert project.listed_status(run_id) in ("failed", "interrupted")
        again = project.cli("run", "--resume", run_id)
    else:  # the history could not even record the run: nothing to resume, run it again
        again = project.cli("run", "crashsteps.py")
        (run_id,) = project.run_ids()
    assert again.returncode == 0, f"first run:\n{output}\nthen:\n{again.stdout}{again.stderr}"
    # A job that ended while only the history was full is followed, never run again.
    project.assert_survived(run_id, exactly_once=disk == "runs.db")
