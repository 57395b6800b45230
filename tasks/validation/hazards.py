"""What logical replication will not carry, or what breaks it, seen on blue in every database.

Preflight refuses each of these before the deployment is created; here they
are what appeared since (or what a cluster validated without that preflight
brings along), while the deployment exists:

- A table without a primary key and without a usable replica identity: blue
  refuses its UPDATEs and DELETEs from the moment the deployment publishes it,
  on production, until the deployment is gone. A blocker: giving it a key now
  is DDL, which AWS answers with "Replication degraded", so the deployment must
  go first.
- An unlogged table (unless `rds.logically_replicate_unlogged_tables` is on):
  never replicated. A blocker when it holds rows on blue (they are gone after
  the switchover), a warning when it is empty.
- Large objects: never replicated, and creating or changing one while the
  deployment exists degrades it. A blocker, with how many green holds.
(DDL is `schema`'s job; sequences are `sequences`'; grants are `grants`'.)
"""

from __future__ import annotations

from psycopg import sql

from aurora_bg.errors import InvalidState
from tasks.validation.model import (
    BLOCKER,
    NEW_DEPLOYMENT_FIX,
    WARNING,
    Check,
    Session,
    TableRef,
    listing,
)
from tasks.validation.prerequisites import WITHOUT_REPLICA_IDENTITY
from tasks.validation.scope import SCHEMAS_PLACEHOLDER, Scope

NO_REPLICA_IDENTITY = f"""
SELECT n.nspname, c.relname, coalesce(s.n_tup_upd + s.n_tup_del, 0)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND {SCHEMAS_PLACEHOLDER}
   AND {WITHOUT_REPLICA_IDENTITY}
 ORDER BY 1, 2
"""
UNLOGGED = """
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND {schemas}
 ORDER BY 1, 2
"""
# AWS's parameter that makes the deployment replicate unlogged tables; absent elsewhere
UNLOGGED_REPLICATED = (
    "SELECT coalesce(current_setting('rds.logically_replicate_unlogged_tables', true), '0')"
    " IN ('1', 'on')"
)
LARGE_OBJECTS = "SELECT count(*) FROM pg_largeobject_metadata"


def check_hazards(scope: Scope) -> list[Check]:
    return [
        check_replica_identity(scope),
        check_unlogged_tables(scope),
        check_large_objects(scope),
    ]


def check_replica_identity(scope: Scope) -> Check:
    tables = []
    for pair in scope.pairs:
        rows = scope.rows(pair.blue, NO_REPLICA_IDENTITY, doing="finding tables without keys")
        tables += [f"{TableRef(s, n, pair.name)} ({_changes(changed)})" for s, n, changed in rows]
    return Check(
        name="replica-identity",
        side="blue",
        passed=not tables,
        observed=f"no primary key or replica identity: {listing(tables)}"
        if tables
        else "every table has a primary key or a replica identity",
        expected="a primary key or a replica identity on every table",
        severity=BLOCKER,
        why="While the deployment publishes a table without a key, blue (production) refuses "
        "every UPDATE and DELETE on it; only INSERTs replicate.",
        fix="Delete the deployment first (blue refuses these tables' updates until it is gone, "
        "and adding a key now is DDL, which degrades it), then give each table a primary key "
        "on blue (REPLICA IDENTITY FULL only where no key exists) and run the upgrade again.",
    )


def check_unlogged_tables(scope: Scope) -> Check:
    tables: list[TableRef] = []
    holding: list[TableRef] = []
    replicated = False
    for pair in scope.pairs:
        rows = scope.rows(pair.blue, UNLOGGED, doing="finding unlogged tables")
        found = [TableRef(s, n, pair.name) for s, n in rows]
        if found:
            replicated = bool(pair.blue.value(UNLOGGED_REPLICATED, doing="reading a parameter"))
        tables += found
        holding += [t for t in found if _has_rows(pair.blue, t)]
    described = [f"{t} ({'has rows' if t in holding else 'empty'})" for t in tables]
    return Check(
        name="unlogged-tables",
        side="blue",
        passed=not tables or replicated,
        observed=f"unlogged: {listing(described)}" if tables else "no unlogged table",
        expected="no unlogged table (or only empty ones), unless "
        "rds.logically_replicate_unlogged_tables is on",
        severity=BLOCKER if holding else WARNING,
        why="Unlogged tables are not replicated: after the switchover they are empty.",
        fix="If their rows matter, copy them to the new cluster right after the switchover; if "
        "not, TRUNCATE them on blue. To have them replicated instead: "
        "delete the deployment, SET LOGGED on blue, and run the upgrade again.",
    )


def check_large_objects(scope: Scope) -> Check:
    per_database, on_blue, on_green = [], 0, 0
    for pair in scope.pairs:
        blue = _count_large_objects(pair.blue)
        if blue:
            per_database.append(f"{pair.name}: {blue}")
            on_blue += blue
            on_green += _count_large_objects(pair.green)
    observed = f"{on_blue} large object{'s' if on_blue != 1 else ''} on blue"
    if on_blue:
        observed += f" ({', '.join(per_database)}); {on_green} in those databases on green"
    return Check(
        name="large-objects",
        side="blue",
        passed=on_blue == 0,
        observed=observed,
        expected="no large objects",
        severity=BLOCKER,
        why="Large objects are not replicated: one created or changed on blue is not on green, "
        "and AWS marks the deployment Replication degraded.",
        fix="Move them into bytea columns (or plan to copy them with lo_export/lo_import after "
        "the switchover) and remove them from blue; then, as for any change that degraded "
        "replication: " + NEW_DEPLOYMENT_FIX,
    )


def _count_large_objects(session: Session) -> int:
    return int(session.value(LARGE_OBJECTS, doing="counting large objects"))


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
