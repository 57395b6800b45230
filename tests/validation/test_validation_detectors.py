"""Each built-in detector fires on the case it exists for, caused for real on a replicated
pair of PostgreSQL servers, and says so in its own check."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from lab import replication
from tasks.validation.suites import BLOCKER
from tests.support.checks_lab import (
    DBNAME,
    Pair,
    admin_execute,
    check_named,
    insert_audit_rows,
    open_transaction_on,
    replicated_pair,
    subscription_disabled,
    wait_until_green_caught_up,
)

SHORT_TRANSACTION_S = 1.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replicated_pair(tmp_path_factory.mktemp("detectors-lab")) as servers:
        yield servers


@contextlib.contextmanager
def on_blue_and_green(pair: Pair, create: str, drop: str) -> Iterator[None]:
    """An object that existed before the deployment: on both sides for the block."""
    for server in (pair.blue, pair.green):
        admin_execute(server, create)
    try:
        yield
    finally:
        for server in (pair.blue, pair.green):
            admin_execute(server, drop)


# --- what logical replication does not carry -------------------------------------------


def test_table_without_primary_key_is_a_blocker_whose_fix_deletes_the_deployment_first(
    pair: Pair,
) -> None:
    create = "CREATE TABLE public.page_views (url text, seen_at timestamptz)"
    with on_blue_and_green(pair, create, "DROP TABLE public.page_views"):
        admin_execute(pair.blue, "INSERT INTO page_views VALUES ('/', now())")
        report = pair.validate()
        admin_execute(pair.blue, "ALTER TABLE page_views REPLICA IDENTITY FULL")
        with_identity = pair.validate()

    keyless = check_named(report, "replica-identity")
    assert keyless in report.blockers
    assert keyless.observed == (
        "no primary key or replica identity: app.public.page_views (no updates or deletes seen)"
    )
    assert keyless.fix.startswith("Delete the deployment first")
    # the demo's audit_log has no key either, but REPLICA IDENTITY FULL
    assert "audit_log" not in keyless.observed
    assert check_named(with_identity, "replica-identity").passed


def test_unlogged_table_holding_rows_on_blue_is_a_blocker_and_not_row_counted(
    pair: Pair,
) -> None:
    create = "CREATE UNLOGGED TABLE public.session_cache (id integer PRIMARY KEY, v text)"
    with on_blue_and_green(pair, create, "DROP TABLE public.session_cache"):
        admin_execute(
            pair.blue, "INSERT INTO session_cache SELECT n, 'v' FROM generate_series(1, 5) n"
        )
        holding = pair.validate()
        admin_execute(pair.blue, "TRUNCATE session_cache")
        empty = pair.validate()

    unlogged = check_named(holding, "unlogged-tables")
    assert unlogged in holding.blockers
    assert unlogged.observed == "unlogged: app.public.session_cache (has rows)"
    assert "row-count app.public.session_cache" not in [c.name for c in holding.checks]
    assert check_named(empty, "unlogged-tables") in empty.warnings


def test_large_object_on_blue_is_a_blocker(pair: Pair) -> None:
    oid = admin_execute(pair.blue, "SELECT lo_from_bytea(0, 'scanned invoice')")
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "SELECT lo_unlink(%s)", [oid])

    large = check_named(report, "large-objects")
    assert large in report.blockers
    assert large.observed == "1 large object on blue (app: 1); 0 in those databases on green"


def test_column_and_index_added_on_blue_after_the_deployment_was_created_are_schema_blockers(
    pair: Pair,
) -> None:
    admin_execute(pair.blue, "ALTER TABLE customers ADD COLUMN loyalty_tier text")
    admin_execute(pair.blue, "CREATE INDEX customers_name_idx ON customers (name)")
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "DROP INDEX customers_name_idx")
        admin_execute(pair.blue, "ALTER TABLE customers DROP COLUMN loyalty_tier")

    columns = check_named(report, "schema-fingerprint columns")
    assert columns in report.blockers
    assert columns.observed == "1 difference: only on blue: app.public.customers.loyalty_tier"
    # AWS answers any DDL with Replication degraded: an index too needs a new deployment
    indexes = check_named(report, "schema-fingerprint indexes")
    assert indexes in report.blockers
    assert "only on blue: app.public.customers_name_idx" in indexes.observed
    assert "delete-blue-green-deployment" in indexes.fix
    assert "apply the same ddl on green" not in columns.fix.lower()
    assert check_named(report, "schema-fingerprint tables").passed


def test_changed_constraint_on_blue_shows_both_definitions(pair: Pair) -> None:
    admin_execute(pair.blue, "ALTER TABLE products DROP CONSTRAINT products_price_positive")
    admin_execute(
        pair.blue,
        "ALTER TABLE products ADD CONSTRAINT products_price_positive CHECK (price_cents >= 100)",
    )
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "ALTER TABLE products DROP CONSTRAINT products_price_positive")
        admin_execute(
            pair.blue,
            "ALTER TABLE products ADD CONSTRAINT products_price_positive CHECK (price_cents > 0)",
        )

    constraints = check_named(report, "schema-fingerprint constraints")
    assert constraints in report.blockers
    assert (
        "different: app.public.products.products_price_positive: blue CHECK" in constraints.observed
    )
    assert ">= 100" in constraints.observed and "> 0" in constraints.observed


# --- sequences -------------------------------------------------------------------------


def test_sequence_ahead_on_blue_is_a_warning_naming_both_values(pair: Pair) -> None:
    # as Aurora's green starts, with blue's values (the lab copies the schema only)
    replication.copy_sequence_values(pair.blue, pair.green, DBNAME)
    level = pair.validate()
    admin_execute(
        pair.blue, "INSERT INTO orders (customer_id, sku, quantity) VALUES (1, 'SKU-001', 1)"
    )
    ahead = pair.validate()

    assert check_named(level, "sequences").passed
    sequences = check_named(ahead, "sequences")
    assert sequences in ahead.warnings
    assert sequences.observed == (
        "behind blue: app.public.orders_order_id_seq (green 200, blue 201)"
    )


def test_sequence_missing_on_green_is_a_blocker(pair: Pair) -> None:
    admin_execute(pair.blue, "CREATE SEQUENCE public.invoice_number_seq")
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "DROP SEQUENCE public.invoice_number_seq")

    sequences = check_named(report, "sequences")
    assert sequences in report.blockers
    assert sequences.observed.startswith("missing on green: app.public.invoice_number_seq")


# --- replication -----------------------------------------------------------------------


def test_rows_written_while_green_cannot_apply_are_a_lag_blocker(pair: Pair) -> None:
    # green's apply worker waits behind a lock while blue keeps writing
    with open_transaction_on(pair.green, "LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE"):
        insert_audit_rows(pair.blue, 500)
        time.sleep(0.5)
        insert_audit_rows(pair.blue, 500)
        report = pair.validate(lag_grace_s=1, tables=["customers"])
    wait_until_green_caught_up(pair)

    lag = check_named(report, "replication-lag")
    assert lag in report.blockers
    assert "bytes of blue's WAL not on green" in lag.observed
    assert check_named(report, "replication-health").passed  # the worker runs, it is slow


def test_stopped_subscription_is_a_health_blocker_and_its_lag_is_read_from_blues_slot(
    pair: Pair,
) -> None:
    with subscription_disabled(pair):
        insert_audit_rows(pair.blue, 10)
        report = pair.validate(lag_grace_s=1)

    health = check_named(report, "replication-health")
    assert health in report.blockers and health.observed == "rds_bg_sub_app (disabled)"
    lag = check_named(report, "replication-lag")
    assert lag in report.blockers and lag.severity == BLOCKER
    assert "bytes of blue's WAL not on green" in lag.observed


# --- switchover guardrails on blue ---------------------------------------------------


def test_long_write_transaction_on_blue_is_a_blocker_naming_its_pid(pair: Pair) -> None:
    insert = "INSERT INTO audit_log (actor, action) VALUES ('batch', 'never committed')"
    with open_transaction_on(pair.blue, insert) as conn:
        pid = conn.info.backend_pid
        time.sleep(SHORT_TRANSACTION_S + 0.5)
        report = pair.validate(long_transaction_s=SHORT_TRANSACTION_S)
        early = pair.validate(long_transaction_s=SHORT_TRANSACTION_S, guardrails_block=False)

    long = check_named(report, "long-transactions")
    assert long in report.blockers
    assert long.observed.startswith(f"writing: pid {pid} (lab_admin@app, idle in transaction, ")
    assert "never committed" not in long.observed  # statements are never shown
    # at green validation, long before the switchover, the same finding only warns
    assert check_named(early, "long-transactions") in early.warnings
    assert early.passed


def test_long_read_only_transaction_on_blue_is_a_warning(pair: Pair) -> None:
    with open_transaction_on(pair.blue, "SELECT count(*) FROM orders"):
        time.sleep(SHORT_TRANSACTION_S + 0.5)
        report = pair.validate(long_transaction_s=SHORT_TRANSACTION_S)

    long = check_named(report, "long-transactions")
    assert long in report.warnings and long.observed.startswith("read-only: pid ")


def test_access_exclusive_lock_on_blue_is_a_blocker_and_does_not_hang_validation(
    pair: Pair,
) -> None:
    with open_transaction_on(pair.blue, "LOCK TABLE products IN ACCESS EXCLUSIVE MODE") as conn:
        pid = conn.info.backend_pid
        started = time.monotonic()
        report = pair.validate()
        took = time.monotonic() - started

    locks = check_named(report, "ddl-locks")
    assert locks in report.blockers
    assert locks.observed == f"AccessExclusiveLock: products held by pid {pid} (app)"
    # the count of the locked table gives up after the lock timeout instead of waiting
    assert "55P03" in check_named(report, "row-count app.public.products").observed
    assert took < 10


def test_self_managed_slot_on_blue_is_a_blocker_and_the_deployments_own_is_not(
    pair: Pair,
) -> None:
    admin_execute(
        pair.blue, "SELECT pg_create_logical_replication_slot('analytics_feed', 'pgoutput')"
    )
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "SELECT pg_drop_replication_slot('analytics_feed')")

    replication_check = check_named(report, "self-managed-replication")
    assert replication_check in report.blockers
    assert replication_check.observed == "slot analytics_feed (logical, app)"
    assert "rds_bg" not in replication_check.observed  # AWS's own: rds-prefixed


def test_every_detector_is_quiet_again_once_its_cause_is_gone(pair: Pair) -> None:
    report = pair.validate()

    assert report.passed, report.markdown()
    assert {c.name for c in report.warnings} <= {"sequences"}
