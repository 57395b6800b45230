"""Green validation: read-only checks of the green cluster against blue, in every
database, and the post-switchover check of the original endpoint.

Every function here is plain (no Prefect decorator). The checks live in one
module per concern; this module runs them in order and returns one report:

1. green itself (`builtin`): version, read-only session, read-only for clients;
2. the databases (`databases`): the same on both sides;
3. replication (`replication`): a healthy subscription per database, and lag;
4. the schema's fingerprint, blue against green (`schema`): DDL since creation;
5. tables and row counts (`rows`); 6. sequences (`sequences`);
7. what logical replication does not carry (`hazards`), and grants (`grants`);
8. switchover guardrails on blue (`guardrails`);
9. the operator's own checks from a YAML file (`custom`), in `dbname`.

Validation never writes: it holds one session per database on green and one on
blue, read-only from their first statement, with a statement and a lock
timeout, each reused by every check. Only `check_after_switchover` writes, and
it rolls back.
"""

from __future__ import annotations

import contextlib
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
from tasks.validation.databases import database_sessions
from tasks.validation.grants import check_grants
from tasks.validation.guardrails import DEFAULT_LONG_TRANSACTION_S, check_guardrails
from tasks.validation.hazards import check_hazards
from tasks.validation.model import (
    BLOCKER,
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
from tasks.validation.scope import (
    DatabasePair,
    DatabasesFound,
    Scope,
    check_databases,
    find_databases,
    schemas_of,
)
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
    databases: Sequence[str] = (),
    schemas: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    exact_count_limit: int = 100_000,
    lag_grace_s: float = 5.0,
    checks_file: str | Path | None = None,
    long_transaction_s: float = DEFAULT_LONG_TRANSACTION_S,
    guardrails_block: bool = True,
    statement_timeout_ms: int = 15000,
) -> ValidationReport:
    """Check, without writing anywhere, that green is ready to take blue's place.

    Compares `databases` (empty: every database of blue, as
    `tasks.validation.databases` defines them) and, in each, `schemas` (None or
    empty: every schema but PostgreSQL's own), running every check listed in the
    module docstring. `dbname` is where the sessions start, and the database of
    the server-wide checks and of the operator's `checks_file`. Tables: those of
    `tables` ("database.schema.table", or "schema.table" / "table" in `dbname`),
    else every ordinary table. Row counts are exact below `exact_count_limit`
    (planner estimate) and retried for `lag_grace_s`, which also bounds the wait
    for green to receive blue's WAL. With `guardrails_block` off, the switchover
    guardrails on blue only warn (green validation happens long before the
    switchover).

    Raises BadInput for an unusable table name or checks file (before
    connecting), TransientError when a server cannot be reached or drops the
    session, BusinessError when the login is refused or a catalog query cannot
    run. No message carries the password.
    """
    wanted = [parse_table_name(t, dbname) for t in tables] if tables is not None else None
    custom = load_checks_file(checks_file) if checks_file else []

    def sessions(side: str, endpoint: Endpoint, names: list[str]):  # noqa: ANN202
        return database_sessions(
            side, endpoint, user, password, names, statement_timeout_ms=statement_timeout_ms
        )

    with contextlib.ExitStack() as stack:
        on_blue = stack.enter_context(sessions("blue", blue, [dbname]))
        on_green = stack.enter_context(sessions("green", green, [dbname]))
        found = find_databases(on_blue[dbname], on_green[dbname], databases)
        others = [name for name in found.compared if name != dbname]
        on_blue |= stack.enter_context(sessions("blue", blue, others))
        on_green |= stack.enter_context(sessions("green", green, others))
        scope = Scope(
            tuple(DatabasePair(n, on_blue[n], on_green[n]) for n in found.compared),
            schemas_of(schemas),
        )
        checks = _run_all(
            scope,
            on_blue[dbname],
            on_green[dbname],
            found,
            _Options(
                target_major,
                wanted,
                exact_count_limit,
                lag_grace_s,
                long_transaction_s,
                guardrails_block,
            ),
            lambda: run_custom_checks(
                custom, on_blue[dbname], on_green[dbname], Path(checks_file or "").name
            ),
        )
    return ValidationReport(checks)


@dataclasses.dataclass(frozen=True)
class _Options:
    """The settings of `validate_green` that its steps read."""

    target_major: int
    wanted: list[TableRef] | None
    exact_count_limit: int
    lag_grace_s: float
    long_transaction_s: float
    guardrails_block: bool


def _run_all(
    scope: Scope,
    blue_first: Session,
    green_first: Session,
    found: DatabasesFound,
    options: _Options,
    custom: Callable[[], list[Check]],
) -> list[Check]:
    """Every step in order; a step whose query the server refused fails on its own."""
    steps: list[tuple[str, str, Callable[[], list[Check]]]] = [
        (
            "server-version",
            "green",
            lambda: [check_server_version(green_first, options.target_major)],
        ),
        ("read-only", "green", lambda: [check_read_only(green_first)]),
        (
            "green-read-only-for-clients",
            "green",
            lambda: [check_read_only_for_clients(green_first)],
        ),
        ("databases", "both", lambda: [check_databases(found)]),
    ]
    if scope.pairs:
        steps += _scope_steps(scope, options)
    steps.append(("custom checks", "both", custom))
    return [check for name, side, step in steps for check in _run(name, side, step)]


def _scope_steps(
    scope: Scope, options: _Options
) -> list[tuple[str, str, Callable[[], list[Check]]]]:
    def guardrails() -> list[Check]:
        found = check_guardrails(scope, options.long_transaction_s)
        return [c if options.guardrails_block else _not_yet(c) for c in found]

    return [
        ("replication", "both", lambda: check_replication(scope, options.lag_grace_s)),
        ("schema-fingerprint", "both", lambda: check_schema(scope)),
        (
            "tables",
            "both",
            lambda: check_tables(
                scope, options.wanted, options.exact_count_limit, options.lag_grace_s
            ),
        ),
        ("sequences", "both", lambda: [check_sequences(scope)]),
        ("replication-hazards", "blue", lambda: check_hazards(scope)),
        ("grants", "both", lambda: [check_grants(scope)]),
        ("switchover-guardrails", "blue", guardrails),
    ]


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
