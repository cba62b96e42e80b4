"""Backoff for the retries of Google API calls: the waits Google's client libraries use
(from 1 s, doubling, capped at 32 s, with full jitter), by `stepframe.support`'s rule."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["backoff_delays"]


def backoff_delays(attempts: int = 5, first: float = 1.0, cap: float = 32.0) -> Iterator[float]:
    """The waits before each retry: ``attempts`` of them, then the iterator ends."""
    from stepframe.support import backoff_delays as delays

    return delays(attempts, first=first, cap=cap)
