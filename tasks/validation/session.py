"""PostgreSQL sessions for validation, with errors that never carry a secret.

psycopg's connection errors hold the whole connection (password included) in
their `pgconn` attribute, and libpq's messages repeat connection details. So
every psycopg error is turned into one of ours, built from the endpoint, the
database name and a SQLSTATE only, and raised outside the `except` block so
that not even `__context__` points back at the original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.abc import Params, QueryNoTemplate

from aurora_bg.errors import AuroraBGError, BusinessError, InvalidState, TransientError

APPLICATION_NAME = "aurora-bg"

# libpq reports a refused login without a SQLSTATE: recognise the server's FATAL line.
# Retrying any of these cannot succeed, so they are business errors.
_LOGIN_REFUSALS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"password authentication failed|no password supplied"),
        "28P01",
        "authentication failed; check the password",
    ),
    (
        re.compile(r"no pg_hba\.conf entry|pg_hba\.conf rejects"),
        "28000",
        "pg_hba.conf allows no such login",
    ),
    (re.compile(r'fatal:\s+role ".*" does not exist'), "28000", "the login role does not exist"),
    (re.compile(r'fatal:\s+database ".*" does not exist'), "3D000", "the database does not exist"),
    (re.compile(r"authentication failed"), "28000", "authentication failed"),
)

# SQLSTATE classes of errors worth retrying: connection exceptions, insufficient
# resources, operator intervention (shutdown, restart, query canceled by timeout)
# and system errors.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
# Of those, the ones that say the session itself was lost (not that a statement was
# too slow): connection exceptions, and the server terminating or restarting.
_SESSION_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def session_lost(exc: psycopg.Error) -> bool:
    """True when the statement failed because the session went away, not because of it."""
    return exc.sqlstate is None or exc.sqlstate.startswith(_SESSION_LOST_SQLSTATES)


@dataclass(frozen=True)
class Endpoint:
    """Where a cluster answers: a host name and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def connect(
    endpoint: Endpoint,
    user: str,
    password: str,
    dbname: str,
    *,
    read_only: bool = True,
    statement_timeout_ms: int = 15000,
    lock_timeout_ms: int | None = None,
    connect_timeout_s: int = 10,
) -> psycopg.Connection:
    """Open a session on `endpoint` (autocommit off) and return it.

    A read-only session is read-only from its first statement on: the server
    applies `default_transaction_read_only=on` before the session runs anything.
    Every statement is bounded by `statement_timeout_ms`, and by `lock_timeout_ms`
    when given, so that a check never queues behind an application's lock.

    Raises TransientError when the endpoint cannot be reached (refused, reset,
    timed out, server starting or stopping) and BusinessError when the server
    refuses the login (SQLSTATE 28P01/28000) or the database does not exist
    (3D000). Messages name the endpoint and database, never the password or
    the connection string.
    """
    try:
        return psycopg.connect(
            host=endpoint.host,
            port=endpoint.port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=connect_timeout_s,
            options=session_options(read_only, statement_timeout_ms, lock_timeout_ms),
            application_name=APPLICATION_NAME,
            autocommit=False,
        )
    except psycopg.Error as exc:
        error = connect_error(exc, endpoint, dbname)
    raise error


def session_options(
    read_only: bool, statement_timeout_ms: int, lock_timeout_ms: int | None = None
) -> str:
    """The `options` startup parameter: settings the server applies before any statement."""
    settings = [f"statement_timeout={int(statement_timeout_ms)}"]
    if lock_timeout_ms is not None:
        settings.append(f"lock_timeout={int(lock_timeout_ms)}")
    if read_only:
        settings.insert(0, "default_transaction_read_only=on")
    return " ".join(f"-c {setting}" for setting in settings)


def connect_error(exc: psycopg.Error, endpoint: Endpoint, dbname: str) -> AuroraBGError:
    """Our error for a failed connect; built without any text of `exc` but its FATAL kind."""
    where = f"Cannot connect to {endpoint} database {dbname}"
    refusal = _login_refusal(exc)
    if refusal is not None:
        sqlstate, what = refusal
        return BusinessError(f"{where}: {what} (SQLSTATE {sqlstate}).")
    if not isinstance(exc, psycopg.OperationalError):
        return BusinessError(f"{where}: the connection parameters are not usable.")
    return TransientError(f"{where}: the server is unreachable or not accepting connections.")


def query_error(exc: psycopg.Error, endpoint: Endpoint, dbname: str, doing: str) -> AuroraBGError:
    """Our error for a statement that failed on an open session: retried when the cause can pass."""
    sqlstate = exc.sqlstate or "unknown"
    message = f"{doing} failed on {endpoint} database {dbname} (SQLSTATE {sqlstate})."
    if exc.sqlstate is None or exc.sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES):
        # no SQLSTATE means the connection itself broke under the statement
        return TransientError(message)
    return InvalidState(message)


def fetch_all(
    conn: psycopg.Connection,
    query: QueryNoTemplate,
    params: Params | None = None,
    *,
    endpoint: Endpoint,
    dbname: str,
    doing: str,
) -> list[tuple[Any, ...]]:
    """Run one query and return its rows; psycopg errors become ours (see `query_error`)."""
    try:
        return conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        error = query_error(exc, endpoint, dbname, doing)
    raise error


def fetch_value(
    conn: psycopg.Connection,
    query: QueryNoTemplate,
    params: Params | None = None,
    *,
    endpoint: Endpoint,
    dbname: str,
    doing: str,
) -> Any:
    """The first column of the first row of `query` (None when it returns no row)."""
    rows = fetch_all(conn, query, params, endpoint=endpoint, dbname=dbname, doing=doing)
    return rows[0][0] if rows else None


def _login_refusal(exc: psycopg.Error) -> tuple[str, str] | None:
    """(SQLSTATE, what happened) when the server refused the login itself, else None."""
    if exc.sqlstate is not None:
        if exc.sqlstate.startswith("28") or exc.sqlstate == "3D000":
            return exc.sqlstate, "the server refused the login"
        return None
    fatal = _fatal_line(str(exc))
    for pattern, sqlstate, what in _LOGIN_REFUSALS:
        if pattern.search(fatal):
            return sqlstate, what
    return None


def _fatal_line(message: str) -> str:
    """The server's FATAL line in a libpq message (lowercase), or "" when there is none."""
    for line in message.lower().splitlines():
        if "fatal:" in line or "fe_sendauth" in line:
            return line
    return ""
