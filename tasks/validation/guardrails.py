"""Switchover guardrails, looked at on blue: what makes AWS refuse or stall a switchover.

- Long-running transactions: a switchover waits for blue's open writes; a
  transaction that has written and stays open past the limit is a blocker, a
  long read-only one a warning.
- Open DDL locks: an AccessExclusiveLock held, or waited for, by a client.
- Self-managed logical replication: replication slots and subscriptions on
  blue other than the deployment's own.

The deployment's own replication is excluded by one narrow pattern,
`OWN_REPLICATION`, matched against slot and subscription names: the lab's
deployment publishes `aurora_bg_pub` and its green subscription
`aurora_bg_sub` keeps a slot of that name on blue (see lab/replication.py).
On Aurora the deployment's own replication is internal and not meant to show
among the master user's slots; if it ever does, its names are the only ones to
add, never a wider pattern.

No query here returns a statement's text: it could hold a secret.
"""

from __future__ import annotations

import re

from tasks.validation.model import BLOCKER, WARNING, Check, Session, listing

OWN_REPLICATION = re.compile(r"^aurora_bg_(pub|sub)$")
DEFAULT_LONG_TRANSACTION_S = 60.0

LONG_TRANSACTIONS = """
SELECT pid, coalesce(usename, '?'), coalesce(datname, '?'), coalesce(state, '?'),
       backend_xid IS NOT NULL, extract(epoch FROM now() - xact_start)::bigint
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
   AND xact_start < now() - make_interval(secs => %s)
 ORDER BY xact_start
"""
DDL_LOCKS = """
SELECT l.pid, l.granted,
       CASE WHEN l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            THEN l.relation::regclass::text ELSE 'relation ' || l.relation END,
       coalesce(a.datname, '?')
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
   AND a.backend_type = 'client backend' AND l.pid <> pg_backend_pid()
 ORDER BY l.granted DESC, l.pid
"""
SLOTS = "SELECT slot_name, slot_type, coalesce(database, '-') FROM pg_replication_slots"
SUBSCRIPTIONS = "SELECT subname FROM pg_subscription"


def check_guardrails(
    on_blue: Session,
    long_transaction_s: float = DEFAULT_LONG_TRANSACTION_S,
    own: re.Pattern[str] = OWN_REPLICATION,
) -> list[Check]:
    return [
        check_long_transactions(on_blue, long_transaction_s),
        check_ddl_locks(on_blue),
        check_self_managed_replication(on_blue, own),
    ]


def check_long_transactions(on_blue: Session, limit_s: float) -> Check:
    rows = on_blue.rows(LONG_TRANSACTIONS, [limit_s], doing="looking for long transactions")
    writing = [_session(r) for r in rows if r[4]]
    reading = [_session(r) for r in rows if not r[4]]
    parts = []
    if writing:
        parts.append(f"writing: {listing(writing)}")
    if reading:
        parts.append(f"read-only: {listing(reading)}")
    return Check(
        name="long-transactions",
        side="blue",
        passed=not rows,
        observed="; ".join(parts) or f"no transaction open longer than {limit_s:g} s",
        expected=f"no transaction open longer than {limit_s:g} s",
        severity=BLOCKER if writing else WARNING,
        why="The switchover waits for blue's open writes: a long one stalls it past its "
        "timeout (AWS then rolls back), and long read-only ones hold snapshots.",
        fix="Let the transactions finish, or end them (pg_terminate_backend(pid)), then "
        "validate again.",
    )


def check_ddl_locks(on_blue: Session) -> Check:
    rows = on_blue.rows(DDL_LOCKS, doing="looking for DDL locks")
    locks = [
        f"{relation} {'held' if granted else 'waited for'} by pid {pid} ({db})"
        for pid, granted, relation, db in rows
    ]
    return Check(
        name="ddl-locks",
        side="blue",
        passed=not locks,
        observed=f"AccessExclusiveLock: {listing(locks)}" if locks else "no AccessExclusiveLock",
        expected="no AccessExclusiveLock held or waited for",
        severity=BLOCKER,
        why="DDL running on blue blocks the switchover, and its schema change never reaches green.",
        fix="Let the DDL finish (then recreate the deployment: DDL is not replicated) or "
        "cancel it (pg_cancel_backend(pid)), then validate again.",
    )


def check_self_managed_replication(on_blue: Session, own: re.Pattern[str]) -> Check:
    slots = [
        f"slot {name} ({kind}, {db})"
        for name, kind, db in on_blue.rows(SLOTS, doing="listing replication slots")
        if not own.search(name)
    ]
    subscriptions = [
        f"subscription {name}"
        for (name,) in on_blue.rows(SUBSCRIPTIONS, doing="listing subscriptions")
        if not own.search(name)
    ]
    found = slots + subscriptions
    return Check(
        name="self-managed-replication",
        side="blue",
        passed=not found,
        observed=listing(found) if found else "none besides the deployment's own",
        expected=f"no replication slot or subscription outside {own.pattern}",
        severity=BLOCKER,
        why="AWS refuses to switch over while blue is a self-managed logical replication "
        "source or replica.",
        fix="Drop the slots (pg_drop_replication_slot) and subscriptions on blue, or move "
        "them to the new cluster after the switchover.",
    )


def _session(row: tuple) -> str:
    pid, user, db, state, _, age = row
    return f"pid {pid} ({user}@{db}, {state}, {age} s)"
