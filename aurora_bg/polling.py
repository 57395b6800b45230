"""The one bounded-wait primitive every wait goes through.

`poll_until` asks `probe` for the current state until `is_done` holds or the
deadline passes. Intervals grow from `first_interval` to `max_interval` with
jitter so that many waits do not poll in step; `hurry` lets the caller ask for
a short interval when it knows a change is near (say, the deployment's last
task is running). The clock and the sleep are injectable for tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aurora_bg.errors import WaitTimedOut

T = TypeVar("T")


@dataclass
class PollStats(Generic[T]):
    polls: int = 0
    waited: float = 0.0
    last: T | None = None
    history: list[float] = field(default_factory=list)


def poll_until(
    probe: Callable[[], T],
    is_done: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    first_interval: float = 1.0,
    max_interval: float = 15.0,
    backoff: float = 1.5,
    jitter: float = 0.1,
    hurry: Callable[[T], bool] | None = None,
    hurry_interval: float = 1.0,
    on_poll: Callable[[T], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> PollStats[T]:
    """Poll until `is_done(probe())`; return the stats with the final state.

    Raises WaitTimedOut (naming `what` and the last state seen) when the
    deadline passes first. Exceptions from `probe` propagate unchanged.
    """
    rng = rng or random.Random()
    start = clock()
    deadline = start + timeout
    interval = first_interval
    stats: PollStats[T] = PollStats()
    while True:
        state = probe()
        stats.polls += 1
        stats.last = state
        stats.history.append(clock() - start)
        if on_poll is not None:
            on_poll(state)
        if is_done(state):
            stats.waited = clock() - start
            return stats
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimedOut(f"{what}: still not done after {timeout:.0f} s (last seen: {state})")
        pause = hurry_interval if hurry is not None and hurry(state) else interval
        pause *= 1 + rng.uniform(-jitter, jitter)
        sleep(max(0.0, min(pause, remaining)))
        interval = min(max_interval, interval * backoff)
