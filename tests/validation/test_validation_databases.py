"""Validation of every database of the cluster, with one session per database: what changed
on blue since the deployment was created (DDL of every kind, grants, new databases, large
objects, replication of its own) is found in a second database as in the first, named
`database.schema.object`, with AWS's fix. Caused for real on a replicated pair whose blue
holds the demo schema in `app` and `app_2`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.validation.model import NEW_DEPLOYMENT_FIX
from tests.support.checks_lab import Pair, admin_execute, check_named, replicated_pair

SECOND = "app_2"
FINGERPRINT_KINDS = [
    "schemas",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "views",
    "materialized-views",
    "functions",
    "types",
    "triggers",
    "extensions",
]
# Objects of each kind, as an application has them: created on both sides, they are part
# of the copy green started from (PostgreSQL 15 on blue and 16 on green print some alike
# only once compared with care: views lose their qualifiers in 16).
EVERY_KIND = [
    "CREATE SCHEMA billing",
    "CREATE TABLE billing.invoices (id integer PRIMARY KEY, total numeric DEFAULT 1.5)",
    "CREATE VIEW big_orders AS SELECT o.order_id, c.name, o.quantity * 2 AS twice"
    " FROM orders o JOIN customers c USING (customer_id) WHERE o.quantity > 3",
    "CREATE MATERIALIZED VIEW orders_per_sku AS SELECT sku, count(*) FROM orders GROUP BY sku",
    "CREATE TYPE mood AS ENUM ('sad', 'ok')",
    "CREATE TYPE money_pair AS (amount integer, currency text)",
    "CREATE DOMAIN positive_int AS integer NOT NULL CHECK (VALUE > 0)",
    "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
    "CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch()",
    "CREATE ROLE reporting NOLOGIN",
    "GRANT SELECT ON orders TO reporting",
]
UNDO_EVERY_KIND = [
    "DROP TRIGGER orders_touch ON orders",
    "DROP FUNCTION touch()",
    "DROP DOMAIN positive_int",
    "DROP TYPE money_pair",
    "DROP TYPE mood",
    "DROP MATERIALIZED VIEW orders_per_sku",
    "DROP VIEW big_orders",
    "DROP SCHEMA billing CASCADE",
    "REVOKE SELECT ON orders FROM reporting",
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replicated_pair(tmp_path_factory.mktemp("databases-lab"), SECOND) as servers:
        yield servers


def on(server_pair: Pair, sides: str, statements: list[str]) -> None:
    """Run `statements` in the second database on blue, green or both."""
    servers = {"blue": [server_pair.blue], "both": [server_pair.blue, server_pair.green]}[sides]
    for server in servers:
        for statement in statements:
            admin_execute(server, statement, dbname=SECOND)


@contextlib.contextmanager
def on_blue_only(server_pair: Pair, statements: list[str], undo: list[str]) -> Iterator[None]:
    on(server_pair, "blue", statements)
    try:
        yield
    finally:
        on(server_pair, "blue", undo)


def test_every_database_is_validated_each_object_named_with_its_database(pair: Pair) -> None:
    report = pair.validate()

    assert report.passed, report.markdown()
    assert check_named(report, "databases").observed == "app, app_2, postgres: on both"
    names = [c.name for c in report.checks]
    assert "row-count app.public.orders" in names and "row-count app_2.public.orders" in names
    health = check_named(report, "replication-health")
    assert (
        health.observed
        == "rds_bg_sub_app, rds_bg_sub_app_2, rds_bg_sub_postgres: enabled, applying"
    )


def sessions_check(path: Path, expected: str) -> Path:
    """A checks file whose checks, run last while every session of the validation is
    open, want `expected` (`database=sessions,...`) on blue and on green."""
    query = (
        "SELECT string_agg(datname || '=' || n, ',' ORDER BY datname) FROM (SELECT datname,"
        " count(*) AS n FROM pg_stat_activity WHERE application_name = 'aurora-bg'"
        " GROUP BY datname) AS s"
    )
    checks = "".join(
        f"  - name: sessions on {side}\n    side: {side}\n    sql: {query}\n"
        f"    expect: {{equals: '{expected}'}}\n    why: One session per database.\n"
        for side in ("blue", "green")
    )
    path.write_text("checks:\n" + checks)
    return path


def test_validation_holds_one_session_per_database_on_each_side(pair: Pair, tmp_path: Path) -> None:
    every = sessions_check(tmp_path / "every.yaml", "app=1,app_2=1,postgres=1")
    # narrowed to app_2, plus app: the database of the checks file
    narrowed = sessions_check(tmp_path / "narrowed.yaml", "app=1,app_2=1")

    report = pair.validate(checks_file=every)
    second_only = pair.validate(databases=[SECOND], checks_file=narrowed)

    for side in ("blue", "green"):
        assert check_named(report, f"custom sessions on {side}").passed, report.markdown()
        assert check_named(second_only, f"custom sessions on {side}").passed
    assert check_named(second_only, "databases").observed == "app_2: on both"
    assert "row-count app.public.orders" not in [c.name for c in second_only.checks]
    assert "row-count app_2.public.orders" in [c.name for c in second_only.checks]


def test_objects_of_every_kind_on_both_sides_are_no_difference(pair: Pair) -> None:
    on(pair, "both", EVERY_KIND)
    try:
        report = pair.validate()
    finally:
        on(pair, "both", UNDO_EVERY_KIND)
        for server in (pair.blue, pair.green):
            admin_execute(server, "DROP ROLE reporting")

    for kind in FINGERPRINT_KINDS:
        assert check_named(report, f"schema-fingerprint {kind}").passed, kind
    assert check_named(report, "grants").passed
    assert report.passed, report.markdown()


def test_ddl_of_every_kind_on_blue_in_a_second_database_blocks_with_the_new_deployment_fix(
    pair: Pair,
) -> None:
    admin_execute(pair.green, "CREATE ROLE reporting NOLOGIN")  # roles: cluster-wide, copied
    with on_blue_only(pair, EVERY_KIND, UNDO_EVERY_KIND):
        report = pair.validate()
    for server in (pair.blue, pair.green):
        admin_execute(server, "DROP ROLE reporting")

    only_on_blue = {
        "schemas": "app_2.billing",
        "tables": "app_2.billing.invoices",
        "columns": "app_2.billing.invoices.total",
        "constraints": "app_2.billing.invoices.invoices_pkey",
        "indexes": "app_2.billing.invoices_pkey",
        "views": "app_2.public.big_orders",
        "materialized-views": "app_2.public.orders_per_sku",
        "functions": "app_2.public.touch()",
        "types": "app_2.public.mood",
        "triggers": "app_2.public.orders.orders_touch",
    }
    for kind, name in only_on_blue.items():
        check = check_named(report, f"schema-fingerprint {kind}")
        assert check in report.blockers, kind
        assert "only on blue: " in check.observed and name in check.observed, check.observed
        assert "only on green" not in check.observed
        assert check.fix == NEW_DEPLOYMENT_FIX
    types = check_named(report, "schema-fingerprint types").observed
    assert "app_2.public.money_pair" in types and "app_2.public.positive_int" in types
    assert "delete-blue-green-deployment --delete-target" in NEW_DEPLOYMENT_FIX
    assert "apply the same ddl" not in report.markdown().lower()


def test_replaced_function_and_view_on_blue_differ_by_definition(pair: Pair) -> None:
    view = "CREATE VIEW cheap AS SELECT sku FROM products WHERE price_cents < 500"
    on(pair, "both", [view])
    on(
        pair,
        "blue",
        [
            "CREATE OR REPLACE VIEW cheap AS SELECT sku FROM products WHERE price_cents < 900",
            "CREATE OR REPLACE FUNCTION order_total_cents(p_order_id bigint) RETURNS bigint"
            " LANGUAGE sql STABLE AS $$ SELECT 0::bigint $$",
        ],
    )
    try:
        report = pair.validate()
    finally:
        on(pair, "both", ["DROP VIEW cheap"])
        green_body = admin_execute(
            pair.green, "SELECT pg_get_functiondef('order_total_cents'::regproc)", dbname=SECOND
        )
        on(pair, "blue", [green_body])

    views = check_named(report, "schema-fingerprint views")
    assert views in report.blockers
    assert views.observed.startswith("1 difference: different: app_2.public.cheap: blue ")
    functions = check_named(report, "schema-fingerprint functions").observed
    # a long definition is shown from the first word that differs
    assert "different: app_2.public.order_total_cents(p_order_id bigint): blue …sql stable" in (
        functions
    )
    assert "/ green …plpgsql stable" in functions
    assert pair.validate().passed  # put back as it was: identical again


def test_keyless_table_created_on_blue_is_a_blocker_twice_over(pair: Pair) -> None:
    create = "CREATE TABLE public.clicks (url text, at timestamptz)"
    with on_blue_only(pair, [create], ["DROP TABLE public.clicks"]):
        report = pair.validate()

    keyless = check_named(report, "replica-identity")
    assert keyless in report.blockers
    assert keyless.observed == (
        "no primary key or replica identity: app_2.public.clicks (no updates or deletes seen)"
    )
    assert (
        "only on blue: app_2.public.clicks"
        in check_named(report, "schema-fingerprint tables").observed
    )
    assert check_named(report, "table-exists app_2.public.clicks") in report.blockers


def test_grants_and_roles_changed_on_blue_are_a_warning_naming_each_grant(pair: Pair) -> None:
    for server in (pair.blue, pair.green):
        admin_execute(server, "CREATE ROLE reporting NOLOGIN")
    admin_execute(pair.blue, "CREATE ROLE analyst LOGIN IN ROLE reporting")
    grants = ["GRANT SELECT ON orders TO reporting", "REVOKE ALL ON customers FROM PUBLIC"]
    try:
        with on_blue_only(pair, grants, ["REVOKE SELECT ON orders FROM reporting"]):
            report = pair.validate()
    finally:
        admin_execute(pair.blue, "DROP ROLE analyst")
        for server in (pair.blue, pair.green):
            admin_execute(server, "DROP ROLE reporting")

    check = check_named(report, "grants")
    assert check in report.warnings
    assert "app_2.public.orders: reporting=SELECT" in check.observed
    assert "role analyst: login member of reporting" in check.observed
    assert "after the switchover" in check.fix
    assert report.passed  # grants warn: the switchover goes ahead


def test_database_created_on_blue_since_the_deployment_is_a_blocker(pair: Pair) -> None:
    admin_execute(pair.blue, "CREATE DATABASE late_db", dbname="postgres")
    try:
        report = pair.validate()
        named = pair.validate(databases=["app", "no_such_db"])
    finally:
        admin_execute(pair.blue, "DROP DATABASE late_db", dbname="postgres")

    databases = check_named(report, "databases")
    assert databases in report.blockers
    assert databases.observed == "late_db (only on blue)"
    assert "app_2" in check_named(report, "replication-health").observed  # the others go on
    assert check_named(named, "databases").observed == "no_such_db (not on blue)"


def test_own_publication_in_a_second_database_blocks_and_the_deployments_own_do_not(
    pair: Pair,
) -> None:
    create = "CREATE PUBLICATION analytics FOR TABLE orders"
    with on_blue_only(pair, [create], ["DROP PUBLICATION analytics"]):
        report = pair.validate()

    own = check_named(report, "self-managed-replication")
    assert own in report.blockers
    assert own.observed == "publication app_2.analytics"  # rds_bg_pub is AWS's, as rds_bg_sub_*


def test_large_object_in_a_second_database_blocks(pair: Pair) -> None:
    oid = admin_execute(pair.blue, "SELECT lo_from_bytea(0, 'scan')", dbname=SECOND)
    try:
        report = pair.validate()
    finally:
        admin_execute(pair.blue, "SELECT lo_unlink(%s)", [oid], dbname=SECOND)

    large = check_named(report, "large-objects")
    assert large in report.blockers
    assert large.observed == "1 large object on blue (app_2: 1); 0 in those databases on green"
    assert large.fix.endswith(NEW_DEPLOYMENT_FIX)
