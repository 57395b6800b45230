"""A blue/green pair of real PostgreSQL servers for the validation tests: blue (15 when
installed, else 16) seeded with the demo schema (in `app`, and in any further database
asked for), green (16) following every database of it by logical replication, as the
lab runs an RDS Blue/Green deployment. Plus the small builders the tests use to cause,
for real, what each check exists for."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from aurora_bg.polling import poll_until
from lab import replication
from lab.postgres import (
    MASTER_ROLE,
    PgServer,
    connect_admin,
    create_server,
    default_bindir,
    seed_demo_schema,
)
from lab.scram import set_role_password
from tasks.validation.model import ValidationReport
from tasks.validation.session import Endpoint
from tasks.validation.suites import validate_green

DBNAME = "app"
TARGET_MAJOR = 16
SYNC_TIMEOUT_S = 60


@dataclass
class Pair:
    blue: PgServer
    green: PgServer
    password: str

    @property
    def blue_endpoint(self) -> Endpoint:
        return endpoint_of(self.blue)

    @property
    def green_endpoint(self) -> Endpoint:
        return endpoint_of(self.green)

    def validate(self, **options: Any) -> ValidationReport:
        return validate_green(
            self.green_endpoint,
            self.blue_endpoint,
            MASTER_ROLE,
            self.password,
            DBNAME,
            **{"target_major": TARGET_MAJOR, **options},
        )


def endpoint_of(server: PgServer) -> Endpoint:
    params = server.tcp_conninfo_params()
    return Endpoint(params["host"], params["port"])


def start_pair(lab_dir: Path, *more_databases: str) -> Pair:
    """Blue seeded with the demo schema (in `app` and each of `more_databases`) and green
    following every database of it; stop both with `stop_pair`."""
    count = 2 + len(more_databases)  # `postgres`, `app` and the others
    blue = create_server("blue", default_bindir("blue"), lab_dir, databases=count)
    green = create_server("green", default_bindir("green"), lab_dir, databases=count)
    pair = Pair(blue, green, "pw-" + secrets.token_urlsafe(18))
    try:
        blue.start()
        green.start()
        for name in (DBNAME, *more_databases):
            seed_demo_schema(blue, name)
        for server in (blue, green):
            set_role_password(server, MASTER_ROLE, pair.password)
        replication.start_replication(blue, green)
        poll_until(
            lambda: replication.initial_sync_done(green),
            bool,
            timeout=SYNC_TIMEOUT_S,
            what="initial sync of green",
            first_interval=0.2,
            max_interval=1.0,
        )
    except BaseException:
        stop_pair(pair)
        raise
    return pair


def stop_pair(pair: Pair) -> None:
    pair.green.stop()
    pair.blue.stop()


@contextlib.contextmanager
def replicated_pair(lab_dir: Path, *more_databases: str) -> Iterator[Pair]:
    pair = start_pair(lab_dir, *more_databases)
    try:
        yield pair
    finally:
        stop_pair(pair)


def switch_over_without_sequences(pair: Pair) -> None:
    """The lab's switchover as Aurora does it: green writable, blue read-only, the
    subscription gone, and sequences left as logical replication left them (not copied)."""
    replication.drop_subscriptions(pair.blue, pair.green)
    replication.block_writes(pair.blue)
    replication.unblock_writes(pair.green)


# --- causing things, for real ------------------------------------------------------------


def admin_execute(
    server: PgServer, statement: str | sql.Composable, params: Any = None, dbname: str = DBNAME
) -> Any:
    """Run one statement as the lab's superuser (autocommit) in `dbname`; return its first
    value, if any."""
    with connect_admin(server, dbname) as conn:
        cursor = conn.execute(statement, params)
        row = cursor.fetchone() if cursor.description else None
    return row[0] if row else None


def set_subscription_enabled(green: PgServer, enabled: bool) -> None:
    verb = sql.SQL("ENABLE" if enabled else "DISABLE")
    name = sql.Identifier(replication.subscription_name(DBNAME))
    admin_execute(green, sql.SQL("ALTER SUBSCRIPTION {} {}").format(name, verb))


def insert_audit_rows(blue: PgServer, rows: int) -> None:
    admin_execute(
        blue,
        sql.SQL(
            "INSERT INTO audit_log (actor, action) SELECT 'test', 'row ' || n"
            " FROM generate_series(1, {}) AS n"
        ).format(sql.Literal(rows)),
    )


def wait_until_green_caught_up(pair: Pair) -> None:
    poll_until(
        lambda: (
            replication.is_caught_up(pair.blue, pair.green) and pair.validate(lag_grace_s=0).passed
        ),
        bool,
        timeout=SYNC_TIMEOUT_S,
        what="green to catch up",
        first_interval=0.2,
        max_interval=1.0,
    )


@contextlib.contextmanager
def subscription_disabled(pair: Pair) -> Iterator[None]:
    set_subscription_enabled(pair.green, False)
    try:
        yield
    finally:
        set_subscription_enabled(pair.green, True)
        wait_until_green_caught_up(pair)


@contextlib.contextmanager
def open_transaction_on(server: PgServer, *statements: str) -> Iterator[Any]:
    """A client session on `server` (as the lab's superuser) inside a transaction that ran
    `statements` and stays open for the block; rolled back at the end."""
    with connect_admin(server, DBNAME) as conn:
        conn.autocommit = False
        for statement in statements:
            conn.execute(statement)
        try:
            yield conn
        finally:
            conn.rollback()


def check_named(report: ValidationReport, name: str):  # noqa: ANN201
    found = [c for c in report.checks if c.name == name]
    assert found, f"no check {name!r} in {[c.name for c in report.checks]}"
    return found[0]
