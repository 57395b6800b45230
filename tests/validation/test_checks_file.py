"""Operators' checks from a YAML file on real PostgreSQL: how each check is judged, and that
a check can never write. What the file itself may say is tests/unit/test_checks_file_format.py."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.postgres import MASTER_ROLE
from tasks.validation.custom import problems_with_checks_file
from tasks.validation.suites import BLOCKER, WARNING
from tests.support.checks_lab import DBNAME, Pair, admin_execute, check_named, replicated_pair

EXAMPLE = Path(__file__).resolve().parents[2] / "deployments" / "checks.example.yaml"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replicated_pair(tmp_path_factory.mktemp("checks-file-lab")) as servers:
        yield servers


def checks_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def one_check(tmp_path: Path, sql: str, expect: str, side: str = "green", **extra: str) -> Path:
    lines = [f"    {key}: {value}" for key, value in extra.items()]
    return checks_file(
        tmp_path,
        "checks:\n"
        "  - name: probe\n"
        f"    side: {side}\n"
        f"    sql: {sql}\n"
        f"    expect: {expect}\n" + "\n".join(lines) + "\n",
    )


def problems(pair: Pair, path: Path) -> list[str]:
    return problems_with_checks_file(path, pair.blue_endpoint, MASTER_ROLE, pair.password, DBNAME)


# --- preflight: EXPLAIN on blue, never run ------------------------------------------------


def test_example_file_has_no_problem_against_the_demo_schema(pair: Pair) -> None:
    assert problems(pair, EXAMPLE) == []


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (
            "INSERT INTO audit_log (actor, action) VALUES ('x', 'y')",
            "check 'probe' writes rows: a check may only read",
        ),
        (
            "WITH gone AS (DELETE FROM orders WHERE false RETURNING 1) SELECT count(*) FROM gone",
            "check 'probe' writes rows",
        ),
        ("SELECT * FROM orders FOR UPDATE", "check 'probe' locks rows (FOR UPDATE/SHARE)"),
        ("SELECT no_such_column FROM orders", "does not plan on blue: SQLSTATE 42703"),
        ("SELECT 1; SELECT 2", "does not plan on blue: SQLSTATE 42601"),
        ("VACUUM orders", "does not plan on blue: SQLSTATE 42601"),
    ],
)
def test_preflight_refuses_sql_that_writes_or_does_not_plan(
    pair: Pair, tmp_path: Path, sql: str, problem: str
) -> None:
    found = problems(pair, one_check(tmp_path, f'"{sql}"', "no_rows"))

    assert len(found) == 1 and problem in found[0], found


def test_preflight_never_runs_the_query(pair: Pair, tmp_path: Path) -> None:
    # a query that takes a minute to run plans in no time
    found = problems(pair, one_check(tmp_path, "SELECT pg_sleep(60)", "no_rows"))

    assert found == []


def test_preflight_reports_a_file_that_does_not_parse(pair: Pair, tmp_path: Path) -> None:
    found = problems(pair, checks_file(tmp_path, "checks:\n  - name: [unclosed\n"))

    assert len(found) == 1 and "does not parse" in found[0]


# --- validation ------------------------------------------------------------------------


def test_example_file_passes_on_a_freshly_replicated_green(pair: Pair) -> None:
    report = pair.validate(checks_file=EXAMPLE)

    custom = [c for c in report.checks if c.name.startswith("custom ")]
    assert len(custom) == 5
    assert all(c.passed for c in custom), [c.describe() for c in custom if not c.passed]
    matched = check_named(report, "custom the catalogue is the same on both sides")
    assert matched.observed == "same 20 rows as blue" and matched.side == "both"
    assert report.passed


def test_failing_custom_check_is_a_blocker_with_its_why_and_fix(pair: Pair, tmp_path: Path) -> None:
    path = one_check(
        tmp_path,
        "SELECT count(*) FROM products",
        "{equals: 21}",
        why="The catalogue has 21 products.",
        fix="Load the missing product.",
    )

    report = pair.validate(checks_file=path)

    probe = check_named(report, "custom probe")
    assert report.blockers == [probe]
    assert (probe.observed, probe.expected) == ("20", "= 21")
    assert probe.why == "The catalogue has 21 products." and probe.fix
    assert report.summary().startswith("1 blocker: custom probe (20; expected = 21)")


def test_failing_warning_check_does_not_block(pair: Pair, tmp_path: Path) -> None:
    path = one_check(tmp_path, "SELECT 5", "{at_most: 4}", severity="warning")

    report = pair.validate(checks_file=path)

    assert check_named(report, "custom probe") in report.warnings
    assert report.passed


def test_matches_blue_names_the_first_row_that_differs(pair: Pair, tmp_path: Path) -> None:
    path = one_check(tmp_path, "SELECT 'port', inet_server_port()", "matches_blue", side="both")

    probe = check_named(pair.validate(checks_file=path), "custom probe")

    assert not probe.passed
    green, blue = pair.green_endpoint.port, pair.blue_endpoint.port
    assert probe.observed == (
        f"green 1 row, blue 1 row; row 1: green ('port', {green}) / blue ('port', {blue})"
    )


@pytest.mark.parametrize("side", ["green", "blue"])
def test_insert_through_a_check_is_refused_and_writes_nothing(
    pair: Pair, tmp_path: Path, side: str
) -> None:
    server = pair.green if side == "green" else pair.blue
    before = admin_execute(server, "SELECT count(*) FROM audit_log")
    insert = "INSERT INTO audit_log (actor, action) VALUES ('check', 'sneaky write') RETURNING 1"
    path = one_check(tmp_path, f'"{insert}"', "no_rows", side=side)

    report = pair.validate(checks_file=path)

    probe = check_named(report, "custom probe")
    assert probe in report.blockers
    assert probe.observed == (
        "failed: SQLSTATE 25006: cannot execute INSERT in a read-only transaction"
    )
    assert admin_execute(server, "SELECT count(*) FROM audit_log") == before


def test_second_statement_after_a_semicolon_is_never_run(pair: Pair, tmp_path: Path) -> None:
    path = one_check(tmp_path, '"SELECT 1; SELECT pg_sleep(60)"', "{equals: 1}")

    probe = check_named(pair.validate(checks_file=path), "custom probe")

    assert probe.observed.startswith("failed: SQLSTATE 42601: cannot insert multiple commands")


def test_write_hidden_in_a_function_call_is_refused_too(pair: Pair, tmp_path: Path) -> None:
    # EXPLAIN cannot see it; the read-only session refuses it
    path = one_check(tmp_path, "SELECT nextval('orders_order_id_seq')", "{at_least: 1}")

    probe = check_named(pair.validate(checks_file=path), "custom probe")

    assert probe.observed.startswith("failed: SQLSTATE 25006")


def test_check_that_fails_at_run_time_keeps_its_severity(pair: Pair, tmp_path: Path) -> None:
    path = one_check(tmp_path, "SELECT 1 / 0", "{equals: 1}", severity="warning")

    report = pair.validate(checks_file=path)

    probe = check_named(report, "custom probe")
    assert probe in report.warnings and probe.severity == WARNING
    assert probe.observed == "failed: SQLSTATE 22012: division by zero"


def test_validation_sessions_are_read_only_with_statement_and_lock_timeouts(
    pair: Pair, tmp_path: Path
) -> None:
    settings = {
        "default_transaction_read_only": "on",
        "transaction_read_only": "on",
        "statement_timeout": "15s",
        "lock_timeout": "2s",
    }
    path = checks_file(
        tmp_path,
        "checks:\n"
        + "".join(
            f"  - name: {side} {name}\n"
            f"    side: {side}\n"
            f"    sql: SELECT current_setting('{name}')\n"
            f"    expect: {{equals: '{value}'}}\n"
            for side in ("green", "blue")
            for name, value in settings.items()
        ),
    )

    report = pair.validate(checks_file=path)

    custom = [c for c in report.checks if c.name.startswith("custom ")]
    assert len(custom) == 8
    assert all(c.passed for c in custom), [c.describe() for c in custom if not c.passed]
    assert all(c.severity == BLOCKER for c in custom)
