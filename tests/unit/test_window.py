"""The switchover window on fixed datetimes: open, next opening, the guard (no AWS, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from aurora_bg.errors import Rejected
from aurora_bg.params import SwitchoverWindow, UpgradeParameters, one_line
from aurora_bg.window import approval_note, closes_at, hold_until_open, is_open, next_opening

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
SUNDAY_NIGHT_TOKYO = SwitchoverWindow(
    days=["sun"], start="02:00", end="04:00", timezone="Asia/Tokyo"
)
SATURDAY_MIDNIGHT_TOKYO = SwitchoverWindow(
    days=["sat"], start="23:00", end="01:00", timezone="Asia/Tokyo"
)


def tokyo(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)


# --- is_open ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (tokyo(2026, 11, 29, 1, 59), False),  # Sunday, a minute early
        (tokyo(2026, 11, 29, 2, 0), True),  # the opening minute
        (tokyo(2026, 11, 29, 3, 59), True),
        (tokyo(2026, 11, 29, 4, 0), False),  # the end is exclusive
        (tokyo(2026, 11, 28, 2, 30), False),  # Saturday
        (datetime(2026, 11, 28, 17, 30, tzinfo=UTC), True),  # Sunday 02:30 in Tokyo
    ],
)
def test_a_sunday_window_in_tokyo_is_open_only_on_sunday_between_its_times(moment, expected):
    assert is_open(SUNDAY_NIGHT_TOKYO, moment) is expected


def test_tokyo_has_no_daylight_saving_so_the_window_is_the_same_utc_hours_all_year():
    for month, day in ((1, 4), (7, 5)):  # a Sunday in winter, a Sunday in summer
        assert is_open(SUNDAY_NIGHT_TOKYO, datetime(2026, month, day - 1, 17, 0, tzinfo=UTC))
        assert not is_open(SUNDAY_NIGHT_TOKYO, datetime(2026, month, day - 1, 16, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (tokyo(2026, 11, 28, 22, 59), False),
        (tokyo(2026, 11, 28, 23, 0), True),  # Saturday evening
        (tokyo(2026, 11, 29, 0, 30), True),  # Sunday morning: still Saturday's window
        (tokyo(2026, 11, 29, 1, 0), False),
        (tokyo(2026, 11, 29, 23, 30), False),  # Sunday evening: Sunday is not a day
        (tokyo(2026, 11, 28, 0, 30), False),  # Saturday morning: Friday is not a day
    ],
)
def test_a_window_crossing_midnight_belongs_to_the_day_it_opens(moment, expected):
    assert is_open(SATURDAY_MIDNIGHT_TOKYO, moment) is expected


# --- next_opening / closes_at -----------------------------------------------------


def test_next_opening_is_now_while_the_window_is_open():
    now = tokyo(2026, 11, 29, 2, 30)
    assert next_opening(SUNDAY_NIGHT_TOKYO, now) == now
    assert closes_at(SUNDAY_NIGHT_TOKYO, now) == tokyo(2026, 11, 29, 4, 0)


def test_next_opening_before_the_window_is_the_same_sunday():
    assert next_opening(SUNDAY_NIGHT_TOKYO, tokyo(2026, 11, 29, 1, 0)) == tokyo(2026, 11, 29, 2)


def test_next_opening_after_the_window_is_the_next_sunday():
    assert next_opening(SUNDAY_NIGHT_TOKYO, tokyo(2026, 11, 29, 4, 0)) == tokyo(2026, 12, 6, 2)


def test_next_opening_of_a_midnight_window_and_when_it_closes():
    friday = tokyo(2026, 11, 27, 12, 0)
    assert next_opening(SATURDAY_MIDNIGHT_TOKYO, friday) == tokyo(2026, 11, 28, 23, 0)
    assert closes_at(SATURDAY_MIDNIGHT_TOKYO, tokyo(2026, 11, 28, 23, 30)) == tokyo(
        2026, 11, 29, 1, 0
    )
    assert closes_at(SATURDAY_MIDNIGHT_TOKYO, tokyo(2026, 11, 29, 0, 30)) == tokyo(
        2026, 11, 29, 1, 0
    )


def test_several_days_open_on_the_nearest_one():
    window = SwitchoverWindow(days=["tue", "thu"], start="22:00", end="23:30", timezone="UTC")
    wednesday = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert next_opening(window, wednesday) == datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


def test_an_opening_skipped_by_daylight_saving_opens_at_the_jump():
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    window = SwitchoverWindow(days=["sun"], start="02:30", end="04:00", timezone="Europe/Berlin")
    before = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    opening = next_opening(window, before)
    assert opening == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert is_open(window, opening)
    assert not is_open(window, opening.astimezone(UTC) - timedelta(seconds=1))  # 01:59:59 CET


# --- the parameter model ---------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ({"start": "2:00", "end": "04:00"}, "switchover_window.start: must be a local time HH:MM"),
        ({"start": "02:00", "end": "24:00"}, "switchover_window.end: must be a local time HH:MM"),
        ({"start": "02:00", "end": "02:00"}, "start and end must differ"),
        ({"start": "02:00", "end": "04:00", "timezone": "Asia/Tokio"}, "unknown time zone"),
        ({"start": "02:00", "end": "04:00", "days": ["sunday"]}, "switchover_window.days.0"),
        ({"start": "02:00", "end": "04:00", "days": []}, "switchover_window.days"),
    ],
)
def test_a_bad_window_is_refused_in_one_line_naming_the_field(window, fragment):
    required = {
        "cluster_identifier": "provisioning-rds",
        "target_engine_version": "16.2",
        "target_cluster_parameter_group": "g16",
        "target_instance_parameter_group": "i16",
    }
    with pytest.raises(ValidationError) as caught:
        UpgradeParameters(**required, switchover_window=window)
    line = one_line(caught.value)
    assert fragment in line and "\n" not in line


# --- the guard in front of the switchover ------------------------------------------


def test_the_guard_lets_an_approval_inside_the_window_through_at_once():
    clock = FakeTime(tokyo(2026, 11, 29, 2, 30))
    result = hold_until_open(SUNDAY_NIGHT_TOKYO, "wait", 3600, now=clock.now, sleep=clock.sleep)
    assert result.action == "open" and clock.sleeps == []
    assert "open now, until Sun 2026-11-29 04:00 JST" in result.reason


def test_the_guard_waits_for_an_opening_within_the_approval_timeout():
    clock = FakeTime(tokyo(2026, 11, 29, 1, 40))
    result = hold_until_open(SUNDAY_NIGHT_TOKYO, "wait", 3600, now=clock.now, sleep=clock.sleep)
    assert result.action == "waited"
    assert is_open(SUNDAY_NIGHT_TOKYO, clock.current)
    assert clock.current - tokyo(2026, 11, 29, 2, 0) < timedelta(seconds=2)  # hurried at the end
    assert result.facts["waited_seconds"] >= 20 * 60


def test_the_guard_refuses_at_once_when_the_window_opens_after_the_approval_timeout():
    clock = FakeTime(tokyo(2026, 11, 28, 12, 0))
    with pytest.raises(Rejected, match="outside the switchover window") as caught:
        hold_until_open(SUNDAY_NIGHT_TOKYO, "wait", 3600, now=clock.now, sleep=clock.sleep)
    assert clock.sleeps == []
    assert "opens Sun 2026-11-29 02:00 JST" in str(caught.value)


def test_the_guard_takes_the_way_out_when_so_configured():
    clock = FakeTime(tokyo(2026, 11, 29, 1, 59))
    with pytest.raises(Rejected, match="outside the switchover window"):
        hold_until_open(SUNDAY_NIGHT_TOKYO, "way-out", 3600, now=clock.now, sleep=clock.sleep)
    assert clock.sleeps == []


def test_the_switchover_pause_says_when_the_window_opens_and_what_an_approval_does():
    note = approval_note(SUNDAY_NIGHT_TOKYO, "wait", 7200, tokyo(2026, 11, 29, 1, 0))
    assert "closed now; it opens Sun 2026-11-29 02:00 JST (in 1 h 0 min)" in note
    assert "waits for the next opening, at most the approval timeout (7200 s)" in note
    assert "at once" in approval_note(None, "wait", 7200, tokyo(2026, 11, 29, 1, 0))
