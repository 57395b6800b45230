"""The one bounded-wait primitive every wait goes through.

`poll_until` asks `probe` for the current state until `is_done` holds or the
deadline passes. It polls faster where a change is likely and slower where
it is not, so that it notices a change soon without calling AWS more often
than a fixed 30-s poll would:

- `settle`: right after an action that usually finishes quickly (a
  modification, a switchover), poll at `first_interval` for that many
  seconds before backing off;
- intervals then grow from `first_interval` by `backoff` up to
  `max_interval`, with jitter so that many waits do not poll in step;
- `hurry`: the caller knows a change is near (say, the deployment's last
  task is running) and asks for `hurry_interval`, which backs off in turn
  so that a long last step stays cheap;
- `forecast`: the caller estimates when the goal will hold, as the earliest
  and latest seconds from now; the poll sleeps no further than the earliest
  and, inside the window, halves what is left of it (never below
  `hurry_interval`), so a good forecast buys a short reaction for a few calls.

The clock and the sleep are injectable for tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aurora_bg.errors import WaitTimedOut

T = TypeVar("T")

# (earliest, latest) seconds from now until the goal is expected to hold
Window = tuple[float, float]


@dataclass
class PollStats(Generic[T]):
    """What a wait saw: the last state (the one that ended it), the polls and the time."""

    last: T
    polls: int = 0
    waited: float = 0.0
    history: list[float] = field(default_factory=list)


@dataclass
class Schedule:
    """How long to pause after a poll that did not find the goal (pure, no clock)."""

    first_interval: float = 1.0
    max_interval: float = 15.0
    backoff: float = 1.5
    settle: float = 0.0
    hurry_interval: float = 1.0
    interval: float = field(init=False)
    hurried: float = field(init=False)

    def __post_init__(self) -> None:
        self.interval = self.first_interval
        self.hurried = self.hurry_interval

    def pause(self, elapsed: float, hurrying: bool, window: Window | None) -> float:
        """The pause before the next poll, `elapsed` seconds into the wait."""
        if window is not None:
            earliest, latest = window
            if earliest > 0:
                # sleep no further than the earliest expected change
                return min(self._next(elapsed), max(self.hurry_interval, earliest))
            if latest > 0:
                # halve what is left of the window: few calls, a short reaction
                return max(self.hurry_interval, latest / 2)
        if hurrying:
            # a change is near but not placed: back off from the short interval too, so
            # that a last step that runs long costs a few calls, not hundreds
            pause = self.hurried
            self.hurried = min(self.max_interval, self.hurried * self.backoff)
            return pause
        return self._next(elapsed)

    def _next(self, elapsed: float) -> float:
        if elapsed < self.settle:
            return self.first_interval
        pause = self.interval
        self.interval = min(self.max_interval, self.interval * self.backoff)
        return pause


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
    settle: float = 0.0,
    hurry: Callable[[T], bool] | None = None,
    hurry_interval: float = 1.0,
    forecast: Callable[[T], Window | None] | None = None,
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
    schedule = Schedule(first_interval, max_interval, backoff, settle, hurry_interval)
    start = clock()
    deadline = start + timeout
    state = probe()
    stats = PollStats(last=state)
    while True:
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
        pause = schedule.pause(
            clock() - start,
            hurrying=hurry is not None and hurry(state),
            window=forecast(state) if forecast is not None else None,
        )
        pause *= 1 + rng.uniform(-jitter, jitter)
        sleep(max(0.0, min(pause, remaining)))
        state = probe()
