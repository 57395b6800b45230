"""What every validation check is made of: a verdict, a report, a session, a table name.

Plain types shared by the check modules (`builtin`, `replication`, `rows`,
`hazards`, `schema`, `guardrails`, `sequences`, `custom`). A check says what it
saw, what it expected, how bad a failure is and why it matters; the report
turns a list of them into one sentence, a markdown narrative that leads with
what blocks, and table rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.abc import Params, QueryNoTemplate

from aurora_bg.errors import BadInput
from tasks.validation.session import Endpoint, connect, fetch_all, fetch_value, query_error

BLOCKER: Final = "blocker"
WARNING: Final = "warning"
DEFAULT_SCHEMA = "public"
SUMMARY_NAMES = 3  # failed checks named in the summary sentence before "and N more"
LISTED_ITEMS = 8  # items named in an observation before "and N more"
# What cures every change AWS answers with "Replication degraded" (DDL or a large
# object changed on blue while the deployment exists): nothing but a new deployment.
NEW_DEPLOYMENT_FIX = (
    "Delete this Blue/Green deployment with its green (aws rds delete-blue-green-deployment "
    "--delete-target), then run the upgrade again: a new deployment starts from blue as it "
    "is then. Applying the same change on green does not cure it: AWS keeps this deployment "
    "Replication degraded."
)


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
                lines += [f"### {title}", "", *(markdown_item(c) for c in failed), ""]
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

    def blocking_message(self) -> str:
        """One line for an error: every blocker with its fix."""
        parts = [f"{c.describe()}; fix: {c.fix or 'see the artifact'}" for c in self.blockers]
        return " ".join(f"{_count(self.blockers, 'blocker')}: {' | '.join(parts)}".split())


@dataclass(frozen=True)
class TableRef:
    """A table of one database; `database` empty when the caller's database is meant."""

    schema: str
    name: str
    database: str = ""

    def __str__(self) -> str:
        where = f"{self.database}." if self.database else ""
        return f"{where}{self.schema}.{self.name}"

    def identifier(self) -> sql.Identifier:
        """The table as it is named inside its own database."""
        return sql.Identifier(self.schema, self.name)


def parse_table_name(text: str, database: str = "") -> TableRef:
    """Parse "database.schema.table", "schema.table" or "table" (in public); the last two
    are in `database`. BadInput when the text is none of these."""
    parts = text.strip().split(".")
    if len(parts) == 1:
        parts = [DEFAULT_SCHEMA, parts[0]]
    if len(parts) == 3:
        database, parts = parts[0], parts[1:]
    if len(parts) != 2 or not all(parts) or (len(text.split(".")) == 3 and not database):
        raise BadInput(
            f"table name {text!r} is not 'database.schema.table', 'schema.table' or 'table'"
        )
    return TableRef(parts[0], parts[1], database)


@dataclass(frozen=True)
class Session:
    """An open connection and where it goes, so that errors can name the place."""

    side: str
    endpoint: Endpoint
    dbname: str
    conn: psycopg.Connection

    def rows(
        self, query: QueryNoTemplate, params: Params | None = None, *, doing: str
    ) -> list[Any]:
        try:
            return fetch_all(
                self.conn, query, params, endpoint=self.endpoint, dbname=self.dbname, doing=doing
            )
        finally:
            self.end_snapshot()

    def value(self, query: QueryNoTemplate, params: Params | None = None, *, doing: str) -> Any:
        rows = self.rows(query, params, doing=doing)
        return rows[0][0] if rows else None

    def end_snapshot(self) -> None:
        """End the transaction: a long validation holds no snapshot, and an aborted
        transaction (a refused statement) does not poison the next query."""
        try:
            self.conn.rollback()
        except psycopg.Error as exc:
            error = query_error(exc, self.endpoint, self.dbname, "ending a transaction")
        else:
            return
        raise error


@contextlib.contextmanager
def open_session(
    side: str,
    endpoint: Endpoint,
    user: str,
    password: str,
    dbname: str,
    *,
    read_only: bool,
    statement_timeout_ms: int = 15000,
    lock_timeout_ms: int = 2000,
) -> Iterator[Session]:
    """A session that is closed, its transaction discarded, whatever happens inside."""
    conn = connect(
        endpoint,
        user,
        password,
        dbname,
        read_only=read_only,
        statement_timeout_ms=statement_timeout_ms,
        lock_timeout_ms=lock_timeout_ms,
    )
    try:
        yield Session(side, endpoint, dbname, conn)
    finally:
        conn.close()  # closing without commit discards the open transaction


def first_value(session: Session, query: QueryNoTemplate, doing: str) -> Any:
    """`fetch_value` without ending the transaction (for a caller that manages it)."""
    return fetch_value(
        session.conn, query, endpoint=session.endpoint, dbname=session.dbname, doing=doing
    )


def listing(items: list[str], limit: int = LISTED_ITEMS) -> str:
    """ "a, b, c and 4 more" """
    named = ", ".join(items[:limit])
    more = len(items) - limit
    return named + (f" and {more} more" if more > 0 else "")


# --- rendering -----------------------------------------------------------------


def markdown_item(check: Check) -> str:
    item = (
        f"- **{check.name}** ({check.side}): observed `{_code(check.observed)}`, "
        f"expected `{_code(check.expected)}`. Why: {check.why}"
    )
    return item + (f" Fix: {check.fix}" if check.fix else "")


def _count(checks: list[Check], noun: str) -> str:
    return f"{len(checks)} {noun}{'' if len(checks) == 1 else 's'}"


def _name_some(checks: list[Check]) -> str:
    named = ", ".join(c.describe() for c in checks[:SUMMARY_NAMES])
    more = len(checks) - SUMMARY_NAMES
    return named + (f" and {more} more" if more > 0 else "")


def _code(text: str) -> str:
    return text.replace("`", "'")
