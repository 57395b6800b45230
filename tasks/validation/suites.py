"""Green validation: read-only checks of the green cluster against blue, and the
post-switchover check of the original endpoint.

Every function here is plain (no Prefect decorator). The checks live in one
module per concern; this module runs them in order and returns one report:

1. green itself (`builtin`): version, read-only session, read-only for clients;
2. replication (`replication`): subscription health and lag;
3. the schema's fingerprint, blue against green (`schema`): DDL since creation;
4. tables and row counts (`rows`); 5. sequences (`sequences`);
6. what logical replication does not carry (`hazards`);
7. switchover guardrails on blue (`guardrails`);
8. the operator's own checks from a YAML file (`custom`).

Validation never writes: its sessions on green and on blue are read-only from
their first statement, with a statement and a lock timeout. Only
`check_after_switchover` writes, and it rolls back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from aurora_bg.errors import InvalidState
from tasks.validation.builtin import (
    WRITE_PROBE_TABLE,
    check_read_only,
    check_read_only_for_clients,
    check_read_write,
    check_server_version,
    check_write_probe,
)
from tasks.validation.custom import load_checks_file, run_custom_checks
from tasks.validation.guardrails import DEFAULT_LONG_TRANSACTION_S, check_guardrails
from tasks.validation.hazards import check_hazards
from tasks.validation.model import (
    BLOCKER,
    DEFAULT_SCHEMA,
    WARNING,
    Check,
    Session,
    TableRef,
    ValidationReport,
    open_session,
    parse_table_name,
)
from tasks.validation.replication import check_replication
from tasks.validation.rows import check_tables
from tasks.validation.schema import check_schema
from tasks.validation.sequences import check_sequences
from tasks.validation.session import Endpoint

__all__ = [
    "BLOCKER",
    "WARNING",
    "WRITE_PROBE_TABLE",
    "Check",
    "Session",
    "TableRef",
    "ValidationReport",
    "check_after_switchover",
    "open_session",
    "parse_table_name",
    "validate_green",
]

GUARDRAIL_LATER = " Not blocking yet: it blocks at the pre-switchover checks if still there."


def validate_green(
    green: Endpoint,
    blue: Endpoint,
    user: str,
    password: str,
    dbname: str,
    *,
    target_major: int,
    schemas: Sequence[str] = (DEFAULT_SCHEMA,),
    tables: Sequence[str] | None = None,
    exact_count_limit: int = 100_000,
    lag_grace_s: float = 5.0,
    checks_file: str | Path | None = None,
    long_transaction_s: float = DEFAULT_LONG_TRANSACTION_S,
    guardrails_block: bool = True,
    statement_timeout_ms: int = 15000,
) -> ValidationReport:
    """Check, without writing anywhere, that green is ready to take blue's place.

    Opens a read-only session on green and one on blue and runs every check
    listed in the module docstring. Tables: those of `tables` ("schema.table",
    or "table" in public), else every ordinary table of `schemas` on blue; the
    schema fingerprint and the hazards look at `schemas`. Row counts are exact
    below `exact_count_limit` (planner estimate) and retried for `lag_grace_s`,
    which also bounds the wait for green to receive blue's WAL. With
    `guardrails_block` off, the switchover guardrails on blue only warn (green
    validation happens long before the switchover). `checks_file` adds the
    operator's checks.

    Raises BadInput for an unusable table name or checks file (before
    connecting), TransientError when a server cannot be reached or drops the
    session, BusinessError when the login is refused or a catalog query cannot
    run. No message carries the password.
    """
    wanted = [parse_table_name(t) for t in tables] if tables is not None else None
    custom = load_checks_file(checks_file) if checks_file else []

    def read_only_session(side: str, endpoint: Endpoint):  # noqa: ANN202
        return open_session(
            side,
            endpoint,
            user,
            password,
            dbname,
            read_only=True,
            statement_timeout_ms=statement_timeout_ms,
        )

    with read_only_session("green", green) as on_green, read_only_session("blue", blue) as on_blue:
        steps: list[tuple[str, str, Callable[[], list[Check]]]] = [
            ("server-version", "green", lambda: [check_server_version(on_green, target_major)]),
            ("read-only", "green", lambda: [check_read_only(on_green)]),
            (
                "green-read-only-for-clients",
                "green",
                lambda: [check_read_only_for_clients(on_green)],
            ),
            ("replication", "both", lambda: check_replication(on_blue, on_green, lag_grace_s)),
            ("schema-fingerprint", "both", lambda: check_schema(on_blue, on_green, schemas)),
            (
                "tables",
                "both",
                lambda: check_tables(
                    on_blue, on_green, schemas, wanted, exact_count_limit, lag_grace_s
                ),
            ),
            ("sequences", "both", lambda: [check_sequences(on_blue, on_green)]),
            ("replication-hazards", "blue", lambda: check_hazards(on_blue, schemas)),
            (
                "switchover-guardrails",
                "blue",
                lambda: [
                    c if guardrails_block else _not_yet(c)
                    for c in check_guardrails(on_blue, long_transaction_s)
                ],
            ),
            (
                "custom checks",
                "both",
                lambda: run_custom_checks(custom, on_blue, on_green, Path(checks_file or "").name),
            ),
        ]
        checks = [check for name, side, step in steps for check in _run(name, side, step)]
    return ValidationReport(checks)


def check_after_switchover(
    endpoint: Endpoint, user: str, password: str, dbname: str, *, target_major: int
) -> ValidationReport:
    """Check that the original cluster endpoint now reaches the upgraded, writable cluster.

    Blockers: the major version is not `target_major`; the session is read-only;
    the server refuses a write. The write is `CREATE TABLE aurora_bg_write_probe`
    in a transaction that is always rolled back, so nothing is left behind.

    Raises TransientError when the endpoint cannot be reached or drops the
    session, BusinessError when the login is refused. No message carries the password.
    """
    with open_session("green", endpoint, user, password, dbname, read_only=False) as session:
        checks = [
            check_server_version(session, target_major),
            check_read_write(session),
            check_write_probe(session),
        ]
    return ValidationReport(checks)


def _run(name: str, side: str, step: Callable[[], list[Check]]) -> list[Check]:
    """The step's checks; a step whose query the server refused (a lock timeout, a
    missing privilege) fails as one blocker instead of ending the whole validation."""
    try:
        return step()
    except InvalidState as error:
        return [
            Check(
                name=name,
                side=side,
                passed=False,
                observed=f"could not run: {error}",
                expected="the check runs",
                severity=BLOCKER,
                why="A check that cannot run proves nothing; what it looks for may be there.",
                fix="Validate again (locks and timeouts pass); if it persists, let the "
                "validating user read the catalog views the check names.",
            )
        ]


def _not_yet(check: Check) -> Check:
    if check.passed or check.severity != BLOCKER:
        return check
    return dataclasses.replace(check, severity=WARNING, fix=check.fix + GUARDRAIL_LATER)
