"""What logical replication will not carry, or what breaks it, seen on blue.

- A table without a primary key and without a usable replica identity: its
  INSERTs replicate, but blue refuses its UPDATEs and DELETEs while the
  deployment publishes it. A warning: append-only tables (an audit log) are
  fine, and whether the application updates them is for a person to judge;
  the observation says how many updates and deletes the statistics have seen.
- An unlogged table: never replicated. A blocker when it holds rows on blue
  (they are gone after the switchover), a warning when it is empty.
- Large objects: never replicated. A blocker: they are gone after the switchover.
(DDL, the fourth thing not carried, is `schema`'s job; sequences are
`sequences`'.)
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from aurora_bg.errors import InvalidState
from tasks.validation.model import BLOCKER, WARNING, Check, Session, TableRef, listing

NO_REPLICA_IDENTITY = """
SELECT n.nspname, c.relname, coalesce(s.n_tup_upd + s.n_tup_del, 0)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname = ANY(%s)
   AND (c.relreplident = 'n'
        OR (c.relreplident = 'd'
            AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
 ORDER BY 1, 2
"""
UNLOGGED = """
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND n.nspname = ANY(%s)
 ORDER BY 1, 2
"""


def check_hazards(on_blue: Session, schemas: Sequence[str]) -> list[Check]:
    return [
        check_replica_identity(on_blue, schemas),
        check_unlogged_tables(on_blue, schemas),
        check_large_objects(on_blue),
    ]


def check_replica_identity(on_blue: Session, schemas: Sequence[str]) -> Check:
    rows = on_blue.rows(NO_REPLICA_IDENTITY, [list(schemas)], doing="finding tables without keys")
    tables = [f"{TableRef(s, n)} ({_changes(changed)})" for s, n, changed in rows]
    return Check(
        name="replica-identity",
        side="blue",
        passed=not tables,
        observed=f"no primary key or replica identity: {listing(tables)}"
        if tables
        else "every table has a primary key or a replica identity",
        expected="a primary key or a replica identity on every table",
        severity=WARNING,
        why="Logical replication carries a keyless table's INSERTs, but blue refuses its "
        "UPDATEs and DELETEs while the deployment publishes it.",
        fix="Add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or USING INDEX), "
        "on blue and on green, if the application updates or deletes rows of these tables.",
    )


def check_unlogged_tables(on_blue: Session, schemas: Sequence[str]) -> Check:
    rows = on_blue.rows(UNLOGGED, [list(schemas)], doing="finding unlogged tables")
    tables = [TableRef(s, n) for s, n in rows]
    holding = [t for t in tables if _has_rows(on_blue, t)]
    described = [f"{t} ({'has rows' if t in holding else 'empty'})" for t in tables]
    return Check(
        name="unlogged-tables",
        side="blue",
        passed=not tables,
        observed=f"unlogged: {listing(described)}" if tables else "no unlogged table",
        expected="no unlogged table (or only empty ones)",
        severity=BLOCKER if holding else WARNING,
        why="Unlogged tables are never replicated: after the switchover they are empty.",
        fix="ALTER TABLE ... SET LOGGED on blue and green before the deployment is created, "
        "or copy their rows after the switchover if they matter (TRUNCATE them on blue if not).",
    )


def check_large_objects(on_blue: Session) -> Check:
    query = "SELECT count(*) FROM pg_largeobject_metadata"
    count = int(on_blue.value(query, doing="counting large objects"))
    return Check(
        name="large-objects",
        side="blue",
        passed=count == 0,
        observed=f"{count} large object{'s' if count != 1 else ''} on blue",
        expected="no large objects",
        severity=BLOCKER,
        why="Large objects are never replicated: after the switchover they are gone.",
        fix="Move them into bytea columns, or plan to copy them (lo_export/lo_import) right "
        "after the switchover and remove them from blue to pass this check.",
    )


def _has_rows(session: Session, table: TableRef) -> bool:
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table.identifier())
    try:
        return bool(session.value(query, doing=f"looking into {table}"))
    except InvalidState:  # not readable by us: assume the worst
        return True


def _changes(updated_or_deleted: int) -> str:
    if updated_or_deleted == 0:
        return "no updates or deletes seen"
    return f"{updated_or_deleted} updates/deletes seen"
