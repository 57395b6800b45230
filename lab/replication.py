"""Blue→green logical replication of every database, run the way an RDS Blue/Green
deployment runs it.

A deployment replicates every database of the cluster: each one that accepts
connections and is not a template, except AWS's own (`rdsadmin`). In each of them
blue publishes every table (`rds_bg_pub`) and green subscribes
(`rds_bg_sub_<database>`, whose slot on blue has the same name): AWS names its
replication objects with an `rds` prefix on both sides (AWS-FACTS S7). Green
receives blue's roles and schema, then subscribes over blue's unix socket as
`lab_admin`: no password exists anywhere. Green is read-only for clients, as
Aurora's green is, while the subscriptions keep applying.

How "read-only for clients" works, on green and on blue during a switchover:
`ALTER SYSTEM SET default_transaction_read_only = on` plus a reload reaches new
and existing sessions of every database; `ALTER ROLE lab_admin SET
default_transaction_read_only = off` (a role setting outranks the config file)
keeps the lab's own sessions and the subscriptions' workers writable.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterable

import psycopg
from psycopg import sql

from aurora_bg.errors import LabError
from lab.os_user import run_program
from lab.postgres import ADMIN_ROLE, PgServer, connect_admin, database_exists, single_value
from lab.server_settings import reload

PUBLICATION = "rds_bg_pub"
SUBSCRIPTION_PREFIX = "rds_bg_sub_"
# Databases AWS keeps for itself on an Aurora cluster: never replicated.
AWS_DATABASES = ("rdsadmin",)
# CREATE SUBSCRIPTION waits on blue for open write transactions to end before its slot exists.
SUBSCRIBE_STATEMENT_TIMEOUT = "60s"
SLOT_DROP_TIMEOUT_S = 10.0
MAINTENANCE_DB = "postgres"
_NAME_LIMIT = 63  # PostgreSQL's identifier length (NAMEDATALEN - 1)
_TABLE_SYNC_SLOT = re.compile(r"^pg_[0-9]+_sync_[0-9]+_[0-9]+$")


def subscription_name(dbname: str) -> str:
    """`rds_bg_sub_<database>`: the subscription on green and its slot on blue.

    A slot name allows lower-case letters, digits and underscores only: a database
    name with other characters, or too long, is folded and keeps a short hash of the
    original so that two databases never share a slot.
    """
    folded = re.sub(r"[^a-z0-9_]", "_", dbname.lower())
    name = SUBSCRIPTION_PREFIX + folded
    if folded == dbname and len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(dbname.encode()).hexdigest()[:8]
    return f"{name[: _NAME_LIMIT - 9]}_{digest}"


def replicated_databases(server: PgServer) -> list[str]:
    """The databases a deployment replicates, sorted: every one that accepts connections
    and is not a template, AWS's own left out."""
    with connect_admin(server) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
            " AND NOT (datname = ANY(%s)) ORDER BY datname",
            [list(AWS_DATABASES)],
        ).fetchall()
    return [row[0] for row in rows]


def start_replication(
    blue: PgServer, green: PgServer, databases: Iterable[str] | None = None
) -> list[str]:
    """Make green a read-only copy of blue's `databases` (default: every database) that
    follows blue; return the databases replicated. Idempotent.

    Each database on green must be missing, empty, or left by an earlier call.
    """
    names = list(databases) if databases is not None else replicated_databases(blue)
    existing = _subscriptions(green)
    if any(name not in existing for name in names):
        copy_roles(blue, green)
    for name in names:
        _ensure_publication(blue, name)
        _ensure_database(green, name)
        if name in existing:
            continue
        if not _has_user_tables(green, name):
            _copy_schema(blue, green, name)
            # Aurora's green is a clone of blue's storage: it starts with blue's
            # sequence values, and from then on replication does not move them.
            copy_sequence_values(blue, green, name)
        _create_subscription(blue, green, name)
    block_writes(green)
    return names


def initial_sync_done(green: PgServer, databases: Iterable[str] | None = None) -> bool:
    """True once every database (default: each of green's) has its subscription and every
    table finished its initial copy."""
    names = list(databases) if databases is not None else replicated_databases(green)
    subscriptions = _subscriptions(green)
    for name in names:
        subscription = subscriptions.get(name)
        if subscription is None:
            return False
        with connect_admin(green, name) as conn:
            pending = single_value(
                conn,
                "SELECT count(*) FROM pg_subscription_rel"
                " WHERE srsubid = %s AND srsubstate NOT IN ('r', 's')",
                [subscription[0]],
            )
        if pending:
            return False
    return True


def replication_lag_bytes(
    blue: PgServer, green: PgServer, databases: Iterable[str] | None = None
) -> int | None:
    """Bytes of blue's WAL that the furthest-behind subscription has not confirmed yet;
    None when a database (default: each of green's) has no subscription or no slot."""
    names = list(databases) if databases is not None else replicated_databases(green)
    subscriptions = _subscriptions(green)
    with connect_admin(blue) as conn:
        lags: dict[str, int | None] = dict(
            conn.execute(
                "SELECT slot_name, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint"
                " FROM pg_replication_slots"
            ).fetchall()
        )
    behind = 0
    for name in names:
        slot = subscriptions.get(name, (None, None))[1]
        lag = lags.get(slot) if slot is not None else None
        if lag is None:
            return None
        behind = max(behind, lag)
    return behind


def open_write_transactions(blue: PgServer) -> int:
    """Client sessions (any database) holding a transaction that has written something."""
    with connect_admin(blue) as conn:
        count: int = single_value(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
        )
        return count


def is_caught_up(blue: PgServer, green: PgServer, databases: Iterable[str] | None = None) -> bool:
    """Green holds everything blue committed, in every database (default: each of green's):
    initial sync done, no open write on blue, lag 0.

    Meaningful once blue's writes are blocked; before that it is a snapshot.
    """
    names = list(databases) if databases is not None else replicated_databases(green)
    return (
        initial_sync_done(green, names)
        and open_write_transactions(blue) == 0
        and replication_lag_bytes(blue, green, names) == 0
    )


def block_writes(server: PgServer) -> None:
    """New client transactions on `server`, in open sessions too, are read-only."""
    _set_read_only_for_clients(server, read_only=True)


def unblock_writes(server: PgServer) -> None:
    """Undo `block_writes`: client transactions may write again."""
    _set_read_only_for_clients(server, read_only=False)


def finish_switchover(blue: PgServer, green: PgServer) -> None:
    """Green becomes the writable primary; blue stays read-only. Idempotent.

    The subscriptions and their slots go, and every client connection on both
    servers is cut, as AWS drops them at switchover. Sequences keep the values
    green had: AWS does not carry them over, so advancing them is the upgrade
    flow's job, as it is on Aurora.
    """
    drop_subscriptions(blue, green)
    block_writes(blue)
    unblock_writes(green)
    terminate_client_connections(blue)
    terminate_client_connections(green)


def reset_green(blue: PgServer, green: PgServer) -> None:
    """Forget an aborted deployment: no subscription, slot or publication, and no database
    of green but an empty `postgres`, green writable, so that the next
    `start_replication` starts from scratch. Blue's own writability is left as it is.
    Idempotent."""
    drop_subscriptions(blue, green)
    drop_publications(blue)
    for name in replicated_databases(green):
        _drop_database(green, name)
    unblock_writes(green)


def drop_publications(blue: PgServer) -> None:
    """Drop the deployment's publication from every database of blue: its tables are no
    longer published, so UPDATE and DELETE need no replica identity again. Idempotent."""
    for name in replicated_databases(blue):
        _drop_publication(blue, name)


def cancel_switchover(blue: PgServer) -> None:
    """A switchover that timed out: AWS rolled back, so blue takes writes again."""
    unblock_writes(blue)


def drop_subscriptions(
    blue: PgServer, green: PgServer, databases: Iterable[str] | None = None
) -> None:
    """Drop green's subscriptions (of `databases`, default all) without asking blue, then
    their slots on blue. Idempotent."""
    wanted = None if databases is None else set(databases)
    for name in _subscriptions(green):
        if wanted is not None and name not in wanted:
            continue
        with connect_admin(green, name) as conn:
            subscription = sql.Identifier(subscription_name(name))
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(subscription))
            conn.execute(
                sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(subscription)
            )
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(subscription))
    _drop_subscriber_slots(blue, wanted)


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


def copy_sequence_values(blue: PgServer, green: PgServer, dbname: str) -> None:
    """Set every sequence of `dbname` on green to blue's last value."""
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


def _subscriptions(green: PgServer) -> dict[str, tuple[int, str | None]]:
    """Database -> (oid, slot name) of the deployment's subscription in it, on green
    (pg_subscription is cluster-wide)."""
    with connect_admin(green) as conn:
        rows = conn.execute(
            "SELECT d.datname, s.subname, s.oid, s.subslotname FROM pg_subscription s"
            " JOIN pg_database d ON d.oid = s.subdbid WHERE starts_with(s.subname, %s)",
            [SUBSCRIPTION_PREFIX],
        ).fetchall()
    return {db: (oid, slot) for db, name, oid, slot in rows if name == subscription_name(db)}


def _ensure_publication(blue: PgServer, dbname: str) -> None:
    with connect_admin(blue, dbname) as conn:
        exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [PUBLICATION])
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(PUBLICATION))
            )


def _drop_publication(blue: PgServer, dbname: str) -> None:
    with connect_admin(blue, dbname) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(PUBLICATION)))


def _ensure_database(server: PgServer, dbname: str) -> None:
    with connect_admin(server) as conn:
        if not database_exists(conn, dbname):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _drop_database(server: PgServer, dbname: str) -> None:
    """Drop `dbname`; the maintenance database comes back empty, as initdb made it."""
    if dbname != MAINTENANCE_DB:
        with connect_admin(server) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        return
    # One cannot drop the database one is connected to, and CREATE DATABASE copies
    # template0 only when nobody is connected to it: work from template1.
    with connect_admin(server, "template1") as conn:
        name = sql.Identifier(dbname)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name))


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
        sql.Identifier(subscription_name(dbname)),
        sql.Literal(blue.admin_conninfo(dbname)),
        sql.Identifier(PUBLICATION),
    )
    with connect_admin(green, dbname, statement_timeout=SUBSCRIBE_STATEMENT_TIMEOUT) as conn:
        conn.execute(statement)


def _drop_subscriber_slots(blue: PgServer, databases: set[str] | None) -> None:
    """Drop the subscriptions' slots and any table-sync slots they left on blue (in
    `databases`, default all), waiting (bounded) for their walsenders to let go."""
    deadline = time.monotonic() + SLOT_DROP_TIMEOUT_S
    with connect_admin(blue) as conn:
        while True:
            slots = [
                (name, pid)
                for name, pid, database in conn.execute(
                    "SELECT slot_name, active_pid, database FROM pg_replication_slots"
                ).fetchall()
                if (databases is None or database in databases) and _is_subscriber_slot(name)
            ]
            if not slots:
                return
            for slot_name, active_pid in slots:
                _drop_slot(conn, slot_name, active_pid)
            if time.monotonic() > deadline:
                raise LabError(f"replication slots {[s[0] for s in slots]} on blue stay active")
            time.sleep(0.1)


def _is_subscriber_slot(name: str) -> bool:
    return name.startswith(SUBSCRIPTION_PREFIX) or _TABLE_SYNC_SLOT.match(name) is not None


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
    reload(server)
