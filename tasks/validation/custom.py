"""Operators' own checks: a YAML file of read-only queries with expectations.

```yaml
checks:
  - name: orders have customers          # unique, shown as "custom <name>"
    side: green                          # green | blue | both (run on both, compare)
    sql: SELECT count(*) FROM orders LEFT JOIN customers USING (customer_id)
         WHERE customers.customer_id IS NULL
    expect: {equals: 0}                  # {equals: v} | {at_least: n} | {at_most: n}
                                         # | {at_least: n, at_most: m} | no_rows | matches_blue
    severity: blocker                    # blocker | warning
    why: One line shown in the artifact.
    fix: What to do when it fails.       # optional
```

`equals`, `at_least` and `at_most` look at the first column of the first row;
`no_rows` wants an empty result; `matches_blue` (with `side: both`) wants the
same rows on green as on blue, in the order the query returns them.

Preflight (`problems_with_checks_file`) refuses, before anything changes, a
file that does not parse, unknown keys, and SQL that does not plan on blue or
that would write (EXPLAIN, never run). At validation every check runs in the
read-only sessions, so a write that slips past preflight is refused by the
server and the check fails with that refusal.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import psycopg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aurora_bg.errors import AuroraBGError, BadInput
from tasks.validation.model import BLOCKER, Check, Session, open_session
from tasks.validation.session import Endpoint, query_error, session_lost

MAX_ROWS = 1000  # rows fetched per check and side; matches_blue compares this many
SHOWN_CHARS = 80
WRITING_PLAN_NODES = {"ModifyTable": "writes rows", "LockRows": "locks rows (FOR UPDATE/SHARE)"}
KEYWORD_EXPECTATIONS = ("no_rows", "matches_blue")


class Expectation(BaseModel):
    """Exactly one of: equals; at_least and/or at_most; no_rows; matches_blue."""

    model_config = ConfigDict(extra="forbid")

    equals: str | int | float | bool | None = None
    at_least: int | float | None = None
    at_most: int | float | None = None
    no_rows: bool = False
    matches_blue: bool = False

    @model_validator(mode="before")
    @classmethod
    def _keyword(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in KEYWORD_EXPECTATIONS:
                raise ValueError(
                    f"{value!r} is not an expectation: use no_rows, matches_blue, "
                    "{equals: v}, {at_least: n} or {at_most: n}"
                )
            return {value: True}
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        given = self.model_fields_set
        kinds: list[str] = [k for k in ("equals", "no_rows", "matches_blue") if k in given]
        if given & {"at_least", "at_most"}:
            kinds.append("at_least/at_most")
        if len(kinds) != 1:
            raise ValueError(f"give exactly one expectation, not {len(kinds)} ({', '.join(kinds)})")
        return self

    @property
    def kind(self) -> str:
        given = self.model_fields_set
        for kind in ("equals", "no_rows", "matches_blue"):
            if kind in given:
                return kind
        return "range"

    def describe(self) -> str:
        if self.kind == "equals":
            return f"= {self.equals!r}" if self.equals is not None else "NULL"
        if self.kind == "no_rows":
            return "no rows"
        if self.kind == "matches_blue":
            return "the same rows as blue"
        bounds = []
        if self.at_least is not None:
            bounds.append(f">= {self.at_least}")
        if self.at_most is not None:
            bounds.append(f"<= {self.at_most}")
        return " and ".join(bounds)


class CustomCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    sql: str = Field(min_length=1)
    side: Literal["green", "blue", "both"] = "green"
    expect: Expectation
    severity: Literal["blocker", "warning"] = BLOCKER
    why: str = ""
    fix: str = ""

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or value != value.strip():
            raise ValueError("must be one line without leading or trailing spaces")
        return value

    @model_validator(mode="after")
    def _side_fits_expectation(self) -> CustomCheck:
        if (self.side == "both") != (self.expect.kind == "matches_blue"):
            raise ValueError("side 'both' goes with expect 'matches_blue', and only with it")
        return self


class ChecksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[CustomCheck]

    @model_validator(mode="after")
    def _unique_names(self) -> ChecksFile:
        names = [c.name for c in self.checks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"check names must be unique: {', '.join(twice)}")
        return self


def load_checks_file(path: str | Path) -> list[CustomCheck]:
    """The checks of `path`; BadInput naming the file and the place when it is unusable."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BadInput(f"checks file {path} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise BadInput(f"checks file {path} does not parse{at}: {problem}") from None
    try:
        return ChecksFile.model_validate(raw).checks
    except ValidationError as error:
        raise BadInput(f"checks file {path}: {_one_line(error, raw)}") from None


def run_custom_checks(
    checks: list[CustomCheck], on_blue: Session, on_green: Session, source: str
) -> list[Check]:
    """Run each check in the (read-only) sessions of its side and judge the result."""
    results = []
    for spec in checks:
        if spec.side == "both":
            blue, green = _run(on_blue, spec.sql), _run(on_green, spec.sql)
            results.append(_compare(spec, blue, green, source))
        else:
            session = on_green if spec.side == "green" else on_blue
            results.append(_judge(spec, _run(session, spec.sql), source))
    return results


def problems_with_checks_file(
    path: str | Path, blue: Endpoint, user: str, password: str, dbname: str
) -> list[str]:
    """Everything wrong with the checks file, found without running a check: it parses,
    has known keys only, and each query plans on blue (EXPLAIN, in a read-only session)
    without writing or locking rows. An empty list means the file is usable."""
    try:
        checks = load_checks_file(path)
    except BadInput as error:
        return [str(error)]
    problems = []
    try:
        with open_session("blue", blue, user, password, dbname, read_only=True) as on_blue:
            for spec in checks:
                problem = _plan_problem(on_blue, spec)
                if problem:
                    problems.append(f"check {spec.name!r} {problem}")
    except AuroraBGError as error:
        problems.append(f"cannot try the checks' SQL on blue: {error}")
    return problems


# --- running and judging ------------------------------------------------------------


def _run(session: Session, text: str) -> tuple[list[tuple[Any, ...]], str | None]:
    """(rows, None), or ([], "SQLSTATE ...: message") when the server refused the query."""
    refusal, error = None, None
    rows: list[tuple[Any, ...]] = []
    try:
        # prepared: the extended protocol refuses a second statement hidden after a ";"
        cursor = session.conn.execute(text, prepare=True)
        rows = cursor.fetchmany(MAX_ROWS) if cursor.description else []
    except psycopg.Error as exc:
        if session_lost(exc):  # the session was cut or the server restarted: not the check's
            error = query_error(exc, session.endpoint, session.dbname, "a custom check")
        else:
            refusal = f"SQLSTATE {exc.sqlstate}: {exc.diag.message_primary or 'refused'}"
    if error is not None:  # the session is gone: nothing to end
        raise error
    session.end_snapshot()
    return rows, refusal


def _judge(spec: CustomCheck, outcome: tuple[list, str | None], source: str) -> Check:
    rows, refusal = outcome
    if refusal is not None:
        return _check(spec, False, f"failed: {refusal}", source)
    expect = spec.expect
    if expect.kind == "no_rows":
        first = f"; first: {_show(rows[0])}" if rows else ""
        return _check(spec, not rows, f"{_rows(len(rows))}{first}", source)
    if not rows:
        return _check(spec, False, "no rows", source)
    value = rows[0][0]
    return _check(spec, _meets(value, expect), _show(value), source)


def _compare(
    spec: CustomCheck, blue: tuple[list, str | None], green: tuple[list, str | None], source: str
) -> Check:
    (blue_rows, blue_refusal), (green_rows, green_refusal) = blue, green
    if blue_refusal or green_refusal:
        which = f"blue {blue_refusal}" if blue_refusal else f"green {green_refusal}"
        return _check(spec, False, f"failed on {which}", source)
    if blue_rows == green_rows:
        return _check(spec, True, f"same {_rows(len(green_rows))} as blue", source)
    index = next(
        (i for i, (b, g) in enumerate(zip(blue_rows, green_rows, strict=False)) if b != g),
        min(len(blue_rows), len(green_rows)),
    )
    shown = [
        _show(rows[index]) if index < len(rows) else "none" for rows in (green_rows, blue_rows)
    ]
    observed = (
        f"green {_rows(len(green_rows))}, blue {_rows(len(blue_rows))}; row {index + 1}: "
        f"green {shown[0]} / blue {shown[1]}"
    )
    return _check(spec, False, observed, source)


def _meets(value: Any, expect: Expectation) -> bool:
    if expect.kind == "equals":
        wanted = expect.equals
        if wanted is None or isinstance(wanted, bool):
            return value is wanted or value == wanted
        if isinstance(wanted, int | float):
            number = _number(value)
            return number is not None and number == Decimal(str(wanted))
        return str(value) == wanted
    number = _number(value)
    if number is None:
        return False
    low, high = expect.at_least, expect.at_most
    return (low is None or number >= Decimal(str(low))) and (
        high is None or number <= Decimal(str(high))
    )


def _check(spec: CustomCheck, passed: bool, observed: str, source: str) -> Check:
    return Check(
        name=f"custom {spec.name}",
        side=spec.side,
        passed=passed,
        observed=observed,
        expected=spec.expect.describe(),
        severity=spec.severity,
        why=spec.why or f"A check of the operator's, from {source}.",
        fix=spec.fix,
    )


def _plan_problem(on_blue: Session, spec: CustomCheck) -> str | None:
    """Why `spec.sql` cannot be a check (it does not plan, or it writes), or None."""
    try:
        explain = "EXPLAIN (FORMAT JSON) " + spec.sql
        cursor = on_blue.conn.execute(explain, prepare=True)
        plan = cursor.fetchall()[0][0]  # EXPLAIN returns its plan as one row
    except psycopg.Error as exc:
        on_blue.end_snapshot()
        if session_lost(exc):
            raise query_error(exc, on_blue.endpoint, on_blue.dbname, "EXPLAIN") from None
        return f"does not plan on blue: SQLSTATE {exc.sqlstate}: {exc.diag.message_primary}"
    on_blue.end_snapshot()
    nodes = _node_types(plan if not isinstance(plan, str) else json.loads(plan))
    for node, what in WRITING_PLAN_NODES.items():
        if node in nodes:
            return f"{what}: a check may only read"
    return None


def _node_types(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Node Type" in plan:
            found.add(plan["Node Type"])
        for value in plan.values():
            found |= _node_types(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _node_types(item)
    return found


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _show(value: Any) -> str:
    text = repr(tuple(value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _rows(count: int) -> str:
    more = "+" if count >= MAX_ROWS else ""
    return f"{count}{more} row{'' if count == 1 else 's'}"


def _one_line(error: ValidationError, raw: Any) -> str:
    parts = []
    for item in error.errors():
        loc = item["loc"]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if len(loc) >= 2 and loc[0] == "checks" and isinstance(loc[1], int):
            name = _raw_name(raw, loc[1])
            if name:
                where = where.replace(f"checks[{loc[1]}]", f"checks[{loc[1]}] ({name!r})", 1)
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where or 'the file'}: {message}")
    return "; ".join(parts)


def _raw_name(raw: Any, index: int) -> str | None:
    try:
        name = raw["checks"][index]["name"]
    except (TypeError, KeyError, IndexError):
        return None
    return name if isinstance(name, str) else None
