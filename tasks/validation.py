"""Green validation: read-only checks of the green cluster against blue, and the
post-switchover check of the original endpoint.

Every function here is plain (no Prefect decorator). Each check says what it
saw, what it expected, how bad a failure is and why it matters; the report
turns them into one sentence, a markdown narrative and table rows.
Validation of green never writes: both of its sessions are read-only from
their first statement. Only `check_after_switchover` writes, and it rolls back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from aurora_bg.errors import BadInput, InvalidState, WaitTimedOut
from aurora_bg.polling import poll_until
from tasks.pg_session import Endpoint, connect, fetch_all, fetch_value, query_error

BLOCKER = "blocker"
WARNING = "warning"
DEFAULT_SCHEMA = "public"
WRITE_PROBE_TABLE = "aurora_bg_write_probe"
ESTIMATE_TOLERANCE = 0.10
COUNT_RETRY_INTERVAL_S = 1.0
SUMMARY_NAMES = 3  # failed checks named in the summary sentence before "and N more"


@dataclass(frozen=True)
class Check:
    """One verdict. `name` is short and stable ("row-count public.orders")."""

    name: str
    side: str  # "green", "blue" or "both"
    passed: bool
    observed: str
    expected: str
    severity: str  # BLOCKER or WARNING
    why: str  # one line: why this check matters
    fix: str = ""  # what an operator does when it fails

    @property
    def result(self) -> str:
        return "pass" if self.passed else "FAIL"

    def describe(self) -> str:
        return f"{self.name} ({self.observed}; expected {self.expected})"


@dataclass
class ValidationReport:
    """The checks of one validation, in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    @property
    def blockers(self) -> list[Check]:
        """Failed checks that must stop the upgrade."""
        return [c for c in self.checks if not c.passed and c.severity == BLOCKER]

    @property
    def warnings(self) -> list[Check]:
        """Failed checks a person should look at; they do not stop the upgrade."""
        return [c for c in self.checks if not c.passed and c.severity == WARNING]

    @property
    def passed(self) -> bool:
        return not self.blockers

    def summary(self) -> str:
        """One sentence that leads with what blocks, then what warns."""
        blockers, warnings = self.blockers, self.warnings
        if blockers:
            sentence = f"{_count(blockers, 'blocker')}: {_name_some(blockers)}"
            if warnings:
                sentence += f"; also {_count(warnings, 'warning')}"
            return sentence + "."
        if warnings:
            return f"No blockers; {_count(warnings, 'warning')}: {_name_some(warnings)}."
        return f"All {len(self.checks)} checks passed."

    def markdown(self) -> str:
        """The summary, then every failed check (blockers first) with its why and fix."""
        lines = [f"**{self.summary()}**", ""]
        for title, failed in (("Blockers", self.blockers), ("Warnings", self.warnings)):
            if failed:
                lines += [f"### {title}", "", *(_markdown_item(c) for c in failed), ""]
        passed = [c.name for c in self.checks if c.passed]
        if passed:
            lines += [f"### Passed ({len(passed)})", "", ", ".join(f"`{n}`" for n in passed), ""]
        return "\n".join(lines).rstrip() + "\n"

    def table(self) -> list[dict[str, str]]:
        """Rows for a table artifact, one per check."""
        return [
            {
                "name": c.name,
                "side": c.side,
                "result": c.result,
                "observed": c.observed,
                "expected": c.expected,
                "severity": c.severity,
                "why": c.why,
            }
            for c in self.checks
        ]


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass(frozen=True)
class Session:
    """An open connection and where it goes, so that errors can name the place."""

    side: str
    endpoint: Endpoint
    dbname: str
    conn: psycopg.Connection

    def rows(self, query: str | sql.Composable, params: Any = None, *, doing: str) -> list[Any]:
        return fetch_all(
            self.conn, query, params, endpoint=self.endpoint, dbname=self.dbname, doing=doing
        )

    def value(self, query: str | sql.Composable, params: Any = None, *, doing: str) -> Any:
        return fetch_value(
            self.conn, query, params, endpoint=self.endpoint, dbname=self.dbname, doing=doing
        )


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
) -> ValidationReport:
    """Check, without writing anywhere, that green is ready to take blue's place.

    Opens a read-only session on green and one on blue. Blockers: green's major
    version differs from `target_major`; green's session is not read-only; a
    table (from `tables`, "schema.table" or "table" in public, or else every
    ordinary table of `schemas` on blue) is missing on either side; a table's
    exact row count differs between blue and green for longer than
    `lag_grace_s` (replication is asynchronous, so a difference is recounted
    about once a second first). Tables whose planner estimate (reltuples) reaches
    `exact_count_limit` are compared by estimate within 10 %, as a warning; a
    table never analyzed (no estimate) is counted exactly. A table the user may
    not read fails its row-count check rather than the whole validation.

    Raises TransientError when a server cannot be reached or drops the session,
    BusinessError when the login is refused or a catalog query cannot run,
    BadInput for an unusable table name. No message carries the password.
    """
    wanted = [parse_table_name(t) for t in tables] if tables is not None else None
    with (
        open_session("green", green, user, password, dbname, read_only=True) as on_green,
        open_session("blue", blue, user, password, dbname, read_only=True) as on_blue,
    ):
        checks = [check_server_version(on_green, target_major), check_read_only(on_green)]
        checks += check_tables(on_blue, on_green, schemas, wanted, exact_count_limit, lag_grace_s)
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


@contextlib.contextmanager
def open_session(
    side: str, endpoint: Endpoint, user: str, password: str, dbname: str, *, read_only: bool
) -> Iterator[Session]:
    """A session that is closed, its transaction discarded, whatever happens inside."""
    conn = connect(endpoint, user, password, dbname, read_only=read_only)
    try:
        yield Session(side, endpoint, dbname, conn)
    finally:
        conn.close()  # closing without commit discards the open transaction


def parse_table_name(text: str) -> TableRef:
    """Parse "schema.table", or "table" in public; BadInput when the text is neither."""
    parts = text.strip().split(".")
    if len(parts) == 1:
        parts = [DEFAULT_SCHEMA, parts[0]]
    if len(parts) != 2 or not all(parts):
        raise BadInput(f"table name {text!r} is not 'schema.table' or 'table'")
    return TableRef(parts[0], parts[1])


# --- version and session mode --------------------------------------------------


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
    default = session.value("SHOW default_transaction_read_only", doing=doing)
    current = session.value("SHOW transaction_read_only", doing=doing)
    return str(default), str(current)


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


# --- tables and row counts -------------------------------------------------------


@dataclass(frozen=True)
class TableStats:
    kind: str  # pg_class.relkind
    reltuples: float  # planner estimate; -1 when the table was never analyzed


TABLES_QUERY = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)
"""


def check_tables(
    on_blue: Session,
    on_green: Session,
    schemas: Sequence[str],
    wanted: list[TableRef] | None,
    exact_count_limit: int,
    lag_grace_s: float,
) -> list[Check]:
    """Existence of every table on both sides, then their row counts."""
    look_in = sorted({t.schema for t in wanted}) if wanted is not None else list(schemas)
    blue_tables = list_tables(on_blue, look_in)
    green_tables = list_tables(on_green, look_in)
    if wanted is None:  # every ordinary table of the schemas, as blue has them
        wanted = sorted(
            (t for t, stats in blue_tables.items() if stats.kind == "r"), key=lambda t: str(t)
        )
    checks = [check_table_exists(t, t in blue_tables, t in green_tables) for t in wanted]
    on_both = [t for t in wanted if t in blue_tables and t in green_tables]
    large = [t for t in on_both if _estimate(t, blue_tables, green_tables) >= exact_count_limit]
    small = [t for t in on_both if t not in large]
    checks += compare_exact_counts(on_blue, on_green, small, lag_grace_s)
    checks += [check_estimate(t, blue_tables[t], green_tables[t]) for t in large]
    return checks


def list_tables(session: Session, schemas: Sequence[str]) -> dict[TableRef, TableStats]:
    rows = session.rows(TABLES_QUERY, [list(schemas)], doing="listing tables")
    return {TableRef(s, n): TableStats(k, float(r)) for s, n, k, r in rows}


def check_table_exists(table: TableRef, on_blue: bool, on_green: bool) -> Check:
    missing_on = [side for side, present in (("blue", on_blue), ("green", on_green)) if not present]
    return Check(
        name=f"table-exists {table}",
        side="both" if len(missing_on) == 2 else (missing_on or ["green"])[0],
        passed=not missing_on,
        observed=f"blue: {_presence(on_blue)}, green: {_presence(on_green)}",
        expected="present on both",
        severity=BLOCKER,
        why="DDL is not replicated: a table missing on green loses its rows at the switchover.",
        fix=(
            "Create the deployment again after the schema change (DDL on blue after creation "
            "never reaches green), or correct the table list."
        ),
    )


def compare_exact_counts(
    on_blue: Session, on_green: Session, tables: list[TableRef], lag_grace_s: float
) -> list[Check]:
    """count(*) on both sides; differences are recounted until they vanish or the grace ends.

    A table the user may not read (or that otherwise refuses the count) fails its check
    with the reason instead of stopping the whole validation.
    """
    counts: dict[TableRef, tuple[int, int]] = {}
    refused: dict[TableRef, str] = {}

    def recount_differing() -> dict[TableRef, tuple[int, int]]:
        for table in tables:
            if table in refused or (table in counts and _same(counts[table])):
                continue
            try:
                counts[table] = (count_rows(on_blue, table), count_rows(on_green, table))
            except InvalidState as exc:  # e.g. permission denied: recounting cannot help
                refused[table] = str(exc)
        return counts

    # a difference may only be replication lag: give green a few seconds to catch up
    with contextlib.suppress(WaitTimedOut):
        poll_until(
            recount_differing,
            lambda seen: all(_same(pair) for pair in seen.values()),
            timeout=lag_grace_s,
            what="row counts of green to match blue",
            first_interval=COUNT_RETRY_INTERVAL_S,
            max_interval=COUNT_RETRY_INTERVAL_S,
            backoff=1.0,
        )
    return [
        check_uncountable(t, refused[t]) if t in refused else check_row_count(t, *counts[t])
        for t in tables
    ]


def count_rows(session: Session, table: TableRef) -> int:
    """Exact row count; raises InvalidState when the server refuses it (say, 42501)."""
    query = sql.SQL("SELECT count(*) FROM {}").format(table.identifier())
    try:
        return int(session.value(query, doing=f"counting the rows of {table}"))
    finally:
        _end_snapshot(session)  # also clears a transaction aborted by a refused count


def check_row_count(table: TableRef, on_blue: int, on_green: int) -> Check:
    return Check(
        name=f"row-count {table}",
        side="both",
        passed=on_blue == on_green,
        observed=f"{on_green} rows on green",
        expected=f"{on_blue} rows, as on blue",
        severity=BLOCKER,
        why="Equal row counts show replication carried every row to green.",
        fix="Look at replication lag and the green subscription; validate again once caught up.",
    )


def check_uncountable(table: TableRef, reason: str) -> Check:
    return Check(
        name=f"row-count {table}",
        side="both",
        passed=False,
        observed=f"not counted: {reason}",
        expected="equal row counts on blue and green",
        severity=BLOCKER,
        why="A table nobody could count may be missing rows on green.",
        fix="GRANT SELECT on the table to the validating user, or leave it out of the tables.",
    )


def _same(counted: tuple[int, int]) -> bool:
    return counted[0] == counted[1]


def check_estimate(table: TableRef, on_blue: TableStats, on_green: TableStats) -> Check:
    close = on_green.reltuples >= 0 and abs(on_green.reltuples - on_blue.reltuples) <= (
        ESTIMATE_TOLERANCE * on_blue.reltuples
    )
    return Check(
        name=f"row-count {table} (estimate)",
        side="both",
        passed=close,
        observed=f"{_estimate_text(on_green.reltuples)} rows on green",
        expected=f"{_estimate_text(on_blue.reltuples)} rows as on blue, within 10 %",
        severity=WARNING,
        why="Counting a large table exactly is slow; planner estimates only catch gross gaps.",
        fix="ANALYZE the table on both sides, or count it by hand during the pause.",
    )


def _estimate(table: TableRef, *sides: dict[TableRef, TableStats]) -> float:
    # the larger estimate decides, so that no side is counted exactly when it is big
    return max(side[table].reltuples for side in sides)


def _end_snapshot(session: Session) -> None:
    """End the read-only transaction so that a long validation holds no snapshot on green."""
    try:
        session.conn.rollback()
    except psycopg.Error as exc:
        error = query_error(exc, session.endpoint, session.dbname, "ending a transaction")
    else:
        return
    raise error


# --- rendering -----------------------------------------------------------------


def _count(checks: list[Check], noun: str) -> str:
    return f"{len(checks)} {noun}{'' if len(checks) == 1 else 's'}"


def _name_some(checks: list[Check]) -> str:
    named = ", ".join(c.describe() for c in checks[:SUMMARY_NAMES])
    more = len(checks) - SUMMARY_NAMES
    return named + (f" and {more} more" if more > 0 else "")


def _markdown_item(check: Check) -> str:
    item = (
        f"- **{check.name}** ({check.side}): observed `{_code(check.observed)}`, "
        f"expected `{_code(check.expected)}`. Why: {check.why}"
    )
    return item + (f" Fix: {check.fix}" if check.fix else "")


def _code(text: str) -> str:
    return text.replace("`", "'")


def _presence(present: bool) -> str:
    return "present" if present else "missing"


def _estimate_text(reltuples: float) -> str:
    return "unknown (never analyzed)" if reltuples < 0 else f"~{reltuples:,.0f}"
