"""Switchover guardrails, looked at on blue: what makes AWS refuse or stall a switchover.

- Long-running transactions: a switchover waits for blue's open writes; a
  transaction that has written and stays open past the limit is a blocker, a
  long read-only one a warning.
- Open DDL locks: an AccessExclusiveLock held, or waited for, by a client, in
  any database validated.
- Self-managed logical replication: replication slots, subscriptions and (in
  every database) publications on blue other than the deployment's own.

The deployment's own replication is recognised by its names: AWS names the
publication, subscriptions and slots it creates on blue and green with an
`rds` prefix (the lab copies that: `rds_bg_pub`, `rds_bg_sub_<database>`).
Whether the master user sees them on blue is not documented, so every
`rds`-prefixed object counts as AWS's own (`OWN_REPLICATION`), never as the
customer's.

No query here returns a statement's text: it could hold a secret.
"""

from __future__ import annotations

import re

from tasks.validation.model import BLOCKER, WARNING, Check, Session, listing
from tasks.validation.scope import Scope

OWN_REPLICATION = re.compile(r"^rds")
DEFAULT_LONG_TRANSACTION_S = 60.0

LONG_TRANSACTIONS = """
SELECT pid, coalesce(usename, '?'), coalesce(datname, '?'), coalesce(state, '?'),
       backend_xid IS NOT NULL, extract(epoch FROM now() - xact_start)::bigint
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
   AND xact_start < now() - make_interval(secs => %s)
 ORDER BY xact_start
"""
# the locks on relations of the session's own database, where their names can be read
DDL_LOCKS = """
SELECT l.pid, l.granted, l.relation::regclass::text, current_database()
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND a.backend_type = 'client backend' AND l.pid <> pg_backend_pid()
 ORDER BY l.granted DESC, l.pid
"""
SLOTS = "SELECT slot_name, slot_type, coalesce(database, '-') FROM pg_replication_slots"
SUBSCRIPTIONS = "SELECT subname FROM pg_subscription"
PUBLICATIONS = "SELECT pubname FROM pg_publication ORDER BY 1"


def check_guardrails(
    scope: Scope,
    long_transaction_s: float = DEFAULT_LONG_TRANSACTION_S,
    own: re.Pattern[str] = OWN_REPLICATION,
) -> list[Check]:
    """The guardrails on blue; activity and slots are the server's, read once (in the
    first database), locks and publications are read in each database."""
    on_blue = scope.pairs[0].blue
    blues = [pair.blue for pair in scope.pairs]
    return [
        check_long_transactions(on_blue, long_transaction_s),
        check_ddl_locks(blues),
        check_self_managed_replication(blues, own),
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


def check_ddl_locks(blues: list[Session]) -> Check:
    doing = "looking for DDL locks"
    rows = [row for on_blue in blues for row in on_blue.rows(DDL_LOCKS, doing=doing)]
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
        fix="Let the statement finish or cancel it (pg_cancel_backend(pid)), then validate "
        "again; DDL that completes on blue is not replicated and needs a new deployment "
        "(see the schema-fingerprint checks).",
    )


def check_self_managed_replication(blues: list[Session], own: re.Pattern[str]) -> Check:
    on_blue = blues[0]
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
    publications = [
        f"publication {session.dbname}.{name}"
        for session in blues
        for (name,) in session.rows(PUBLICATIONS, doing="listing publications")
        if not own.search(name)
    ]
    found = slots + subscriptions + publications
    return Check(
        name="self-managed-replication",
        side="blue",
        passed=not found,
        observed=listing(found) if found else "none besides the deployment's own",
        expected=f"no replication slot, subscription or publication but AWS's own ({own.pattern})",
        severity=BLOCKER,
        why="AWS refuses to switch over while blue is a self-managed logical replication "
        "source or replica.",
        fix="Drop them on blue (pg_drop_replication_slot, DROP SUBSCRIPTION, DROP "
        "PUBLICATION) and set them up again on the new cluster after the switchover.",
    )


def _session(row: tuple) -> str:
    pid, user, db, state, _, age = row
    return f"pid {pid} ({user}@{db}, {state}, {age} s)"
