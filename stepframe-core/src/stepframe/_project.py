"""Where a project's state lives: found from the working directory, like git does."""

from __future__ import annotations

from pathlib import Path

import attrs

__all__ = ["CONFIG_FILE", "Project"]

CONFIG_FILE = "stepframe.toml"
STATE_DIR = ".stepframe"


@attrs.frozen
class Project:
    """A project root and the ``.stepframe/`` state folder under it."""

    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """The nearest folder at or above ``start`` holding ``stepframe.toml``, else ``start``."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_FILE).is_file():
                return cls(folder)
        return cls(here)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def database_path(self) -> Path:
        return self.state_dir / "runs.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"
