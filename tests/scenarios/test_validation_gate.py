"""Validation as a gate of the whole flow, against the lab: the operator's checks file is
tried at preflight, a blocker stops the run before the switchover approval without
changing or undoing anything, DDL on blue meanwhile stops it with AWS's "Replication
degraded" and its one cure, warnings reach the pause, and the new cluster's sequences
are advanced right after the switchover."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect.input.run_input import keyset_from_paused_state, read_flow_run_input

from lab.harness import RunningLab, wait_for
from lab.postgres import PgServer, connect_admin
from tests.support.flowtools import (
    CLUSTER_ID,
    HELD_SECRET,
    artifacts_of,
    calls_named,
    deployments,
    flow_in_thread,
    lab_parameter_data,
    lab_parameters,
    table_rows,
)

PASSING = """\
  - name: orders have their customer
    sql: |
      SELECT count(*) FROM orders o LEFT JOIN customers c USING (customer_id)
       WHERE c.customer_id IS NULL
    expect: {equals: 0}
    why: An order without its customer on green means rows arrived out of step.
"""
NO_RECALLED_PRODUCT = """\
  - name: no recalled product is on sale
    side: blue
    sql: SELECT count(*) FROM products WHERE title LIKE 'Recalled%'
    expect: {equals: 0}
    severity: blocker
    why: A recalled product must be off sale before the new cluster serves orders.
    fix: Take the recalled product off sale on blue, then run the upgrade again.
"""
WRITING = """\
  - name: tidy the audit log
    sql: DELETE FROM orders WHERE quantity > 1000
    expect: no_rows
"""


def params_with_checks(lab: RunningLab, path: Path) -> Any:
    validation = {**lab_parameter_data(lab).get("validation", {}), "checks_file": str(path)}
    return lab_parameters(lab, validation=validation, terraform={"enabled": False})


def write_checks(tmp_path: Path, *checks: str) -> Path:
    path = tmp_path / "checks.yaml"
    path.write_text("checks:\n" + "".join(checks))
    return path


def server(lab: RunningLab, name: str) -> PgServer:
    return PgServer.from_dict(lab.info["servers"][name])


def admin_execute(lab: RunningLab, name: str, statement: str) -> Any:
    with connect_admin(server(lab, name), lab.info["dbname"]) as conn:
        cursor = conn.execute(statement)
        row = cursor.fetchone() if cursor.description else None
    return row[0] if row else None


def add_empty_unlogged_table(lab: RunningLab) -> None:
    """What warns at each pause: an empty unlogged table (preflight lets it pass, as it holds
    no rows to lose; rows written to it meanwhile would be)."""
    admin_execute(lab, "blue", "CREATE UNLOGGED TABLE session_cache (id integer PRIMARY KEY)")


def pause_description(run: Any) -> str:
    """What a person reads in the Prefect UI for the current pause."""
    flow_run = run.wait_paused()
    keyset = keyset_from_paused_state(flow_run.state)
    return wait_for(
        lambda: read_flow_run_input(keyset["description"], flow_run_id=flow_run.id),
        30,
        what="the pause's description",
    )


def test_custom_blocker_stops_the_run_before_the_switchover_approval_and_changes_nothing(
    lab: RunningLab, tmp_path: Path
) -> None:
    params = params_with_checks(lab, write_checks(tmp_path, PASSING, NO_RECALLED_PRODUCT))
    add_empty_unlogged_table(lab)

    with flow_in_thread(params) as run:
        green_validated = pause_description(run)
        # while people test green, a product is recalled on blue
        admin_execute(
            lab, "blue", "INSERT INTO products VALUES ('SKU-900', 'Recalled kettle', 4200)"
        )
        approved = run.answer("approve")
        state = run.finish()

    assert "**Warnings**" in green_validated and "unlogged-tables" in green_validated
    assert state.is_failed()
    message = state.message or ""
    assert "SwitchoverBlocked" in message and "\n" not in message
    assert "pre-switchover checks: 1 blocker: custom no recalled product is on sale (1;" in message
    assert "Take the recalled product off sale on blue" in message
    assert len(run.answered) == 1  # never asked to approve the switchover
    assert lab.mutating_calls(since=approved) == []
    assert calls_named(lab, "SwitchoverBlueGreenDeployment") == []
    assert [d["Status"] for d in deployments(lab)] == ["AVAILABLE"]  # left for a rerun
    artifacts = artifacts_of(run.id)
    rows = {r["name"]: r for r in table_rows(artifacts[f"{CLUSTER_ID}-pre-switchover"])}
    assert rows["custom orders have their customer"]["result"] == "pass"
    blocked = rows["custom no recalled product is on sale"]
    assert (blocked["result"], blocked["severity"], blocked["side"]) == ("FAIL", "blocker", "blue")
    assert blocked["why"].startswith("A recalled product must be off sale")
    summary = artifacts[f"{CLUSTER_ID}-pre-switchover-summary"].data
    assert summary.startswith("**1 blocker: custom no recalled product is on sale")
    assert f"{CLUSTER_ID}-report" in artifacts


def test_ddl_on_blue_while_green_is_tested_stops_the_run_with_replication_degraded(
    lab: RunningLab,
) -> None:
    params = lab_parameters(lab, terraform={"enabled": False})

    with flow_in_thread(params) as run:
        run.wait_paused()
        # while people test green, someone adds a column on blue: DDL is not replicated
        admin_execute(lab, "blue", "ALTER TABLE customers ADD COLUMN loyalty_tier text")
        approved = run.answer("approve")
        state = run.finish()

    assert state.is_failed()
    message = state.message or ""
    assert "SwitchoverBlocked" in message and "\n" not in message
    assert "replication-degraded (StatusDetails: Replication degraded: DDL on blue" in message
    assert "schema-fingerprint columns (1 difference: only on blue: app.public.customers." in (
        message
    )
    assert "aws rds delete-blue-green-deployment --delete-target" in message
    assert "same DDL on green" not in message
    assert len(run.answered) == 1  # never asked to approve the switchover
    assert calls_named(lab, "SwitchoverBlueGreenDeployment") == []
    assert lab.mutating_calls(since=approved) == []
    (deployment,) = deployments(lab)
    assert deployment["Status"] == "AVAILABLE"  # degraded is a condition, not a status
    assert "Replication degraded" in deployment["StatusDetails"]
    rows = {r["name"]: r for r in table_rows(artifacts_of(run.id)[f"{CLUSTER_ID}-pre-switchover"])}
    assert (rows["replication-degraded"]["result"], rows["replication-degraded"]["severity"]) == (
        "FAIL",
        "blocker",
    )


def test_check_that_would_write_stops_the_run_at_preflight_before_any_change(
    lab: RunningLab, tmp_path: Path
) -> None:
    params = params_with_checks(lab, write_checks(tmp_path, PASSING, WRITING))
    started = time.time()

    with flow_in_thread(params) as run:
        state = run.finish()

    assert state.is_failed()
    assert "validation checks file" in (state.message or "")
    assert lab.mutating_calls(since=started) == []
    rows = table_rows(artifacts_of(run.id)[f"{CLUSTER_ID}-preflight"])
    failed = next(r for r in rows if r["check"] == "validation checks file")
    assert failed["result"] == "FAIL"
    assert "check 'tidy the audit log' writes rows: a check may only read" in failed["detail"]


def test_sequences_are_advanced_after_the_switchover_so_the_next_insert_does_not_collide(
    lab: RunningLab,
) -> None:
    params = lab_parameters(lab, terraform={"enabled": False})
    add_empty_unlogged_table(lab)

    with flow_in_thread(params) as run:
        run.answer("approve")
        approve_switchover = pause_description(run)
        password = json.loads(lab.sm.get_secret_value(SecretId=HELD_SECRET)["SecretString"])
        for _ in range(5):  # the applications keep writing on blue until the switchover
            admin_execute(
                lab,
                "blue",
                "INSERT INTO orders (customer_id, sku, quantity) VALUES (1, 'SKU-001', 1)",
            )
        run.answer("approve")
        state = run.finish()

    assert state.is_completed(), state.message
    # the switchover approval lists the warnings with their why and fix, never the password
    assert "**Warnings**" in approve_switchover
    assert "- **unlogged-tables** (blue)" in approve_switchover
    assert "Fix: " in approve_switchover
    assert password["password"] not in approve_switchover
    rows = table_rows(artifacts_of(run.id)[f"{CLUSTER_ID}-sequences"])
    orders = next(r for r in rows if r["sequence"] == "public.orders_order_id_seq")
    assert orders == {
        "database": "app",
        "sequence": "public.orders_order_id_seq",
        "old blue": "205",
        "new cluster before": "200",  # green's value at creation: replication never moved it
        "new cluster after": "205",
        "action": "advanced",
    }
    with lab.connect_cluster(CLUSTER_ID, lab.master_password()) as conn:
        inserted = conn.execute(
            "INSERT INTO orders (customer_id, sku, quantity) VALUES (2, 'SKU-002', 1)"
            " RETURNING order_id"
        ).fetchone()[0]
    assert inserted == 206
