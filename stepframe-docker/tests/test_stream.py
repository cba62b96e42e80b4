"""Reading the engine's streams: progress lines, and errors without terminal codes."""

from __future__ import annotations

from typing import Any

from stepframe_docker import ImageBuildStepError
from stepframe_docker._stream import BuildStream, LayerBytes, plain, step_error

RED = "\x1b[31m"
RESET = "\x1b[0m"


def _feed(stream: BuildStream | LayerBytes, chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        stream.feed(chunk)


def test_the_build_step_it_is_on_is_reported() -> None:
    lines: list[str] = []
    state = BuildStream("the image for /p", lines.append)
    long_run = "RUN python -m pip install " + "x" * 100
    _feed(
        state,
        [
            {"stream": "Step 1/3 : FROM base:1\n"},
            {"stream": " ---> 1234\n"},
            {"stream": f"Step 2/3 : {long_run}\n"},
            {"stream": " ---> Using cache\n"},
            {"stream": "Step 3/3 : COPY code/ /app/\n"},
            {"aux": {"ID": "sha256:abc"}},
        ],
    )
    assert lines[0] == "image: step 1/3 FROM base:1"
    assert lines[1].startswith("image: step 2/3 RUN python -m pip install x")
    assert lines[1].endswith("...") and len(lines[1]) < 90
    assert lines[2] == "image: step 3/3 COPY code/ /app/"
    assert (state.steps, state.cached, state.image_id) == (3, 1, "sha256:abc")


def test_bytes_are_reported_by_tenths_and_completed_layers() -> None:
    lines: list[str] = []
    pushed = LayerBytes("pushing", "", lines.append)
    total = 10_000_000
    chunks: list[dict[str, Any]] = [
        {"status": "Pushing", "id": "a", "progressDetail": {"current": n, "total": total}}
        for n in range(0, total + 1, 50_000)  # 201 updates
    ]
    chunks.append({"status": "Pushed", "id": "a", "progressDetail": {}})
    _feed(pushed, chunks)
    assert lines[-1] == "image: pushing 10.0 MB of 10.0 MB"
    assert 10 <= len(lines) <= 12, lines  # not one line per update
    assert pushed.done_bytes == pushed.total_bytes == total


def test_pull_bytes_during_a_build_are_reported() -> None:
    lines: list[str] = []
    state = BuildStream("the image for /p", lines.append)
    _feed(
        state,
        [
            {"stream": "Step 1/2 : FROM python:3.11-slim\n"},
            {"status": "Downloading", "id": "l1", "progressDetail": {"current": 1, "total": 2e6}},
            {"status": "Download complete", "id": "l1", "progressDetail": {}},
        ],
    )
    assert lines[-1] == "image: pulling 2.0 MB of 2.0 MB"


def test_terminal_codes_are_stripped() -> None:
    assert plain(f"{RED}error{RESET}: \x1b]0;title\x07done\x1b[2K\r") == "error: done"


def test_a_failed_step_shows_no_colour_codes_off_a_terminal() -> None:
    output = [f"{RED}ERROR: No matching distribution{RESET}", "plain line"]
    error = step_error(
        "the image for /p", "Step 5/9 : RUN pip install x", output, "code: 1", colour=False
    )
    assert isinstance(error, ImageBuildStepError)
    assert "\x1b" not in str(error)
    assert "ERROR: No matching distribution" in str(error)
    assert error.output == ("ERROR: No matching distribution", "plain line")


def test_on_a_terminal_colours_stay_and_are_reset_per_line() -> None:
    output = [f"{RED}red and never reset"]
    error = step_error("the image for /p", "Step 1/1 : RUN x", output, "code: 1", colour=True)
    assert isinstance(error, ImageBuildStepError)
    assert f"{RED}red and never reset{RESET}" in str(error)
    assert error.output == ("red and never reset",)  # for programs: always plain


def test_a_conflict_with_the_clients_pins_says_so() -> None:
    output = [
        "ERROR: Cannot install attrs==23.1.0 because these package versions have conflicting",
        "    The user requested attrs==23.1.0",
        "    The user requested (constraint) attrs==26.1.0",
    ]
    error = step_error("the image for /p", "Step 5/12 : RUN pip install", output, "code: 1")
    assert "client's versions (attrs==26.1.0)" in str(error)
