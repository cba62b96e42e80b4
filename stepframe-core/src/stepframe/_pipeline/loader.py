"""Loading a pipeline from a file path given on the command line."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

from stepframe._pipeline.pipeline import Pipeline
from stepframe.exceptions import PipelineLoadError

__all__ = ["load_pipeline", "split_target"]


def split_target(target: str) -> tuple[Path, str | None]:
    """``path/to/file.py:name`` into the path and the optional pipeline name."""
    path, sep, name = target.rpartition(":")
    if sep and name and "/" not in name and path:
        return Path(path), name
    return Path(target), None


def _import_file(path: Path) -> object:
    module_name = path.stem
    root = str(path.parent)
    existing = sys.modules.get(module_name)
    if existing is not None:
        existing_file = getattr(existing, "__file__", None)
        if existing_file and Path(existing_file).resolve() == path:
            return existing
        raise PipelineLoadError(
            f"pipeline file {path} is named like the already imported module "
            f"{module_name!r} ({existing_file or 'built in'}); rename the file"
        )
    if root not in sys.path:
        # Steps run elsewhere import this file by module name relative to its folder,
        # so the client imports it the same way.
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PipelineLoadError(f"pipeline file {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        del sys.modules[module_name]
        if isinstance(error, KeyboardInterrupt):
            raise
        raise PipelineLoadError(
            f"pipeline file {path} failed to import: {type(error).__name__}: {error}"
            + _where(error)
        ) from None
    return module


# How many of the user's own frames to show under an import failure.
_WHERE_FRAMES = 5


def _where(error: BaseException) -> str:
    """Where an import failed, in the user's code only: no importlib or stepframe frames.

    A SyntaxError shows its line and caret; anything else the last few frames outside
    stepframe and the import machinery, without the "Traceback" header.
    """
    if isinstance(error, SyntaxError):
        lines = traceback.format_exception_only(type(error), error)[:-1]
        return "\n" + "".join(lines).rstrip() if lines else ""
    package = str(Path(__file__).resolve().parents[1])
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(("<frozen ", package))
    ]
    if not frames:
        return ""
    return "\n" + "".join(traceback.format_list(frames[-_WHERE_FRAMES:])).rstrip()


def load_pipeline(target: str) -> Pipeline[...]:
    """Import ``file.py[:name]`` and return the pipeline it names (or its only one)."""
    path, name = split_target(target)
    if path.suffix != ".py":
        raise PipelineLoadError(f"{path} is not a Python file; give a path like pipeline.py[:name]")
    if not path.is_file():
        raise PipelineLoadError(f"pipeline file {path} does not exist (looked in {Path.cwd()})")
    module = _import_file(path.resolve())
    found = {attr: obj for attr, obj in vars(module).items() if isinstance(obj, Pipeline)}
    if name is not None:
        for attr, obj in found.items():
            if name in (attr, obj.name):
                return obj
        available = ", ".join(sorted(found)) or "none"
        raise PipelineLoadError(
            f"{path} has no pipeline named {name!r}; pipelines in it: {available}"
        )
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise PipelineLoadError(f"{path} defines no @pipeline function")
    raise PipelineLoadError(
        f"{path} defines several pipelines ({', '.join(sorted(found))}); "
        f"choose one with {path}:NAME"
    )
