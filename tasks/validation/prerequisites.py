"""AWS's SQL-level prerequisites of a Blue/Green deployment, read on blue before it exists.

Run by preflight through read-only sessions, one per database
(`tasks.validation.databases`), in every schema but PostgreSQL's own. Each
check is one verdict across all databases, naming what it found as
`db.schema.name`. What AWS documents (AWS-FACTS.md, S1, S2, S7, S16):

- blockers: a table without a primary key or replica identity (blue refuses its
  UPDATEs and DELETEs from the moment the deployment publishes it: production
  breaks); an unlogged table with rows (not replicated, unless
  `rds.logically_replicate_unlogged_tables` is on); large objects (never
  replicated); publications, subscriptions and slots of the customer's own
  (blue may not take part in logical replication of its own; the deployment's
  own objects carry an `rds` prefix and are not counted); `pglogical` or
  `pgactive` installed; `pg_partman` run by its background worker (new partitions
  are DDL, which degrades the deployment);
- warnings, recorded for later phases: materialized views (refreshing one on blue
  breaks replication), `pg_cron` jobs (pg_cron must stay off on green), extensions
  behind their default version (AWS's best practice is to update first),
  REPLICA IDENTITY FULL tables with a column whose type has no equality operator
  (the subscriber cannot find their rows, so their UPDATEs and DELETEs fail).

Row counts are the planner's estimates (`pg_class.reltuples`, else the statistics'
live rows): preflight never scans a table. Every statement is bounded by the
session's statement and lock timeouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from psycopg import sql

from aurora_bg.errors import InvalidState
from tasks.validation.databases import USER_SCHEMA_FILTER
from tasks.validation.model import BLOCKER, WARNING, Check, Session, listing

# AWS names the deployment's own publications, subscriptions and slots with this prefix.
AWS_REPLICATION_PREFIX: Final = "rds"
LARGE_OBJECTS_COUNTED = 1000  # beyond this many, "more than 1000": never a long count

# A table `c` that logical replication cannot UPDATE or DELETE in: no replica identity,
# the default one without a primary key, or an identity index that is gone. Preflight
# (blue) and green's validation (tasks/validation/hazards.py) share this definition.
WITHOUT_REPLICA_IDENTITY: Final = """(c.relreplident = 'n'
        OR (c.relreplident = 'd' AND NOT EXISTS
              (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
        OR (c.relreplident = 'i' AND NOT EXISTS
              (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))"""
KEYLESS: Final = f"""
SELECT n.nspname, c.relname,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE s.n_live_tup END
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND {USER_SCHEMA_FILTER}
   AND {WITHOUT_REPLICA_IDENTITY}
 ORDER BY 1, 2
"""
UNLOGGED: Final = f"""
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND {USER_SCHEMA_FILTER}
 ORDER BY 1, 2
"""
LARGE_OBJECTS: Final = (
    f"SELECT count(*) FROM (SELECT 1 FROM pg_largeobject_metadata "
    f"LIMIT {LARGE_OBJECTS_COUNTED + 1}) AS found"
)
OWN_PUBLICATIONS: Final = "SELECT pubname FROM pg_publication WHERE pubname !~ %s ORDER BY 1"
OWN_SUBSCRIPTIONS: Final = """
SELECT subname FROM pg_subscription
 WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND subname !~ %s
 ORDER BY 1
"""
OWN_SLOTS: Final = """
SELECT slot_name, slot_type, coalesce(database, '')
  FROM pg_replication_slots WHERE slot_name !~ %s ORDER BY 1
"""
EXTENSIONS: Final = """
SELECT e.extname, e.extversion, coalesce(a.default_version, e.extversion)
  FROM pg_extension e LEFT JOIN pg_available_extensions a ON a.name = e.extname
 ORDER BY 1
"""
MATERIALIZED_VIEWS: Final = f"""
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'm' AND {USER_SCHEMA_FILTER}
 ORDER BY 1, 2
"""
CRON_JOBS: Final = "SELECT count(*) FROM cron.job WHERE active"
PARTMAN_WORKER_DATABASES: Final = (
    "SELECT coalesce(current_setting('pg_partman_bgw.dbname', true), '')"
)
# Columns of REPLICA IDENTITY FULL tables whose type (a domain's base type, an array's
# element type) has no default btree or hash operator class, hence no equality the
# subscriber can find a row with. Enums, ranges, multiranges and composites compare
# through their polymorphic classes.
FULL_IDENTITY_WITHOUT_EQUALITY: Final = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
  JOIN pg_type x ON x.oid = coalesce(e.oid, b.oid)
 WHERE c.relkind = 'r' AND c.relreplident = 'f' AND {USER_SCHEMA_FILTER}
   AND x.typtype NOT IN ('e', 'r', 'm', 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am m ON m.oid = o.opcmethod
                    WHERE o.opcdefault AND m.amname IN ('btree', 'hash')
                      AND o.opcintype = x.oid)
 ORDER BY 1, 2, 3
"""
NEVER_ALLOWED_EXTENSIONS: Final = ("pglogical", "pgactive")


@dataclass(frozen=True)
class Capacity:
    """Blue's live replication settings and what already uses them."""

    max_replication_slots: int
    max_wal_senders: int
    max_logical_replication_workers: int
    max_worker_processes: int
    slots_in_use: int
    senders_in_use: int
    synchronous_commit: str


CAPACITY: Final = """
SELECT current_setting('max_replication_slots')::int,
       current_setting('max_wal_senders')::int,
       current_setting('max_logical_replication_workers')::int,
       current_setting('max_worker_processes')::int,
       (SELECT count(*) FROM pg_replication_slots)::int,
       (SELECT count(*) FROM pg_stat_replication)::int,
       current_setting('synchronous_commit')
"""


def read_capacity(session: Session) -> Capacity:
    """Blue's replication settings as the server runs with them (`current_setting`)."""
    row = session.rows(CAPACITY, doing="reading the replication settings")[0]
    slots, senders, workers, processes, slots_used, senders_used, commit = row
    return Capacity(
        max_replication_slots=int(slots),
        max_wal_senders=int(senders),
        max_logical_replication_workers=int(workers),
        max_worker_processes=int(processes),
        slots_in_use=int(slots_used),
        senders_in_use=int(senders_used),
        synchronous_commit=str(commit),
    )


def check_prerequisites(
    sessions: Mapping[str, Session], *, unlogged_replicated: bool = False
) -> list[Check]:
    """Every SQL prerequisite, each one verdict over all `sessions` (database → session).
    `unlogged_replicated`: `rds.logically_replicate_unlogged_tables` is on."""
    if not sessions:
        return []
    any_session = next(iter(sessions.values()))  # slots are the server's, not a database's
    return [
        check_keyless_tables(sessions),
        check_unlogged_tables(sessions, unlogged_replicated),
        check_large_objects(sessions),
        check_own_publications(sessions),
        check_own_subscriptions(sessions),
        check_own_slots(any_session),
        *check_extensions(sessions),
        check_materialized_views(sessions),
        check_full_identity_equality(sessions),
    ]


# --- blockers -------------------------------------------------------------------------


def check_keyless_tables(sessions: Mapping[str, Session]) -> Check:
    found = _each(sessions, KEYLESS, "finding tables without a primary key")
    tables = [f"{db}.{s}.{t} ({_rows(n)})" for db, (s, t, n) in found]
    return Check(
        name="tables have primary keys",
        side="blue",
        passed=not tables,
        observed=f"no primary key or replica identity: {listing(tables)}"
        if tables
        else "every table has a primary key or a replica identity",
        expected="a primary key (or a replica identity) on every table of every database",
        severity=BLOCKER,
        why="Once the deployment publishes a table without a replica identity, blue "
        "(production) refuses every UPDATE and DELETE on it until the deployment is gone.",
        fix="add a primary key before creating the deployment; REPLICA IDENTITY FULL only "
        "where no key exists (ALTER TABLE ... REPLICA IDENTITY FULL)",
    )


def check_unlogged_tables(sessions: Mapping[str, Session], replicated: bool) -> Check:
    found = _each(sessions, UNLOGGED, "finding unlogged tables")
    holding: list[str] = []
    empty: list[str] = []
    for db, (schema, table) in found:
        name = f"{db}.{schema}.{table}"
        identifier = sql.Identifier(schema, table)
        (holding if _has_rows(sessions[db], identifier, name) else empty).append(name)
    if replicated:
        observed = "rds.logically_replicate_unlogged_tables is on: unlogged tables replicate"
    elif holding:
        observed = f"unlogged with rows: {listing(holding)}"
    else:
        observed = f"empty unlogged: {listing(empty)}" if empty else "no unlogged table"
    return Check(
        name="no unlogged tables with rows",
        side="blue",
        passed=replicated or not found,
        observed=observed,
        expected="no unlogged table (they are not replicated)",
        severity=BLOCKER if holding and not replicated else WARNING,
        why="Unlogged tables are not replicated: green has none of their rows, and after "
        "the switchover they are empty.",
        fix="ALTER TABLE ... SET LOGGED before creating the deployment (or TRUNCATE them if "
        "their rows do not matter); rows written to an empty one meanwhile are lost",
    )


def check_large_objects(sessions: Mapping[str, Session]) -> Check:
    counts = {
        db: int(s.value(LARGE_OBJECTS, doing="counting large objects"))
        for db, s in sessions.items()
    }
    holding = [f"{db} ({_many(n)})" for db, n in counts.items() if n]
    return Check(
        name="no large objects",
        side="blue",
        passed=not holding,
        observed=f"large objects in {listing(holding)}" if holding else "no large objects",
        expected="no large objects (they are never replicated)",
        severity=BLOCKER,
        why="Large objects are never replicated, and creating or changing one while the "
        "deployment exists degrades it: after the switchover they are gone.",
        fix="move them into bytea columns (or export them, lo_unlink them, and import them "
        "after the switchover) before creating the deployment",
    )


def check_own_publications(sessions: Mapping[str, Session]) -> Check:
    found = _each(sessions, OWN_PUBLICATIONS, "listing publications", [_NOT_AWS])
    names = [f"{db}.{name}" for db, (name,) in found]
    return _own_replication(
        "no own publications",
        names,
        "publications",
        "DROP PUBLICATION each one (after its subscribers stopped using it)",
    )


def check_own_subscriptions(sessions: Mapping[str, Session]) -> Check:
    found = _each(sessions, OWN_SUBSCRIPTIONS, "listing subscriptions", [_NOT_AWS])
    names = [f"{db}.{name}" for db, (name,) in found]
    return _own_replication(
        "no own subscriptions",
        names,
        "subscriptions",
        "DROP SUBSCRIPTION each one (after its publisher no longer needs it)",
    )


def check_own_slots(session: Session) -> Check:
    rows = session.rows(OWN_SLOTS, [_NOT_AWS], doing="listing replication slots")
    names = [f"{name} ({kind}{', ' + db if db else ''})" for name, kind, db in rows]
    return _own_replication(
        "no own replication slots",
        names,
        "replication slots",
        "SELECT pg_drop_replication_slot(...) for each one no consumer needs",
    )


def check_extensions(sessions: Mapping[str, Session]) -> list[Check]:
    """pglogical/pgactive (blocker), pg_partman's worker (blocker), pg_cron jobs and
    outdated extensions (warnings)."""
    installed = _each(sessions, EXTENSIONS, "listing extensions")
    forbidden = [
        f"{db}.{name}" for db, (name, _, _) in installed if name in NEVER_ALLOWED_EXTENSIONS
    ]
    outdated = [
        f"{db}.{name} {version} (default {latest})"
        for db, (name, version, latest) in installed
        if version != latest
    ]
    partman = [db for db, (name, _, _) in installed if name == "pg_partman"]
    scheduled = [db for db in partman if db in _partman_worker_databases(sessions[db])]
    cron = [db for db, (name, _, _) in installed if name == "pg_cron"]
    jobs = {db: _active_cron_jobs(sessions[db]) for db in cron}
    return [
        Check(
            "no pglogical or pgactive",
            "blue",
            not forbidden,
            f"installed: {listing(forbidden)}" if forbidden else "neither is installed",
            "no pglogical and no pgactive",
            BLOCKER,
            "Blue may not run logical replication of its own next to the deployment's.",
            "DROP EXTENSION pglogical / pgactive (and remove them from "
            "shared_preload_libraries) before creating the deployment",
        ),
        Check(
            "pg_partman not scheduled",
            "blue",
            not scheduled,
            f"pg_partman's background worker runs in {listing(scheduled)}"
            if scheduled
            else ("pg_partman installed, no background worker" if partman else "not installed"),
            "no pg_partman maintenance while the deployment exists",
            BLOCKER,
            "New partitions are DDL: DDL on blue puts the deployment in 'Replication degraded'.",
            "remove those databases from pg_partman_bgw.dbname (and call no run_maintenance) "
            "until the switchover is done",
        ),
        Check(
            "no pg_cron jobs",
            "blue",
            not any(jobs.values()),
            ", ".join(f"{db}: {n} active job{'s' if n != 1 else ''}" for db, n in jobs.items())
            if jobs
            else "pg_cron not installed",
            "no active pg_cron job",
            WARNING,
            "pg_cron must stay disabled on green, and a job that runs DDL or refreshes a "
            "materialized view on blue degrades the deployment.",
            "pause the jobs that run DDL or REFRESH while the deployment exists; enable "
            "pg_cron on the new cluster after the switchover",
        ),
        Check(
            "extensions up to date",
            "blue",
            not outdated,
            f"behind their default version: {listing(outdated)}"
            if outdated
            else "every extension at its default version",
            "every extension at its latest version",
            WARNING,
            "AWS advises updating extensions before creating a deployment.",
            "ALTER EXTENSION ... UPDATE in each database before creating the deployment",
        ),
    ]


# --- warnings -------------------------------------------------------------------------


def check_materialized_views(sessions: Mapping[str, Session]) -> Check:
    found = _each(sessions, MATERIALIZED_VIEWS, "listing materialized views")
    views = [f"{db}.{s}.{v}" for db, (s, v) in found]
    return Check(
        name="no materialized views",
        side="blue",
        passed=not views,
        observed=f"materialized views: {listing(views)}" if views else "none",
        expected="no REFRESH MATERIALIZED VIEW on blue while the deployment exists",
        severity=WARNING,
        why="Refreshing a materialized view on blue while the deployment exists breaks "
        "replication.",
        fix="do not refresh them on blue during the deployment; refresh them on the new "
        "cluster after the switchover",
    )


def check_full_identity_equality(sessions: Mapping[str, Session]) -> Check:
    found = _each(sessions, FULL_IDENTITY_WITHOUT_EQUALITY, "finding FULL identity columns")
    columns = [f"{db}.{s}.{t}.{c} ({kind})" for db, (s, t, c, kind) in found]
    return Check(
        name="FULL identity columns comparable",
        side="blue",
        passed=not columns,
        observed=f"no equality operator: {listing(columns)}"
        if columns
        else "every column of a REPLICA IDENTITY FULL table has an equality operator",
        expected="an equality operator for every column of a REPLICA IDENTITY FULL table",
        severity=WARNING,
        why="With REPLICA IDENTITY FULL green finds a row by comparing every column: a "
        "column without equality makes that table's UPDATEs and DELETEs fail on green.",
        fix="add a primary key to these tables before creating the deployment (or change "
        "the column's type, e.g. json to jsonb)",
    )


# --- helpers --------------------------------------------------------------------------

_NOT_AWS = f"^{AWS_REPLICATION_PREFIX}"


def _each(
    sessions: Mapping[str, Session], query: str, doing: str, params: list[Any] | None = None
) -> list[tuple[str, tuple[Any, ...]]]:
    """(database, row) for every row of `query` in every database, in database order."""
    return [
        (db, tuple(row))
        for db, session in sessions.items()
        for row in session.rows(query, params, doing=doing)
    ]


def _own_replication(name: str, found: list[str], what: str, fix: str) -> Check:
    return Check(
        name=name,
        side="blue",
        passed=not found,
        observed=f"{what}: {listing(found)}" if found else f"no {what} but AWS's (rds…)",
        expected=f"no {what} of the cluster's own",
        severity=BLOCKER,
        why="Blue may not be a logical replication publisher or subscriber of its own "
        "while a deployment exists (AWS's own objects are named rds…).",
        fix=fix + " before creating the deployment",
    )


def _has_rows(session: Session, table: sql.Identifier, name: str) -> bool:
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table)
    try:
        return bool(session.value(query, doing=f"looking into {name}"))
    except InvalidState:  # not readable by us (or locked past the timeout): assume rows
        return True


def _partman_worker_databases(session: Session) -> set[str]:
    listed = str(session.value(PARTMAN_WORKER_DATABASES, doing="reading pg_partman_bgw") or "")
    return {name.strip() for name in listed.split(",") if name.strip()}


def _active_cron_jobs(session: Session) -> int:
    try:
        return int(session.value(CRON_JOBS, doing="counting pg_cron jobs") or 0)
    except InvalidState:  # cron.job not readable: count what cannot be seen as one
        return 1


def _rows(estimate: int | None) -> str:
    if estimate is None:
        return "rows unknown: never analyzed"
    return f"~{estimate} row{'' if estimate == 1 else 's'}"


def _many(count: int) -> str:
    return f"more than {LARGE_OBJECTS_COUNTED}" if count > LARGE_OBJECTS_COUNTED else str(count)
