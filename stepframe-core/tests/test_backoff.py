"""`stepframe.support.backoff_delays`: how many waits, and each under its doubling bound."""

from __future__ import annotations

import random

from stepframe.support import backoff_delays


def test_one_wait_per_retry_each_under_a_doubling_capped_bound() -> None:
    random.seed(1)
    for _ in range(200):
        waits = list(backoff_delays(6, first=0.5, cap=4.0))
        assert len(waits) == 6
        for wait, bound in zip(waits, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
            assert 0 <= wait <= bound


def test_the_waits_are_jittered_not_fixed() -> None:
    random.seed(2)
    firsts = {next(backoff_delays(1, first=1.0, cap=1.0)) for _ in range(20)}
    assert len(firsts) > 1


def test_no_retries_no_waits() -> None:
    assert list(backoff_delays(0, first=1.0, cap=2.0)) == []
