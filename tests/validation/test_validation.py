"""Green validation against real PostgreSQL: blue (15 when installed, else 16) replicating
into green (16) by logical replication, as the lab runs an RDS Blue/Green deployment."""

from __future__ import annotations

import contextlib
import secrets
import threading
import traceback
from collections.abc import Iterator

import psycopg
import pytest

from aurora_bg.errors import BusinessError, TransientError
from lab import replication
from lab.postgres import MASTER_ROLE, connect_admin, free_port
from lab.scram import set_role_password
from tasks.validation.session import Endpoint, connect
from tasks.validation.suites import (
    BLOCKER,
    WARNING,
    WRITE_PROBE_TABLE,
    check_after_switchover,
    validate_green,
)
from tests.support.checks_lab import (
    DBNAME,
    TARGET_MAJOR,
    Pair,
    admin_execute,
    check_named,
    insert_audit_rows,
    replicated_pair,
    set_subscription_enabled,
    subscription_disabled,
    wait_until_green_caught_up,
)

DEMO_TABLES = [
    "app.public.audit_log",
    "app.public.customers",
    "app.public.orders",
    "app.public.products",
]
TABLE_KEYS = {"name", "side", "result", "observed", "expected", "severity", "why"}
# The demo schema passes as it is: audit_log, its one keyless table, has REPLICA
# IDENTITY FULL, and green starts with blue's sequence values, as an Aurora clone.
BUILT_IN_CHECKS = [
    "server-version",
    "read-only",
    "green-read-only-for-clients",
    "databases",
    "replication-health",
    "replication-lag",
    "schema-fingerprint schemas",
    "schema-fingerprint tables",
    "schema-fingerprint columns",
    "schema-fingerprint constraints",
    "schema-fingerprint indexes",
    "schema-fingerprint views",
    "schema-fingerprint materialized-views",
    "schema-fingerprint functions",
    "schema-fingerprint types",
    "schema-fingerprint triggers",
    "schema-fingerprint extensions",
    "sequences",
    "replica-identity",
    "unlogged-tables",
    "large-objects",
    "grants",
    "long-transactions",
    "ddl-locks",
    "self-managed-replication",
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replicated_pair(tmp_path_factory.mktemp("validation-lab")) as servers:
        yield servers


@pytest.fixture(scope="module")
def switched_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A separate pair after the switchover: green writable, blue left read-only."""
    with replicated_pair(tmp_path_factory.mktemp("switchover-lab")) as servers:
        replication.finish_switchover(servers.blue, servers.green)
        yield servers


def assert_secret_absent(exc: BaseException, secret: str) -> None:
    assert secret not in str(exc)
    assert secret not in repr(exc)
    assert secret not in "".join(traceback.format_exception(exc))
    assert exc.__cause__ is None and exc.__context__ is None


# --- validate_green ---------------------------------------------------------------


def test_freshly_replicated_green_passes_every_check(pair: Pair) -> None:
    report = pair.validate()

    assert report.passed, report.markdown()
    assert report.warnings == []
    assert all(c.passed for c in report.checks)
    names = [c.name for c in report.checks]
    assert names[:3] == ["server-version", "read-only", "green-read-only-for-clients"]
    for built_in in BUILT_IN_CHECKS:
        assert built_in in names
    for table in DEMO_TABLES:
        assert f"table-exists {table}" in names
        assert f"row-count {table}" in names
    assert report.summary() == f"All {len(report.checks)} checks passed."
    # every database of the cluster, the maintenance database included
    assert check_named(report, "databases").observed == "app, postgres: on both"


def test_every_check_explains_why_it_matters_in_one_line(pair: Pair) -> None:
    report = pair.validate(target_major=17)

    for check in report.checks:
        assert check.why and "\n" not in check.why, check.name
        assert check.severity in (BLOCKER, WARNING)
        assert check.passed or check.fix, check.name


def test_row_counts_are_exact_and_equal_on_both_sides(pair: Pair) -> None:
    orders = check_named(pair.validate(), "row-count app.public.orders")

    assert orders.passed
    assert orders.observed == "200 rows on green"
    assert orders.expected == "200 rows, as on blue"


def test_wrong_target_major_is_a_blocker_that_leads_the_summary(pair: Pair) -> None:
    report = pair.validate(target_major=17)

    assert not report.passed
    assert [c.name for c in report.blockers] == ["server-version"]
    version = report.blockers[0]
    assert version.observed.startswith("16.") and version.expected == "major version 17"
    assert report.summary().startswith("1 blocker: server-version")


def test_table_created_on_blue_after_replication_started_is_a_blocker(pair: Pair) -> None:
    # DDL is not replicated: the new table exists on blue only
    admin_execute(pair.blue, "CREATE TABLE public.late_table (id integer PRIMARY KEY)")
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "DROP TABLE public.late_table")

    blocker = check_named(report, "table-exists app.public.late_table")
    assert blocker in report.blockers
    assert blocker.side == "green"
    assert blocker.observed == "blue: present, green: missing"
    assert "row-count app.public.late_table" not in [c.name for c in report.checks]


def test_listed_tables_are_the_only_ones_checked(pair: Pair) -> None:
    report = pair.validate(tables=["orders", "public.customers", "public.no_such_table"])

    assert [c.name for c in report.checks if c.name.startswith("row-count")] == [
        "row-count app.public.orders",
        "row-count app.public.customers",
    ]
    missing = check_named(report, "table-exists app.public.no_such_table")
    assert report.blockers == [missing]
    assert missing.side == "both"


def test_rows_not_replicated_yet_are_a_row_count_blocker_with_both_counts(pair: Pair) -> None:
    with subscription_disabled(pair):
        insert_audit_rows(pair.blue, 7)
        report = pair.validate(lag_grace_s=1)

    blocker = check_named(report, "row-count app.public.audit_log")
    assert blocker in report.blockers
    assert blocker.observed == "30 rows on green"
    assert blocker.expected == "37 rows, as on blue"
    # the stopped subscription is named first: it is the cause
    assert [c.name for c in report.blockers] == [
        "replication-health",
        "replication-lag",
        blocker.name,
    ]
    assert report.summary().startswith("3 blockers: replication-health")


def test_row_count_difference_closed_by_replication_within_the_grace_passes(pair: Pair) -> None:
    set_subscription_enabled(pair.green, False)
    insert_audit_rows(pair.blue, 3)
    # replication resumes while validation is already recounting
    resume = threading.Timer(1.0, set_subscription_enabled, [pair.green, True])
    resume.start()
    try:
        report = pair.validate(lag_grace_s=15)
    finally:
        resume.join()
        wait_until_green_caught_up(pair)

    assert report.passed, report.summary()


def test_table_the_user_may_not_read_is_a_row_count_blocker_not_a_crash(pair: Pair) -> None:
    # on Aurora the master user is no superuser: tables of other owners can refuse it
    reader, reader_password = "plain_reader", "pw-" + secrets.token_urlsafe(18)
    for server in (pair.blue, pair.green):
        set_role_password(server, reader, reader_password)
        admin_execute(server, f"ALTER ROLE {reader} NOSUPERUSER")
        admin_execute(server, "CREATE TABLE public.private_notes (id integer PRIMARY KEY)")
    try:
        report = validate_green(
            pair.green_endpoint,
            pair.blue_endpoint,
            reader,
            reader_password,
            DBNAME,
            target_major=TARGET_MAJOR,
            tables=["private_notes"],
        )
    finally:
        for server in (pair.blue, pair.green):
            admin_execute(server, "DROP TABLE public.private_notes")
            admin_execute(server, f"DROP ROLE {reader}")

    blocker = check_named(report, "row-count app.public.private_notes")
    assert report.blockers == [blocker]
    assert "42501" in blocker.observed


def test_large_tables_are_compared_by_estimate_as_warnings(pair: Pair) -> None:
    for server in (pair.blue, pair.green):
        admin_execute(server, "ANALYZE")

    report = pair.validate(exact_count_limit=100)

    orders = check_named(report, "row-count app.public.orders (estimate)")
    assert orders.passed and orders.severity == WARNING
    assert orders.observed == "~200 rows on green"
    # customers (50 rows) and products (20) stay below the limit: counted exactly
    assert check_named(report, "row-count app.public.customers").severity == BLOCKER
    assert report.passed


def test_failing_report_markdown_starts_with_the_blockers(pair: Pair) -> None:
    report = pair.validate(target_major=17)

    markdown = report.markdown()
    assert markdown.startswith("**1 blocker: server-version")
    assert markdown.index("### Blockers") < markdown.index("### Passed")
    assert "Why: " in markdown and "Fix: " in markdown


def test_report_table_rows_have_the_seven_artifact_keys(pair: Pair) -> None:
    report = pair.validate(target_major=17)

    rows = report.table()
    assert len(rows) == len(report.checks)
    assert all(set(row) == TABLE_KEYS for row in rows)
    assert rows[0]["name"] == "server-version" and rows[0]["result"] == "FAIL"
    others = {row["result"] for row in rows[1:]}
    assert others == {"pass"}


# --- sessions -----------------------------------------------------------------------


def test_wrong_password_is_a_business_error_that_does_not_show_it(pair: Pair) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(18)

    with pytest.raises(BusinessError) as caught:
        connect(pair.green_endpoint, MASTER_ROLE, wrong, DBNAME)

    assert not isinstance(caught.value, TransientError)
    assert "28P01" in str(caught.value) and str(pair.green_endpoint) in str(caught.value)
    assert_secret_absent(caught.value, wrong)


def test_validation_with_a_wrong_password_does_not_show_it(pair: Pair) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(18)

    with pytest.raises(BusinessError) as caught:
        validate_green(
            pair.green_endpoint,
            pair.blue_endpoint,
            MASTER_ROLE,
            wrong,
            DBNAME,
            target_major=TARGET_MAJOR,
        )

    assert_secret_absent(caught.value, wrong)


def test_closed_port_is_a_transient_error_that_does_not_show_the_password(pair: Pair) -> None:
    closed = Endpoint("127.0.0.1", free_port())

    with pytest.raises(TransientError) as caught:
        connect(closed, MASTER_ROLE, pair.password, DBNAME, connect_timeout_s=2)

    assert str(closed) in str(caught.value)
    assert_secret_absent(caught.value, pair.password)


def test_missing_database_is_a_business_error(pair: Pair) -> None:
    with pytest.raises(BusinessError, match="3D000"):
        connect(pair.green_endpoint, MASTER_ROLE, pair.password, "no_such_db")


def test_read_only_session_refuses_an_insert_even_on_writable_blue(pair: Pair) -> None:
    with (
        contextlib.closing(
            connect(pair.blue_endpoint, MASTER_ROLE, pair.password, DBNAME, read_only=True)
        ) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'write')")


def test_session_statements_are_bounded_by_the_statement_timeout(pair: Pair) -> None:
    with (
        contextlib.closing(
            connect(
                pair.blue_endpoint, MASTER_ROLE, pair.password, DBNAME, statement_timeout_ms=200
            )
        ) as conn,
        pytest.raises(psycopg.errors.QueryCanceled),
    ):
        conn.execute("SELECT pg_sleep(5)")


# --- check_after_switchover -----------------------------------------------------------


def test_switched_over_green_passes_and_keeps_no_write_probe_table(switched_pair: Pair) -> None:
    report = check_after_switchover(
        switched_pair.green_endpoint,
        MASTER_ROLE,
        switched_pair.password,
        DBNAME,
        target_major=TARGET_MAJOR,
    )

    assert report.passed, report.markdown()
    assert [c.name for c in report.checks] == ["server-version", "read-write", "write-probe"]
    with connect_admin(switched_pair.green, DBNAME) as conn:
        left = conn.execute("SELECT to_regclass(%s)", [WRITE_PROBE_TABLE]).fetchone()[0]
    assert left is None


def test_read_only_server_after_switchover_fails_the_write_probe_as_blocker(
    switched_pair: Pair,
) -> None:
    # blue stays read-only after the switchover
    report = check_after_switchover(
        switched_pair.blue_endpoint,
        MASTER_ROLE,
        switched_pair.password,
        DBNAME,
        target_major=switched_pair.blue.major,
    )

    probe = check_named(report, "write-probe")
    assert probe in report.blockers
    assert probe.observed == "SQLSTATE 25006"
    assert check_named(report, "read-write") in report.blockers
    assert check_named(report, "server-version").passed
