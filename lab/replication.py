"""Blue→green logical replication, run the way an RDS Blue/Green deployment runs it.

Blue publishes every table (`aurora_bg_pub`). Green receives blue's roles and
schema, then subscribes (`aurora_bg_sub`) over blue's unix socket as
`lab_admin`: no password exists anywhere. Green is read-only for clients, as
Aurora's green is, while the subscription keeps applying.

How "read-only for clients" works, on green and on blue during a switchover:
`ALTER SYSTEM SET default_transaction_read_only = on` plus a reload reaches new
and existing sessions of every database; `ALTER ROLE lab_admin SET
default_transaction_read_only = off` (a role setting outranks the config file)
keeps the lab's own sessions and the subscription's workers writable.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime

import psycopg
from psycopg import sql

from aurora_bg.errors import LabError
from lab.os_user import run_program
from lab.postgres import ADMIN_ROLE, PgServer, connect_admin, database_exists, single_value

PUBLICATION = "aurora_bg_pub"
SUBSCRIPTION = "aurora_bg_sub"
# CREATE SUBSCRIPTION waits on blue for open write transactions to end before its slot exists.
SUBSCRIBE_STATEMENT_TIMEOUT = "60s"
RELOAD_TIMEOUT_S = 5.0
SLOT_DROP_TIMEOUT_S = 10.0
_SUBSCRIBER_SLOTS = r"slot_name = %s OR slot_name ~ '^pg_[0-9]+_sync_[0-9]+_[0-9]+$'"


def start_replication(blue: PgServer, green: PgServer, dbname: str = "app") -> None:
    """Make green a read-only copy of blue's `dbname` that follows blue. Idempotent.

    Green's `dbname` must be missing, empty, or left by an earlier call of this function.
    """
    _ensure_publication(blue, dbname)
    _ensure_database(green, dbname)
    if _subscription(green, dbname) is None:
        copy_roles(blue, green)
        if not _has_user_tables(green, dbname):
            _copy_schema(blue, green, dbname)
            # Aurora's green is a clone of blue's storage: it starts with blue's
            # sequence values, and from then on replication does not move them.
            copy_sequence_values(blue, green, dbname)
        _create_subscription(blue, green, dbname)
    block_writes(green)


def initial_sync_done(green: PgServer, dbname: str = "app") -> bool:
    """True once the subscription exists and every table finished its initial copy."""
    subscription = _subscription(green, dbname)
    if subscription is None:
        return False
    with connect_admin(green, dbname) as conn:
        pending = single_value(
            conn,
            "SELECT count(*) FROM pg_subscription_rel"
            " WHERE srsubid = %s AND srsubstate NOT IN ('r', 's')",
            [subscription["oid"]],
        )
    return pending == 0


def replication_lag_bytes(blue: PgServer, green: PgServer, dbname: str = "app") -> int | None:
    """Bytes of blue's WAL that green has not confirmed yet; None when there is no slot."""
    subscription = _subscription(green, dbname)
    if subscription is None or subscription["slot"] is None:
        return None
    with connect_admin(blue, dbname) as conn:
        row = conn.execute(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint"
            " FROM pg_replication_slots WHERE slot_name = %s",
            [subscription["slot"]],
        ).fetchone()
    if row is None or row[0] is None:
        return None
    return max(0, row[0])


def open_write_transactions(blue: PgServer, dbname: str = "app") -> int:
    """Client sessions (any database) holding a transaction that has written something."""
    with connect_admin(blue, dbname) as conn:
        count: int = single_value(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
        )
        return count


def is_caught_up(blue: PgServer, green: PgServer, dbname: str = "app") -> bool:
    """Green holds everything blue committed: initial sync done, no open write on blue, lag 0.

    Meaningful once blue's writes are blocked; before that it is a snapshot.
    """
    return (
        initial_sync_done(green, dbname)
        and open_write_transactions(blue, dbname) == 0
        and replication_lag_bytes(blue, green, dbname) == 0
    )


def block_writes(server: PgServer) -> None:
    """New client transactions on `server`, in open sessions too, are read-only."""
    _set_read_only_for_clients(server, read_only=True)


def unblock_writes(server: PgServer) -> None:
    """Undo `block_writes`: client transactions may write again."""
    _set_read_only_for_clients(server, read_only=False)


def finish_switchover(blue: PgServer, green: PgServer, dbname: str = "app") -> None:
    """Green becomes the writable primary; blue stays read-only. Idempotent.

    The subscription and its slot go, and every client connection on both
    servers is cut, as AWS drops them at switchover. Sequences keep the values
    green had: AWS does not carry them over, so advancing them is the upgrade
    flow's job, as it is on Aurora.
    """
    drop_subscription(blue, green, dbname)
    block_writes(blue)
    unblock_writes(green)
    terminate_client_connections(blue)
    terminate_client_connections(green)


def reset_green(blue: PgServer, green: PgServer, dbname: str = "app") -> None:
    """Forget an aborted deployment: no subscription, slot, publication nor green copy of
    `dbname`, and green writable, so the next `start_replication` starts from scratch.
    Blue's own writability is left as it is. Idempotent."""
    drop_subscription(blue, green, dbname)
    _drop_publication(blue, dbname)
    with connect_admin(green) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
    unblock_writes(green)


def cancel_switchover(blue: PgServer) -> None:
    """A switchover that timed out: AWS rolled back, so blue takes writes again."""
    unblock_writes(blue)


def drop_subscription(blue: PgServer, green: PgServer, dbname: str = "app") -> None:
    """Drop green's subscription without asking blue, then its slots on blue. Idempotent."""
    if _subscription(green, dbname) is not None:
        with connect_admin(green, dbname) as conn:
            name = sql.Identifier(SUBSCRIPTION)
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))
    _drop_subscriber_slots(blue, dbname)


def copy_roles(blue: PgServer, green: PgServer) -> None:
    """Give green blue's roles, attributes and password verifiers, as a cluster clone has."""
    with connect_admin(blue) as conn:
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,"
            " rolreplication, rolbypassrls, rolconnlimit, rolpassword, rolvaliduntil::text"
            " FROM pg_authid WHERE rolname !~ '^pg_' AND rolname <> %s ORDER BY rolname",
            [ADMIN_ROLE],
        ).fetchall()
    with connect_admin(green) as conn:
        for role in roles:
            name = sql.Identifier(role[0])
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role[0]]).fetchone():
                conn.execute(sql.SQL("ALTER ROLE {} WITH {}").format(name, _role_options(role)))
            else:
                conn.execute(sql.SQL("CREATE ROLE {} WITH {}").format(name, _role_options(role)))


def copy_sequence_values(blue: PgServer, green: PgServer, dbname: str = "app") -> None:
    """Set every sequence on green to blue's last value."""
    with connect_admin(blue, dbname) as conn:
        values = conn.execute(
            "SELECT format('%I.%I', schemaname, sequencename), last_value"
            " FROM pg_sequences WHERE last_value IS NOT NULL"
        ).fetchall()
    with connect_admin(green, dbname) as conn:
        for sequence, last_value in values:
            conn.execute("SELECT setval(%s::regclass, %s, true)", [sequence, last_value])


def terminate_client_connections(server: PgServer) -> None:
    """Cut every client session on `server` but the one doing the cutting."""
    with connect_admin(server) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )


def _subscription(green: PgServer, dbname: str) -> dict | None:
    """Our subscription's oid and slot name on green (pg_subscription is cluster-wide)."""
    with connect_admin(green) as conn:
        row = conn.execute(
            "SELECT s.oid, s.subslotname FROM pg_subscription s"
            " JOIN pg_database d ON d.oid = s.subdbid WHERE s.subname = %s AND d.datname = %s",
            [SUBSCRIPTION, dbname],
        ).fetchone()
    return None if row is None else {"oid": row[0], "slot": row[1]}


def _ensure_publication(blue: PgServer, dbname: str) -> None:
    with connect_admin(blue, dbname) as conn:
        exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [PUBLICATION])
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(PUBLICATION))
            )


def _drop_publication(blue: PgServer, dbname: str) -> None:
    with connect_admin(blue) as conn:
        if not database_exists(conn, dbname):
            return
    with connect_admin(blue, dbname) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(PUBLICATION)))


def _ensure_database(server: PgServer, dbname: str) -> None:
    with connect_admin(server) as conn:
        if not database_exists(conn, dbname):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _has_user_tables(server: PgServer, dbname: str) -> bool:
    with connect_admin(server, dbname) as conn:
        return (
            conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname !~ '^pg_toast' LIMIT 1"
            ).fetchone()
            is not None
        )


def _copy_schema(blue: PgServer, green: PgServer, dbname: str) -> None:
    """Blue's schema into green in one transaction; green's newer pg_dump reads the older blue."""
    dump = run_program(
        [
            green.bindir / "pg_dump",
            "--schema-only",
            "--no-publications",
            "--no-subscriptions",
            "--dbname",
            blue.admin_conninfo(dbname),
        ]
    ).stdout
    run_program(
        [
            green.bindir / "psql",
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set",
            "ON_ERROR_STOP=1",
            "--dbname",
            green.admin_conninfo(dbname),
        ],
        input=dump,
    )


def _create_subscription(blue: PgServer, green: PgServer, dbname: str) -> None:
    statement = sql.SQL(
        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = true)"
    ).format(
        sql.Identifier(SUBSCRIPTION),
        sql.Literal(blue.admin_conninfo(dbname)),
        sql.Identifier(PUBLICATION),
    )
    with connect_admin(green, dbname, statement_timeout=SUBSCRIBE_STATEMENT_TIMEOUT) as conn:
        conn.execute(statement)


def _drop_subscriber_slots(blue: PgServer, dbname: str) -> None:
    """Drop the subscription's slot and any table-sync slots it left on blue, waiting
    (bounded) for their walsenders to let go."""
    deadline = time.monotonic() + SLOT_DROP_TIMEOUT_S
    with connect_admin(blue) as conn:
        while True:
            slots = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots"
                f" WHERE database = %s AND ({_SUBSCRIBER_SLOTS})",
                [dbname, SUBSCRIPTION],
            ).fetchall()
            if not slots:
                return
            for slot_name, active_pid in slots:
                _drop_slot(conn, slot_name, active_pid)
            if time.monotonic() > deadline:
                raise LabError(f"replication slots {[s[0] for s in slots]} on blue stay active")
            time.sleep(0.1)


def _drop_slot(conn: psycopg.Connection, slot_name: str, active_pid: int | None) -> None:
    if active_pid is not None:
        conn.execute("SELECT pg_terminate_backend(%s)", [active_pid])
        return  # dropped on the next round, once the walsender is gone
    # the slot may turn active again or vanish meanwhile: the caller's next round decides
    with contextlib.suppress(psycopg.errors.ObjectInUse, psycopg.errors.UndefinedObject):
        conn.execute("SELECT pg_drop_replication_slot(%s)", [slot_name])


def _role_options(role: tuple) -> sql.Composed:
    (_, superuser, inherit, createrole, createdb, login, replication, bypassrls) = role[:8]
    connlimit, password, valid_until = role[8:]
    flags = {
        "SUPERUSER": superuser,
        "INHERIT": inherit,
        "CREATEROLE": createrole,
        "CREATEDB": createdb,
        "LOGIN": login,
        "REPLICATION": replication,
        "BYPASSRLS": bypassrls,
    }
    parts: list[sql.Composable] = [
        sql.SQL(word if on else f"NO{word}") for word, on in flags.items()
    ]
    parts.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(connlimit)))
    parts.append(sql.SQL("PASSWORD {}").format(sql.Literal(password)))
    parts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(valid_until or "infinity")))
    return sql.SQL(" ").join(parts)


def _set_read_only_for_clients(server: PgServer, *, read_only: bool) -> None:
    with connect_admin(server) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = off").format(
                sql.Identifier(ADMIN_ROLE)
            )
        )
        if read_only:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        before = single_value(conn, "SELECT now()")
        conn.execute("SELECT pg_reload_conf()")
    _wait_for_reload(server, before)


def _wait_for_reload(server: PgServer, requested_at: datetime) -> None:
    """pg_reload_conf() only signals the postmaster; a session forked after it reloaded
    inherits its config load time, so wait (bounded) until a new session shows a later one."""
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        with connect_admin(server) as conn:
            loaded_at = single_value(conn, "SELECT pg_conf_load_time()")
        if loaded_at >= requested_at:
            return
        time.sleep(0.02)
    raise LabError(f"{server.name} did not reload its configuration within {RELOAD_TIMEOUT_S}s")
