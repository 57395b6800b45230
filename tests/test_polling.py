"""The one bounded-wait primitive, driven by a fake clock (pure logic, no I/O)."""

from __future__ import annotations

import random

import pytest

from aurora_bg.errors import WaitTimedOut
from aurora_bg.polling import poll_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def states(*values: str):
    remaining = list(values)
    return lambda: remaining.pop(0) if len(remaining) > 1 else remaining[0]


def test_poll_returns_the_first_state_that_satisfies_the_goal():
    clock = FakeClock()
    stats = poll_until(
        states("PROVISIONING", "PROVISIONING", "AVAILABLE"),
        lambda s: s == "AVAILABLE",
        timeout=60,
        what="deployment",
        clock=clock,
        sleep=clock.sleep,
        jitter=0,
    )
    assert stats.last == "AVAILABLE"
    assert stats.polls == 3
    assert len(clock.sleeps) == 2


def test_intervals_grow_by_the_backoff_up_to_the_maximum():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut):
        poll_until(
            lambda: "PROVISIONING",
            lambda s: False,
            timeout=100,
            what="deployment",
            first_interval=2,
            max_interval=10,
            backoff=2,
            jitter=0,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps[:4] == [2, 4, 8, 10]
    assert max(clock.sleeps) == 10


def test_timeout_names_what_was_awaited_and_the_last_state():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut) as raised:
        poll_until(
            lambda: "PROVISIONING",
            lambda s: False,
            timeout=30,
            what="green of provisioning-rds",
            clock=clock,
            sleep=clock.sleep,
        )
    assert "green of provisioning-rds" in str(raised.value)
    assert "PROVISIONING" in str(raised.value)
    assert clock.now == pytest.approx(30)


def test_the_last_sleep_never_overshoots_the_deadline():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut):
        poll_until(
            lambda: 0,
            lambda s: False,
            timeout=5,
            what="x",
            first_interval=4,
            jitter=0,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now == pytest.approx(5)


def test_hurry_polls_at_the_short_interval_when_a_change_is_near():
    clock = FakeClock()
    poll_until(
        states("early", "last-task", "last-task", "done"),
        lambda s: s == "done",
        timeout=600,
        what="x",
        first_interval=30,
        max_interval=30,
        hurry=lambda s: s == "last-task",
        hurry_interval=2,
        jitter=0,
        clock=clock,
        sleep=clock.sleep,
    )
    assert clock.sleeps == [30, 2, 2]


def test_jitter_keeps_each_interval_within_its_band():
    clock = FakeClock()
    poll_until(
        states(*["wait"] * 20, "done"),
        lambda s: s == "done",
        timeout=10_000,
        what="x",
        first_interval=10,
        max_interval=10,
        jitter=0.2,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
    )
    assert all(8 <= s <= 12 for s in clock.sleeps)
    assert len(set(clock.sleeps)) > 1


def test_errors_from_the_probe_propagate_unchanged():
    def probe():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        poll_until(probe, lambda s: True, timeout=5, what="x")
