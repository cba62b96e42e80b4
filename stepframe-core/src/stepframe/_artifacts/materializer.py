"""The materializer interface: how a value of some type becomes bytes and back."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

__all__ = ["Materializer"]


class Materializer(abc.ABC):
    """Turns values of the types it handles into one stream of bytes, and back.

    Subclass it and return an instance from the ``register_materializers`` hook to teach
    stepframe a new type.  Materializers registered by plugins are asked before the
    built-in ones, so a plugin can take over a type from the JSON or pickle fallbacks.

    :cvar name: recorded with every artifact, so the loader knows which one to use.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def can_save(self, value: object, annotation: Any) -> bool:
        """Whether this materializer stores ``value``.

        :param value: the step's output value.
        :param annotation: the step's return annotation for this output, or
            ``inspect.Parameter.empty`` when it has none.
        """

    @abc.abstractmethod
    def save(self, value: object, stream: BinaryIO) -> None:
        """Write ``value`` to ``stream``, in chunks for large values."""

    @abc.abstractmethod
    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        """Read a value back from ``stream``.

        :param stream: the bytes ``save`` wrote.
        :param annotation: the consuming step's type hint for this input, or
            ``inspect.Parameter.empty``.
        :param scratch_dir: a private directory for values that live on disk (files,
            directories); it outlives the step that loads them.
        """
