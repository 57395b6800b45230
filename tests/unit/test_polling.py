"""The one bounded-wait primitive, driven by a fake clock (pure logic, no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from aurora_bg.errors import WaitTimedOut
from aurora_bg.polling import poll_until
from tasks.blue_green import GREEN_SCHEDULE, ProvisioningForecast, last_task_running


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
    assert clock.sleeps == [30, 2, 3]  # hurrying backs off too: a long last step stays cheap


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


def test_settle_polls_at_the_first_interval_right_after_an_action():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut):
        poll_until(
            lambda: "modifying",
            lambda s: False,
            timeout=30,
            what="x",
            first_interval=1,
            settle=5,
            max_interval=8,
            backoff=2,
            jitter=0,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps[:8] == [1, 1, 1, 1, 1, 1, 2, 4]


def test_a_forecast_window_is_never_slept_past_and_is_halved_inside():
    clock = FakeClock()
    ends_at = 100.0
    poll_until(
        lambda: clock.now,
        lambda now: now >= 99.0,
        timeout=600,
        what="x",
        first_interval=30,
        max_interval=30,
        hurry_interval=2,
        forecast=lambda now: (90 - now, ends_at - now),
        jitter=0,
        clock=clock,
        sleep=clock.sleep,
    )
    # 30, 30, up to the window's start at 90, then half of what is left of it (never < 2)
    assert clock.sleeps == [30, 30, 30, 5, 2.5, 2]


def test_hurrying_without_a_forecast_backs_off_from_the_short_interval():
    clock = FakeClock()
    with pytest.raises(WaitTimedOut):
        poll_until(
            lambda: "last-task",
            lambda s: False,
            timeout=60,
            what="x",
            max_interval=10,
            hurry=lambda s: True,
            hurry_interval=2,
            backoff=2,
            jitter=0,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps[:5] == [2, 4, 8, 10, 10]


def deployment_at(done: int, total: int = 4) -> dict:
    statuses = ["COMPLETED"] * done + ["IN_PROGRESS"] + ["PENDING"] * (total - done - 1)
    return {
        "CreateTime": datetime.fromtimestamp(1000.0, UTC),
        "Tasks": [{"Status": s} for s in statuses[:total]],
    }


def test_the_provisioning_forecast_narrows_as_tasks_complete():
    now = [1000.0]
    forecast = ProvisioningForecast(now=lambda: now[0])
    now[0] += 20
    assert forecast(deployment_at(0)) is None  # no task done: no upper bound yet
    now[0] += 30  # 50 s after creation, one task of four done: 25 <= d <= 50
    earliest, latest = forecast(deployment_at(1))
    assert (earliest, latest) == pytest.approx((100 - 50, 200 - 50))
    now[0] += 40  # 90 s, three done: 25 <= d <= 30
    earliest, latest = forecast(deployment_at(3))
    assert (earliest, latest) == pytest.approx((100 - 90, 120 - 90))


def test_the_provisioning_forecast_gives_up_when_tasks_are_far_from_equal():
    now = [1000.0]
    forecast = ProvisioningForecast(now=lambda: now[0])
    now[0] += 10
    assert forecast(deployment_at(3)) is not None  # d <= 3.3 s
    now[0] += 100  # still three done 110 s in: d >= 27.5, contradicting d <= 3.3
    assert forecast(deployment_at(3)) is None


def simulate_green(task_minutes: list[float]) -> tuple[float, int]:
    """(seconds from AVAILABLE to noticing it, polls) of the wait for green's schedule on a
    deployment whose tasks take `task_minutes`, driven by the fake clock."""
    clock = FakeClock()
    ends = [60 * sum(task_minutes[: i + 1]) for i in range(len(task_minutes))]

    def probe() -> dict:
        done = sum(1 for end in ends if end <= clock.now)
        tasks = [{"Status": "COMPLETED"}] * done + [{"Status": "IN_PROGRESS"}] * (len(ends) - done)
        return {
            "Status": "AVAILABLE" if done == len(ends) else "PROVISIONING",
            "CreateTime": datetime.fromtimestamp(0, UTC),
            "Tasks": tasks,
        }

    stats = poll_until(
        probe,
        lambda d: d["Status"] == "AVAILABLE",
        timeout=7200,
        what="green",
        hurry=last_task_running,
        forecast=ProvisioningForecast(now=clock),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(3),
        **GREEN_SCHEDULE,
    )
    return clock.now - ends[-1], stats.polls


def fixed_30s_polls(seconds: float) -> int:
    return int(seconds // 30) + 2  # one at the start, one per 30 s, the one that sees it


@pytest.mark.parametrize(
    "task_minutes",
    [[7.5, 7.5, 7.5, 7.5], [5, 20, 3, 2], [1, 25, 2, 0.5], [10, 10, 5, 15]],
    ids=["equal", "long-upgrade", "short-last-task", "long-last-task"],
)
def test_the_wait_for_green_costs_at_most_half_again_the_calls_of_a_30s_poll(task_minutes):
    late, polls = simulate_green(task_minutes)
    assert polls <= 1.5 * fixed_30s_polls(60 * sum(task_minutes))
    assert late <= 30  # never slower to notice than the 30-s poll at its worst


def test_the_wait_for_green_notices_equal_tasks_within_seconds():
    late, _ = simulate_green([7.5, 7.5, 7.5, 7.5])
    assert late <= 6
