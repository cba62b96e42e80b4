"""`stepframe.support`: the helpers the core and plugins share (issue 12, part 3)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import stat
from pathlib import Path

import stepframe.support as support
from stepframe.support import file_lock, read_log_lines, write_atomically


def test_the_public_names_are_the_reviewed_ones() -> None:
    assert support.__all__ == [
        "backoff_delays",
        "file_lock",
        "process_is_running",
        "process_start_ticks",
        "read_log_lines",
        "write_atomically",
    ]


def test_a_new_file_gets_its_mode_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    write_atomically(secret, "{}", mode=0o600)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    plain = tmp_path / "plain.txt"
    write_atomically(plain, b"one")
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644
    plain.chmod(0o640)
    write_atomically(plain, "two")
    assert plain.read_text() == "two" and stat.S_IMODE(plain.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "secret.json"]


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    write_atomically(target, "old")

    try:
        write_atomically(target, 42)  # type: ignore[arg-type]
    except TypeError:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def _add_line(path: str, line: str, ready: multiprocessing.synchronize.Event) -> None:
    ready.wait()
    with file_lock(path):
        old = Path(path).read_text() if os.path.exists(path) else ""
        write_atomically(path, old + line + "\n", durable=False)


def test_read_modify_writes_under_the_lock_from_many_processes_all_land(tmp_path: Path) -> None:
    target = str(tmp_path / "shared.txt")
    ready = multiprocessing.get_context("fork").Event()
    workers = [
        multiprocessing.get_context("fork").Process(target=_add_line, args=(target, f"w{i}", ready))
        for i in range(8)
    ]
    for worker in workers:
        worker.start()
    ready.set()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sorted(Path(target).read_text().split()) == sorted(f"w{i}" for i in range(8))


def test_log_lines_wait_for_their_newline_until_the_job_ended(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    assert read_log_lines(log, 0, final=False) == ((), 0)  # no log yet
    log.write_bytes(b"one\ntw")
    lines, cursor = read_log_lines(log, 0, final=False)
    assert lines == ("one",) and cursor == 4
    assert read_log_lines(log, cursor, final=True) == (("tw",), 6)  # the last, unterminated


def test_clean_log_lines_lose_colour_codes_and_carriage_returns(tmp_path: Path) -> None:
    log = tmp_path / "tool.log"
    log.write_bytes(b"\x1b[32mgreen\x1b[0m\r\nplain\n")
    assert read_log_lines(log, 0, final=False, clean=True)[0] == ("green", "plain")


def test_a_process_is_told_from_a_later_one_with_its_pid() -> None:
    ticks = support.process_start_ticks(os.getpid())
    assert ticks is not None
    assert support.process_is_running(os.getpid(), ticks)
    assert not support.process_is_running(os.getpid(), str(int(ticks) + 1))
