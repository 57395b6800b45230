"""After the switchover the new cluster's sequences are advanced to the old blue's last
values, so that the next insert does not collide. The pair here is switched over the way
Aurora does it: green started with blue's sequence values when it was created, and
logical replication never moved them while blue kept inserting."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg
import pytest

from lab.postgres import MASTER_ROLE, connect_admin
from tasks.validation.model import open_session
from tasks.validation.sequences import advance_sequences
from tests.support.checks_lab import (
    DBNAME,
    Pair,
    admin_execute,
    replicated_pair,
    switch_over_without_sequences,
)

NEW_ORDER = (
    "INSERT INTO orders (customer_id, sku, quantity) VALUES (1, 'SKU-001', 1) RETURNING order_id"
)


@pytest.fixture(scope="module")
def switched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replicated_pair(tmp_path_factory.mktemp("sequences-lab")) as pair:
        for server in (pair.blue, pair.green):  # a descending sequence, on both since creation
            admin_execute(
                server, "CREATE SEQUENCE public.countdown INCREMENT -1 MAXVALUE 100 START 100"
            )
        for _ in range(3):
            admin_execute(pair.blue, "SELECT nextval('countdown')")
        for _ in range(5):  # applications keep inserting on blue after green was created
            admin_execute(pair.blue, NEW_ORDER)
        wait_for_rows_on_green(pair, 205)
        switch_over_without_sequences(pair)
        yield pair


def wait_for_rows_on_green(pair: Pair, order_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while admin_execute(pair.green, "SELECT max(order_id) FROM orders") != order_id:
        assert time.monotonic() < deadline, "the orders did not replicate to green"
        time.sleep(0.1)


def advance(pair: Pair):  # noqa: ANN201
    with (
        open_session(
            "blue", pair.blue_endpoint, MASTER_ROLE, pair.password, DBNAME, read_only=True
        ) as old_blue,
        open_session(
            "green", pair.green_endpoint, MASTER_ROLE, pair.password, DBNAME, read_only=False
        ) as new,
    ):
        return advance_sequences(old_blue, new)


def insert_order(pair: Pair) -> int:
    """An application's insert on the new cluster, through its own connection."""
    with contextlib.closing(
        psycopg.connect(
            host=pair.green_endpoint.host,
            port=pair.green_endpoint.port,
            user=MASTER_ROLE,
            password=pair.password,
            dbname=DBNAME,
            autocommit=True,
        )
    ) as conn:
        return conn.execute(NEW_ORDER).fetchone()[0]


def test_insert_collides_until_sequences_are_advanced_and_then_does_not(switched: Pair) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        insert_order(switched)  # green's sequence is still where it was at creation: 200

    result = advance(switched)

    assert result.action == "advanced"
    assert result.facts["advanced"] == ["public.countdown", "public.orders_order_id_seq"]
    orders = next(r for r in result.facts["rows"] if r["sequence"] == "public.orders_order_id_seq")
    assert orders == {
        "database": "app",
        "sequence": "public.orders_order_id_seq",
        "old blue": "205",
        "new cluster before": "201",  # 200 at creation, +1 for the insert that collided
        "new cluster after": "205",
        "action": "advanced",
    }
    assert insert_order(switched) == 206


def test_descending_sequence_is_advanced_downwards(switched: Pair) -> None:
    assert admin_execute(switched.green, "SELECT nextval('countdown')") == 97


def test_second_run_changes_nothing_and_never_moves_a_sequence_back(switched: Pair) -> None:
    insert_order(switched)  # 207: ahead of blue's 205

    result = advance(switched)

    assert result.action == "already-done"
    assert result.reason == "All 2 sequences of the new cluster are at or past blue's last values."
    assert insert_order(switched) == 208


def test_sequence_missing_on_the_new_cluster_is_reported_not_created(switched: Pair) -> None:
    admin_execute(switched.blue, "CREATE SEQUENCE public.invoice_number_seq")
    admin_execute(switched.blue, "SELECT nextval('invoice_number_seq')")
    try:
        result = advance(switched)
    finally:
        admin_execute(switched.blue, "DROP SEQUENCE public.invoice_number_seq")

    assert result.action == "incomplete"
    assert result.facts["missing"] == ["public.invoice_number_seq"]
    assert "missing on the new cluster: public.invoice_number_seq" in result.reason
    with connect_admin(switched.green, DBNAME) as conn:
        assert conn.execute("SELECT to_regclass('invoice_number_seq')").fetchone()[0] is None


def test_old_blue_is_only_read(switched: Pair) -> None:
    before = admin_execute(switched.blue, "SELECT last_value FROM orders_order_id_seq")

    advance(switched)

    assert admin_execute(switched.blue, "SELECT last_value FROM orders_order_id_seq") == before
