"""Waits between the tries of a call to a cloud service."""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_delays"]


def backoff_delays(retries: int, *, first: float, cap: float) -> Iterator[float]:
    """The waits before each of ``retries`` retries, then the iterator ends: exponential
    backoff with full jitter, as Google's and Azure's client libraries wait (a random
    wait up to ``first`` seconds, the bound doubling at each retry up to ``cap``), so
    clients that failed together do not retry together."""
    bound = first
    for _ in range(retries):
        yield random.uniform(0, bound)
        bound = min(bound * 2, cap)
