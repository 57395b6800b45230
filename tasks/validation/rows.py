"""Every table on both sides, in every database, and the same number of rows in each.

Small tables are counted exactly, on both sides; a difference may be no more
than replication lag, so it is recounted about once a second for a grace
period first. Tables whose planner estimate (`pg_class.reltuples`) reaches a
limit are compared by estimate, marked as such. Unlogged tables are left to
`hazards`: logical replication never carries their rows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from psycopg import sql

from aurora_bg.errors import InvalidState, WaitTimedOut
from aurora_bg.polling import poll_until
from tasks.validation.model import (
    BLOCKER,
    NEW_DEPLOYMENT_FIX,
    WARNING,
    Check,
    Session,
    TableRef,
)
from tasks.validation.scope import DatabasePair, Scope

ESTIMATE_TOLERANCE = 0.10
COUNT_RETRY_INTERVAL_S = 1.0


@dataclass(frozen=True)
class TableStats:
    kind: str  # pg_class.relkind
    reltuples: float  # planner estimate; -1 when the table was never analyzed
    unlogged: bool = False


TABLES_QUERY = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples, c.relpersistence = 'u'
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND {schemas}
"""


def check_tables(
    scope: Scope, wanted: list[TableRef] | None, exact_count_limit: int, lag_grace_s: float
) -> list[Check]:
    """Existence of every table on both sides, then their row counts.

    `wanted` names tables with their database; None means every ordinary table of
    the scope's schemas, in every database of the scope, as blue has them.
    """
    blue_tables: dict[TableRef, TableStats] = {}
    green_tables: dict[TableRef, TableStats] = {}
    for pair in scope.pairs:
        look = _where_to_look(scope, pair, wanted)
        if look is not None:
            blue_tables |= list_tables(look, pair.blue)
            green_tables |= list_tables(look, pair.green)
    if wanted is None:
        wanted = sorted(
            (t for t, stats in blue_tables.items() if stats.kind == "r"), key=lambda t: str(t)
        )
    checks = [check_table_exists(t, t in blue_tables, t in green_tables) for t in wanted]
    on_both = [
        t for t in wanted if t in blue_tables and t in green_tables and not blue_tables[t].unlogged
    ]
    large = [t for t in on_both if _estimate(t, blue_tables, green_tables) >= exact_count_limit]
    small = [t for t in on_both if t not in large]
    pairs = {pair.name: pair for pair in scope.pairs}
    checks += compare_exact_counts(pairs, small, lag_grace_s)
    checks += [check_estimate(t, blue_tables[t], green_tables[t]) for t in large]
    return checks


def list_tables(scope: Scope, session: Session) -> dict[TableRef, TableStats]:
    """The tables of `session`'s database in the scope's schemas, with their statistics."""
    rows = scope.rows(session, TABLES_QUERY, doing="listing tables")
    return {
        TableRef(s, n, session.dbname): TableStats(k, float(r), bool(u)) for s, n, k, r, u in rows
    }


def _where_to_look(scope: Scope, pair: DatabasePair, wanted: list[TableRef] | None) -> Scope | None:
    """The scope's schemas, or those of the tables wanted in `pair`'s database (None:
    no table wanted there)."""
    if wanted is None:
        return scope
    schemas = sorted({t.schema for t in wanted if t.database == pair.name})
    return Scope(scope.pairs, tuple(schemas)) if schemas else None


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
        fix="A table listed by mistake: correct the table list. A table created on blue "
        "since the deployment: " + NEW_DEPLOYMENT_FIX,
    )


def compare_exact_counts(
    pairs: dict[str, DatabasePair], tables: list[TableRef], lag_grace_s: float
) -> list[Check]:
    """count(*) on both sides; differences are recounted until they vanish or the grace ends.

    A table the user may not read (or that otherwise refuses the count, say behind an
    application's lock) fails its check with the reason instead of stopping the validation.
    """
    counts: dict[TableRef, tuple[int, int]] = {}
    refused: dict[TableRef, str] = {}

    def recount_differing() -> dict[TableRef, tuple[int, int]]:
        for table in tables:
            if table in refused or (table in counts and _same(counts[table])):
                continue
            try:
                pair = pairs[table.database]
                counts[table] = (count_rows(pair.blue, table), count_rows(pair.green, table))
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
    return int(session.value(query, doing=f"counting the rows of {table}"))


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
        fix="GRANT SELECT on the table to the validating user (or leave it out of the tables); "
        "if a lock held the count up (SQLSTATE 55P03), validate again once it is released.",
    )


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


def _same(counted: tuple[int, int]) -> bool:
    return counted[0] == counted[1]


def _estimate(table: TableRef, *sides: dict[TableRef, TableStats]) -> float:
    # the larger estimate decides, so that no side is counted exactly when it is big
    return max(side[table].reltuples for side in sides)


def _presence(present: bool) -> str:
    return "present" if present else "missing"


def _estimate_text(reltuples: float) -> str:
    return "unknown (never analyzed)" if reltuples < 0 else f"~{reltuples:,.0f}"
