"""Backoff for the retries of Google API calls (the delays Google's client libraries use:
exponential from 1 s, doubling, capped, with full jitter)."""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_delays"]


def backoff_delays(attempts: int = 5, first: float = 1.0, cap: float = 32.0) -> Iterator[float]:
    """The waits before each retry: ``attempts`` of them, then the iterator ends."""
    delay = first
    for _ in range(attempts):
        yield random.uniform(0, delay)
        delay = min(delay * 2, cap)
