"""Reading the engine's JSON streams: a build's steps and output, a pull's or push's bytes.

Nothing here talks to the engine: `BuildStream` and `LayerBytes` are fed the decoded
chunks the engine sends, report progress through a callback (the build step it is on,
bytes pulled or pushed) and turn an error chunk into an error that names the failing step
with its last output lines.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from stepframe_docker import _parity
from stepframe_docker._errors import DockerBuildError, ImageBuildStepError, ParityError

__all__ = [
    "FAILED_STEP_LINES",
    "BuildStream",
    "LayerBytes",
    "Progress",
    "chunks",
    "plain",
    "step_error",
]

Progress = Callable[[str], None]
# How many output lines of a failing build step to show.
FAILED_STEP_LINES = 25
# Escape sequences a terminal interprets: CSI (colours, cursor moves) and OSC (titles,
# links), then any other control character but tab.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]+)$")
_SHOWN_INSTRUCTION = 60
# pip's resolver names the constraint a requirement ran into: "(constraint) attrs==23.1".
_CONSTRAINT = re.compile(r"\(constraint\) (\S+)")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences or control characters."""
    return _CONTROL.sub("", _ESCAPES.sub("", text))


def _to_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def chunks(stream: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The decoded chunks of an engine stream (anything else is skipped)."""
    for chunk in stream:
        if isinstance(chunk, dict):
            yield chunk


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


class LayerBytes:
    """Bytes moved per layer in a pull or push stream; reports at each tenth of the total
    and when a layer completes, so a plain console gets a few lines, not thousands.

    :param verb: ``"pulling"`` or ``"pushing"``, for the progress lines.
    """

    def __init__(self, verb: str, what: str = "", progress: Progress | None = None) -> None:
        self.verb = verb
        self.what = what
        self.progress = progress
        self.current: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self._reported = -1

    def feed(self, chunk: Mapping[str, Any]) -> None:
        layer = chunk.get("id")
        detail = chunk.get("progressDetail")
        status = str(chunk.get("status", ""))
        if not layer or not isinstance(detail, Mapping):
            return
        layer = str(layer)
        completed = status in ("Pushed", "Pull complete", "Download complete")
        if detail.get("total"):
            self.total[layer] = int(detail["total"])
            self.current[layer] = int(detail.get("current") or 0)
        elif completed and layer in self.total:
            self.current[layer] = self.total[layer]
        else:
            return
        done, total = self.done_bytes, self.total_bytes
        tenth = done * 10 // total if total else 0
        if self.progress is not None and (tenth > self._reported or completed):
            self._reported = tenth
            what = f" {self.what}" if self.what else ""
            self.progress(f"image: {self.verb}{what} {_mb(done)} of {_mb(total)}")

    @property
    def done_bytes(self) -> int:
        return sum(self.current.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.total.values())


class BuildStream:
    """The state of one build, fed chunk by chunk.

    :param what: the image being built, for messages (``the image for /project``).
    """

    def __init__(self, what: str, progress: Progress | None = None) -> None:
        self.what = what
        self.progress = progress
        self.step = ""
        self.steps = 0
        self.cached = 0
        self.image_id: str | None = None
        self.output: list[str] = []
        self.pulled = LayerBytes("pulling", "", progress)

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Take one chunk.

        :raises ImageBuildStepError: (or `ParityError`) the chunk says the build failed.
        """
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = str(detail.get("message") or chunk.get("error") or "").strip()
            raise step_error(self.what, self.step, self.output, message)
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and "ID" in aux:
            self.image_id = str(aux["ID"])
        self.pulled.feed(chunk)  # a FROM that pulls reports its layers' bytes
        text = chunk.get("stream")
        if not isinstance(text, str):
            return
        for raw in text.splitlines():
            line = raw.strip()
            match = _STEP.match(plain(line))
            if match:
                self.step = plain(line)
                self.steps += 1
                self.output = []
                if self.progress is not None:
                    instruction = match.group(3)
                    if len(instruction) > _SHOWN_INSTRUCTION:
                        instruction = instruction[: _SHOWN_INSTRUCTION - 3] + "..."
                    self.progress(f"image: step {match.group(1)}/{match.group(2)} {instruction}")
            elif line == "---> Using cache":
                self.cached += 1
            elif line:
                self.output.append(raw.rstrip())
                del self.output[:-200]
            built = _BUILT.match(line)
            if built and self.image_id is None:
                self.image_id = built.group(1)


def step_error(
    what: str, step: str, output: list[str], message: str, *, colour: bool | None = None
) -> DockerBuildError:
    """The error for a failed build step: the step, its last output lines, the engine's
    message.  Terminal escape sequences are kept only when ``colour`` (default: stderr is
    a terminal); the error's ``output`` is always plain."""
    colour = _to_terminal() if colour is None else colour
    last = tuple(output[-FAILED_STEP_LINES:])
    plain_last = tuple(plain(line) for line in last)
    message = plain(message)
    found = [line for line in plain_last if _parity.MARKER in line]
    if _parity.MARKER in message or found:
        detail = found[-1] if found else message
        advice = (
            "Use a parent image with the client's Python (settings docker.parent_image) and "
            "install stepframe the same way as here"
        )
        if " has content " in detail:
            advice = (
                "The parent image has that version installed with other files, and pip keeps "
                "it: use a parent image without stepframe (settings docker.parent_image)"
            )
        return ParityError(
            f"the image for {what.removeprefix('the image for ')} does not match the client: "
            f"{detail.split('failed: ', 1)[-1]}. {advice}"
        )
    shown_lines = [line + "\x1b[0m" if "\x1b" in line else line for line in last]
    if not colour:
        shown_lines = list(plain_last)
    shown = "\n".join(f"    {line}" for line in shown_lines) or "    (no output)"
    pins = sorted({m.group(1) for line in plain_last for m in _CONSTRAINT.finditer(line)})
    if pins:
        message += (
            f"\n  The image keeps stepframe's dependencies at the client's versions "
            f"({', '.join(pins)}); ask for versions compatible with those, or change them "
            "on the client and build again"
        )
    return ImageBuildStepError(
        f"building {what} failed at {step or 'the start'}:\n{shown}\n  {message}",
        step,
        plain_last,
    )
