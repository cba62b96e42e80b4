"""What the benchmark scripts share."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def stepframe_command() -> list[str]:
    """The ``stepframe`` script installed next to this Python, else the one on PATH."""
    script = Path(sys.executable).with_name("stepframe")
    if script.is_file():
        return [str(script)]
    found = shutil.which("stepframe")
    if found is None:
        sys.exit("bench: the `stepframe` command is not installed; pip install ./stepframe-core")
    return [found]
