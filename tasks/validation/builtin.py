"""Built-in checks of a single server: its version, whether it is read-only, whether it writes.

Before the switchover green must be read-only twice over: our own validation
session (so validation cannot write) and green's configuration for every
other client (so applications tested against green cannot make it diverge
from blue). After the switchover the original endpoint must take writes.
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql

from aurora_bg.errors import InvalidState
from tasks.validation.model import BLOCKER, WARNING, Check, Session
from tasks.validation.session import query_error

WRITE_PROBE_TABLE = "aurora_bg_write_probe"

# Where a client's default_transaction_read_only comes from, most specific first
# (pg_db_role_setting: database+role, role, database), then the configuration files.
_ROLE_AND_DATABASE_SETTINGS = """
SELECT s.setrole <> 0 AS for_role, s.setdatabase <> 0 AS for_db, cfg
  FROM pg_db_role_setting s, unnest(s.setconfig) AS cfg
 WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
   AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = current_user))
   AND cfg LIKE 'default_transaction_read_only=%'
"""
_FILE_SETTING = """
SELECT setting FROM pg_file_settings
 WHERE name = 'default_transaction_read_only' AND applied
"""


def check_server_version(session: Session, target_major: int) -> Check:
    version_num = int(session.value("SHOW server_version_num", doing="reading the version"))
    version = str(session.value("SHOW server_version", doing="reading the version")).split()[0]
    return Check(
        name="server-version",
        side=session.side,
        passed=version_num // 10000 == target_major,
        observed=version,
        expected=f"major version {target_major}",
        severity=BLOCKER,
        why="The upgrade exists to reach the target major version.",
        fix=f"Create the Blue/Green deployment again with a {target_major}.x engine version.",
    )


def check_read_only(session: Session) -> Check:
    default, current = _read_only_settings(session)
    return Check(
        name="read-only",
        side=session.side,
        passed=default == "on" and current == "on",
        observed=f"default_transaction_read_only={default}, transaction_read_only={current}",
        expected="both on",
        severity=BLOCKER,
        why="Validation must not write to green: a write would make it diverge from blue.",
        fix="Connect to green directly, not through a pooler that drops startup options.",
    )


def check_read_only_for_clients(session: Session) -> Check:
    """Green's own default_transaction_read_only, as a client without our options gets it.

    Read from pg_db_role_setting and pg_file_settings (the session's own value is ours:
    it was set at connect). pg_file_settings is for superusers only: where it cannot be
    read (Aurora's master user is no superuser) the check says so, as a warning.
    """
    base = {
        "name": "green-read-only-for-clients",
        "side": session.side,
        "expected": "default_transaction_read_only=on for the master user",
        "why": "Applications tested against green must not write: a write on green "
        "conflicts with replication and lands in production at the switchover.",
    }
    try:
        value, source = _client_default_read_only(session)
    except InvalidState as error:
        return Check(
            **base,
            passed=False,
            observed=f"cannot tell: {error}",
            severity=WARNING,
            fix="Run SHOW default_transaction_read_only in a plain psql session on green; "
            "AWS keeps green read-only while the deployment exists.",
        )
    return Check(
        **base,
        passed=value == "on",
        observed=f"default_transaction_read_only={value} ({source})",
        severity=BLOCKER,
        fix="Set default_transaction_read_only back to on for green (its parameter group, "
        "or ALTER ROLE/DATABASE ... RESET); AWS sets it while the deployment exists.",
    )


def check_read_write(session: Session) -> Check:
    default, current = _read_only_settings(session)
    return Check(
        name="read-write",
        side=session.side,
        passed=current == "off",
        observed=f"default_transaction_read_only={default}, transaction_read_only={current}",
        expected="transaction_read_only=off",
        severity=BLOCKER,
        why="After the switchover the cluster endpoint must take the applications' writes.",
        fix="Check the switchover status and default_transaction_read_only in the parameter group.",
    )


def check_write_probe(session: Session) -> Check:
    """Create a table in a transaction and roll it back: proof of writes that leaves nothing."""
    sqlstate = _try_rolled_back_write(session)
    refused_by_privilege = sqlstate == "42501"
    return Check(
        name="write-probe",
        side=session.side,
        passed=sqlstate is None,
        observed="write accepted, rolled back" if sqlstate is None else f"SQLSTATE {sqlstate}",
        expected=f"CREATE TABLE {WRITE_PROBE_TABLE} accepted (then rolled back)",
        # PostgreSQL checks read-only before privileges: 42501 means the server does take
        # writes, only this user may not create tables in its default schema
        severity=WARNING if refused_by_privilege else BLOCKER,
        why="A refused write means applications would fail on the upgraded cluster.",
        fix=(
            "Let the master user CREATE in its default schema, or check the write by hand."
            if refused_by_privilege
            else "Find out why the cluster refuses writes (read-only setting, replica, recovery)."
        ),
    )


def _read_only_settings(session: Session) -> tuple[str, str]:
    doing = "reading the read-only settings"
    row = session.rows(
        "SELECT current_setting('default_transaction_read_only'),"
        " current_setting('transaction_read_only')",
        doing=doing,
    )[0]
    return str(row[0]), str(row[1])


def _client_default_read_only(session: Session) -> tuple[str, str]:
    """(value, where it comes from) of default_transaction_read_only for a plain client."""
    doing = "reading green's read-only configuration"
    rows = session.rows(_ROLE_AND_DATABASE_SETTINGS, doing=doing)
    ranked = sorted(rows, key=lambda r: (not (r[0] and r[1]), not r[0], not r[1]))
    if ranked:
        for_role, for_db, cfg = ranked[0]
        scope = {(True, True): "role in database", (True, False): "role", (False, True): "database"}
        return cfg.split("=", 1)[1], f"{scope[(for_role, for_db)]} setting"
    files = session.rows(_FILE_SETTING, doing=doing)
    if files:
        return str(files[-1][0]), "server configuration"
    return "off", "built-in default"


def _try_rolled_back_write(session: Session) -> str | None:
    """The SQLSTATE refusing the probe write, or None when the server accepted it."""
    statement = sql.SQL("CREATE TABLE {} (x integer)").format(sql.Identifier(WRITE_PROBE_TABLE))
    refused: str | None = None
    error: Exception | None = None
    try:
        session.conn.execute(statement)
    except psycopg.Error as exc:
        refused = exc.sqlstate
        if exc.sqlstate is None:  # no SQLSTATE: the connection broke under the statement
            error = query_error(exc, session.endpoint, session.dbname, "the write probe")
    with contextlib.suppress(psycopg.Error):
        session.conn.rollback()  # the probe must leave nothing behind, whatever happened
    if error is not None:
        raise error
    return refused
