"""The switchover window: when the switchover may start.

Pure functions of a window and an aware `now`: whether it is open, when it
opens next, and the sentence a person reads. Times are wall-clock times in the
window's time zone, so a 02:00–04:00 window stays 02:00–04:00 across daylight
saving changes. A window whose end is earlier than its start crosses midnight
and belongs to the day it opens.

`hold_until_open` is the guard in front of the switchover: it returns when
the window is open, waits for the next opening through `poll_until` (the one
bounded-wait primitive), or raises Rejected so that the flow takes the way out.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from aurora_bg.errors import Rejected, WaitTimedOut
from aurora_bg.params import WEEKDAYS, SwitchoverWindow, zone_named
from aurora_bg.polling import poll_until
from aurora_bg.results import StepResult

NEXT_STEP = (
    "Next: start a new run whose approval falls inside the window, or change switchover_window."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _days(window: SwitchoverWindow) -> set[int]:
    return {WEEKDAYS.index(day) for day in window.days}


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    """The first moment of `day` whose wall-clock time in `zone` is `clock` or later.

    Usually `clock` itself (its first occurrence when clocks go back); when a
    DST jump skips `clock`, the moment of the jump.
    """
    wall = datetime.combine(day, clock)
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:
        return first.astimezone(zone)
    # Skipped: before `second` the wall clock is earlier, from `first` on it is later.
    low, high = int(second.timestamp()), int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, zone)


def is_open(window: SwitchoverWindow, now: datetime) -> bool:
    """Whether the window is open at `now` (an aware datetime)."""
    local = now.astimezone(zone_named(window.timezone))
    start, end, days = _clock(window.start), _clock(window.end), _days(window)
    clock, weekday = local.time(), local.weekday()
    if start < end:
        return weekday in days and start <= clock < end
    # Crosses midnight: the evening part on an opening day, the morning part the day after.
    return (weekday in days and clock >= start) or ((weekday - 1) % 7 in days and clock < end)


def next_opening(window: SwitchoverWindow, now: datetime) -> datetime:
    """The first moment at or after `now` when the window is open: `now` itself when it is."""
    if is_open(window, now):
        return now
    zone = zone_named(window.timezone)
    local = now.astimezone(zone)
    start, days = _clock(window.start), _days(window)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() in days:
            opening = _at(day, start, zone)
            if opening > now:
                return opening
    raise AssertionError("a window with at least one day opens within a week")  # pragma: no cover


def closes_at(window: SwitchoverWindow, now: datetime) -> datetime:
    """When the opening that holds `now` ends (call only while the window is open)."""
    zone = zone_named(window.timezone)
    local = now.astimezone(zone)
    start, end = _clock(window.start), _clock(window.end)
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)
    return _at(day, end, zone)


def describe(window: SwitchoverWindow) -> str:
    """The window in a few words: `sun 02:00–04:00 Asia/Tokyo`."""
    days = "every day" if len(window.days) == 7 else ",".join(window.days)
    return f"{days} {window.start}–{window.end} {window.timezone}"


def _when(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((moment - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    span = f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
    return f"{moment:%a %Y-%m-%d %H:%M %Z} (in {span})"


def state_sentence(window: SwitchoverWindow, now: datetime) -> str:
    """Open or closed at `now`, and until or from when, in one sentence."""
    if is_open(window, now):
        return (
            f"The switchover window ({describe(window)}) is open now, until "
            f"{closes_at(window, now):%a %Y-%m-%d %H:%M %Z}."
        )
    return (
        f"The switchover window ({describe(window)}) is closed now; it opens "
        f"{_when(next_opening(window, now), now)}."
    )


def approval_note(
    window: SwitchoverWindow | None,
    outside: Literal["wait", "way-out"],
    timeout: int,
    now: datetime,
) -> str:
    """What an approval does, given the window: the paragraph of the switchover pause."""
    if window is None:
        return "No switchover window is set: approving starts the switchover at once."
    if outside == "way-out":
        then = "an approval outside it takes the way out (green deleted, blue as it was)."
    else:
        then = (
            "an approval outside it waits for the next opening, at most the approval timeout "
            f"({timeout} s), and takes the way out if the window does not open by then."
        )
    return f"{state_sentence(window, now)} The switchover only starts inside it; {then}"


def _seconds_to_opening(window: SwitchoverWindow, moment: datetime) -> float:
    return (next_opening(window, moment) - moment).total_seconds()


def hold_until_open(
    window: SwitchoverWindow,
    outside: Literal["wait", "way-out"],
    timeout: float,
    *,
    now: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = _time.sleep,
) -> StepResult:
    """Return once the window is open (at once, or after waiting at most `timeout` s).

    Raises Rejected ("... outside the switchover window ...") when `outside` is
    `way-out`, or when the window does not open within `timeout`; in `wait`
    mode an opening beyond the deadline is refused at once, without waiting.
    """
    started = now()
    if is_open(window, started):
        return StepResult("open", state_sentence(window, started))
    sentence = state_sentence(window, started)
    if outside == "way-out":
        raise Rejected(f"approved outside the switchover window: {sentence} {NEXT_STEP}")
    opening = next_opening(window, started)
    if (opening - started).total_seconds() > timeout:
        raise Rejected(
            f"approved outside the switchover window, which does not open within the approval "
            f"timeout ({timeout:.0f} s): {sentence} {NEXT_STEP}"
        )
    try:
        stats = poll_until(
            now,
            lambda moment: is_open(window, moment),
            timeout=timeout,
            what=f"the switchover window ({describe(window)}) to open",
            first_interval=1.0,
            max_interval=30.0,
            # the opening is known to the second: sleep no further than it
            forecast=lambda moment: (_seconds_to_opening(window, moment),) * 2,
            hurry_interval=1.0,
            jitter=0.0,  # the probe is the clock, not an API: nothing to spread
            clock=lambda: now().timestamp(),
            sleep=sleep,
        )
    except WaitTimedOut as error:
        raise Rejected(f"approved outside the switchover window: {error}. {NEXT_STEP}") from None
    opened = stats.last.astimezone(zone_named(window.timezone))
    return StepResult(
        "waited",
        f"Waited {stats.waited:.0f} s for the switchover window ({describe(window)}); "
        f"it opened at {opened:%a %Y-%m-%d %H:%M %Z}.",
        {"waited_seconds": round(stats.waited, 1)},
    )
