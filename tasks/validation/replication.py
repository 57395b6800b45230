"""Is green receiving blue's changes, and how far behind is it?

Green subscribes to blue, one subscription per database; `pg_stat_subscription`
on green shows each apply worker and the last position of blue's WAL it
received. Health: every database validated has a subscription, and every one is
enabled with a running worker (an unhealthy one gets a grace period to recover:
workers restart after errors).
Lag: blue's current WAL position is read once; green must reach it within the
grace period. Where a subscription has no running worker, its position is
what blue's slot says green confirmed. Positions are in blue's WAL, so they
compare across servers.

On Aurora the deployment's replication is internal: where green shows no
subscription in any database, or refuses to show them, the check says so as a
warning and the deployment's own status stands in for it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from aurora_bg.errors import InvalidState, WaitTimedOut
from aurora_bg.polling import poll_until
from tasks.validation.model import (
    BLOCKER,
    NEW_DEPLOYMENT_FIX,
    WARNING,
    Check,
    Session,
    listing,
)
from tasks.validation.scope import Scope

LAG_POLL_INTERVAL_S = 0.5

SUBSCRIPTIONS = """
SELECT s.subname, s.subenabled, s.subslotname, st.pid, st.received_lsn::text
  FROM pg_subscription s
  LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
 WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY s.subname
"""
CONFIRMED_BY_SLOT = """
SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots
 WHERE slot_type = 'logical' AND confirmed_flush_lsn IS NOT NULL
"""
WHY_HEALTH = (
    "Green only keeps up with blue while its replication runs: a stopped apply worker "
    "means every later change on blue is missing on green."
)
WHY_LAG = (
    "The switchover waits for green to catch up, and times out (AWS rolls back) when it "
    "cannot; what green has not received is not there to be tested either."
)


@dataclass(frozen=True)
class Subscription:
    database: str
    name: str
    enabled: bool
    slot: str | None
    worker: int | None
    received: int | None  # bytes into blue's WAL

    @property
    def is_healthy(self) -> bool:
        return self.enabled and self.worker is not None


def check_replication(scope: Scope, lag_grace_s: float) -> list[Check]:
    greens = [pair.green for pair in scope.pairs]
    try:
        subscriptions = _wait_healthy(greens, lag_grace_s)
    except InvalidState as error:
        return [_not_visible(f"cannot read pg_stat_subscription: {error}")]
    if not subscriptions:
        return [_not_visible("green shows no subscription in any database validated")]
    unsubscribed = sorted(set(scope.databases) - {s.database for s in subscriptions})
    return [
        check_health(subscriptions, unsubscribed),
        check_lag(scope.pairs[0].blue, greens, lag_grace_s),
    ]


def read_subscriptions(greens: list[Session]) -> list[Subscription]:
    """The subscriptions of each database, in the order of `greens`."""
    found = []
    for on_green in greens:
        rows = on_green.rows(SUBSCRIPTIONS, doing="reading the subscriptions")
        found += [
            Subscription(
                on_green.dbname, name, bool(enabled), slot, worker, parse_lsn(lsn) if lsn else None
            )
            for name, enabled, slot, worker, lsn in rows
        ]
    return found


def check_health(subscriptions: list[Subscription], unsubscribed: list[str]) -> Check:
    """Every subscription enabled and applying, and none of the databases without one."""
    broken = [
        f"{s.name} ({'disabled' if not s.enabled else 'no apply worker running'})"
        for s in subscriptions
        if not s.is_healthy
    ] + [f"database {name} (no subscription)" for name in unsubscribed]
    return Check(
        name="replication-health",
        side="green",
        passed=not broken,
        observed=listing(broken)
        if broken
        else f"{listing([s.name for s in subscriptions])}: enabled, applying",
        expected="a subscription for every database, enabled with a running apply worker",
        severity=BLOCKER,
        why=WHY_HEALTH,
        fix="Read the deployment's status and green's log for the apply error. A database "
        "created on blue after the deployment, an apply error from DDL on blue, or Replication "
        "degraded has one cure: " + NEW_DEPLOYMENT_FIX,
    )


def check_lag(on_blue: Session, greens: list[Session], lag_grace_s: float) -> Check:
    """Blue's WAL position now (one per server); every subscription on green must reach
    it within `lag_grace_s`."""
    target = parse_lsn(str(on_blue.value("SELECT pg_current_wal_lsn()", doing="reading WAL")))
    started = time.monotonic()

    def behind() -> int | None:
        """Bytes the furthest-behind subscription lacks; None when one cannot be placed."""
        positions = _positions(on_blue, greens)
        if not positions or any(p is None for p in positions):
            return None
        return max(0, max(target - p for p in positions if p is not None))

    # positions only grow while the target stays put: poll, then read the last word
    with contextlib.suppress(WaitTimedOut):
        poll_until(
            behind,
            lambda seen: seen == 0,
            timeout=lag_grace_s,
            what="green to reach blue's WAL position",
            first_interval=LAG_POLL_INTERVAL_S,
            max_interval=LAG_POLL_INTERVAL_S,
            backoff=1.0,
        )
    lag = behind()
    waited = time.monotonic() - started
    if lag is None:
        observed = "not measurable: no running worker and no slot on blue to read"
    elif lag == 0:
        observed = f"caught up in {waited:.1f} s"
    else:
        observed = f"{lag} bytes of blue's WAL not on green after {waited:.1f} s"
    return Check(
        name="replication-lag",
        side="both",
        passed=lag == 0,
        observed=observed,
        expected=f"green reaches blue's current WAL position within {lag_grace_s:g} s",
        severity=WARNING if lag is None else BLOCKER,
        why=WHY_LAG,
        fix="Wait for green to catch up (reduce the write load on blue, look for locks or "
        "errors holding green's apply worker), then validate again.",
    )


def _positions(on_blue: Session, greens: list[Session]) -> list[int | None]:
    """How far into blue's WAL each subscription got: received by its worker, else as
    confirmed by its slot on blue (None when neither is known)."""
    subscriptions = read_subscriptions(greens)
    confirmed: dict[str, int] | None = None
    positions: list[int | None] = []
    for s in subscriptions:
        if s.worker is not None and s.received is not None:
            positions.append(s.received)
            continue
        if confirmed is None:
            rows = on_blue.rows(CONFIRMED_BY_SLOT, doing="reading replication slots")
            confirmed = {name: parse_lsn(lsn) for name, lsn in rows}
        positions.append(confirmed.get(s.slot or ""))
    return positions


def _wait_healthy(greens: list[Session], grace_s: float) -> list[Subscription]:
    """The subscriptions, once all are healthy or the grace is over."""
    subscriptions = read_subscriptions(greens)
    if all(s.is_healthy for s in subscriptions):
        return subscriptions
    with contextlib.suppress(WaitTimedOut):
        return poll_until(
            lambda: read_subscriptions(greens),
            lambda seen: all(s.is_healthy for s in seen),
            timeout=grace_s,
            what="green's subscriptions to apply",
            first_interval=LAG_POLL_INTERVAL_S,
            max_interval=LAG_POLL_INTERVAL_S,
            backoff=1.0,
        ).last
    return read_subscriptions(greens)


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> bytes."""
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _not_visible(reason: str) -> Check:
    return Check(
        name="replication-health",
        side="green",
        passed=False,
        observed=reason,
        expected="green's subscription visible, enabled and applying",
        severity=WARNING,
        why=WHY_HEALTH + " Where green does not show it (Aurora keeps it internal), the "
        "deployment's status and the row counts are the evidence.",
        fix="Check the deployment's status in the RDS console; nothing to do if it is AVAILABLE.",
    )
