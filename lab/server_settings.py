"""Change a lab PostgreSQL server's settings the way Aurora applies parameters.

A dynamic parameter takes effect once the server reloads its configuration; a
static one only when the server restarts (a reboot, on Aurora). Both are written
with ALTER SYSTEM (`postgresql.auto.conf` outranks the lab's `postgresql.conf`),
so that they survive later restarts as a parameter group's values do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from psycopg import sql

from aurora_bg.errors import LabError
from lab.postgres import PgServer, connect_admin, single_value

RELOAD_TIMEOUT_S = 5.0


def alter_system(server: PgServer, settings: Mapping[str, str]) -> None:
    """Write `settings` (name -> value) with ALTER SYSTEM; nothing takes effect yet."""
    with connect_admin(server) as conn:
        for name, value in settings.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )


def reload(server: PgServer) -> None:
    """Make the server reload its configuration; return once new sessions see it."""
    with connect_admin(server) as conn:
        before = single_value(conn, "SELECT now()")
        conn.execute("SELECT pg_reload_conf()")
    wait_for_reload(server, before)


def wait_for_reload(server: PgServer, requested_at: datetime) -> None:
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


def apply_dynamic(server: PgServer, settings: Mapping[str, str]) -> None:
    """Apply dynamic settings at once: ALTER SYSTEM, then a reload."""
    if settings:
        alter_system(server, settings)
        reload(server)


def apply_with_restart(server: PgServer, settings: Mapping[str, str]) -> int:
    """Apply settings, static ones included, by restarting the server; return its new PID."""
    if settings:
        alter_system(server, settings)
    return server.restart()
