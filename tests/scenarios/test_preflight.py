"""A failed preflight stops the run before anything changes, and says which check failed.

Each of AWS's prerequisites (AWS-FACTS.md) is broken for real on the lab: in blue's
PostgreSQL through the master user, or through the AWS API. The run must fail with one
line naming every failed check and its fix, the preflight artifact must hold one FAIL
row per failed check (and no other), and the lab's call log must show no mutating call
from the moment the run started.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from lab.harness import RunningLab, wait_for
from tests.support.flowtools import CLUSTER_ID, artifacts_of, lab_parameters, run_flow, table_rows

BLUE_CLUSTER_GROUP = "test-aurora-postgresql15-cluster"
SECOND_DATABASE = "app_2"
TOO_LONG_NAME = "upgrade-" + "x" * 53  # 61 characters: AWS allows 1–60


def turn_logical_replication_off(lab: RunningLab) -> dict[str, Any]:
    lab.rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=BLUE_CLUSTER_GROUP,
        Parameters=[
            {
                "ParameterName": "rds.logical_replication",
                "ParameterValue": "0",
                "ApplyMethod": "pending-reboot",
            }
        ],
    )
    return {}


def nothing(lab: RunningLab) -> dict[str, Any]:
    return {}


CASES: dict[str, tuple[Callable[[RunningLab], Any], dict[str, Any], str]] = {
    "logical-replication-off": (turn_logical_replication_off, {}, "logical replication on"),
    "wrong-family": (
        nothing,
        {"target_cluster_parameter_group": BLUE_CLUSTER_GROUP},
        "target cluster parameter group",
    ),
    "missing-group": (
        nothing,
        {"target_instance_parameter_group": "no-such-instance-group"},
        "target instance parameter group",
    ),
}


def assert_stopped_before_any_change(lab: RunningLab, run: Any, started: float, check: str) -> None:
    assert run.state.is_failed(), run.state
    assert check in run.state.message
    assert "\n" not in run.state.message
    assert lab.mutating_calls(since=started) == []
    rows = {r["check"]: r for r in table_rows(artifacts_of(run.id)[f"{CLUSTER_ID}-preflight"])}
    assert rows[check]["result"] == "FAIL"
    assert rows[check]["fix"]


@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_preflight_check_stops_the_run_before_any_change(
    lab: RunningLab, case: str
) -> None:
    arrange, overrides, failed_check = CASES[case]
    arrange(lab)
    secret_arn = lab.cluster()["MasterUserSecret"]["SecretArn"]
    started = time.time()

    run = run_flow(lab_parameters(lab, **overrides))

    assert_stopped_before_any_change(lab, run, started, failed_check)
    assert lab.cluster()["MasterUserSecret"]["SecretArn"] == secret_arn


def test_a_target_version_not_newer_than_blue_stops_the_run_before_any_change(
    lab: RunningLab,
) -> None:
    for version in ("15.4", "15.2"):
        started = time.time()

        run = run_flow(lab_parameters(lab, target_engine_version=version))

        assert_stopped_before_any_change(lab, run, started, "target version is newer")


# --- AWS's prerequisites, each broken for real on the lab ----------------------------------


def on_blue(lab: RunningLab, *statements: str, dbname: str = "app") -> None:
    """Run `statements` on blue as the master user (autocommit)."""
    with lab.connect_cluster(CLUSTER_ID, lab.master_password(), dbname) as conn:
        for statement in statements:
            conn.execute(statement)


def keyless_table_in_a_second_database(lab: RunningLab) -> dict[str, Any]:
    with lab.connect_cluster(CLUSTER_ID, lab.master_password(), "postgres") as conn:
        known = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [SECOND_DATABASE])
        if known.fetchone() is None:
            conn.execute(f"CREATE DATABASE {SECOND_DATABASE}")
    on_blue(
        lab,
        "CREATE TABLE page_visits (page text NOT NULL, seen_at timestamptz DEFAULT now())",
        "INSERT INTO page_visits (page) SELECT 'page-' || g FROM generate_series(1, 50) AS g",
        "ANALYZE page_visits",
        dbname=SECOND_DATABASE,
    )
    return {}


def unlogged_table_with_rows(lab: RunningLab) -> dict[str, Any]:
    on_blue(
        lab,
        "CREATE UNLOGGED TABLE web_sessions (token text PRIMARY KEY, customer_id integer)",
        "INSERT INTO web_sessions VALUES ('t-1', 1), ('t-2', 2)",
    )
    return {}


def large_object(lab: RunningLab) -> dict[str, Any]:
    on_blue(lab, "SELECT lo_from_bytea(0, 'a scanned invoice'::bytea)")
    return {}


def own_publication(lab: RunningLab) -> dict[str, Any]:
    on_blue(lab, "CREATE PUBLICATION reporting FOR TABLE orders")
    return {}


def static_parameter_without_reboot(lab: RunningLab) -> dict[str, Any]:
    lab.set_cluster_parameters({"max_logical_replication_workers": "6"}, "pending-reboot")
    assert lab.writer_parameter_status() == "pending-reboot"
    return {}


def too_few_workers(lab: RunningLab) -> dict[str, Any]:
    """One apply worker for blue's two databases (`app` and `postgres`), applied by a reboot."""
    lab.set_cluster_parameters({"max_logical_replication_workers": "1"}, "pending-reboot")
    lab.reboot_writer()
    wait_for(lambda: lab.writer_parameter_status() == "in-sync", 60, what="the writer in sync")
    wait_for(lambda: _setting(lab, "max_logical_replication_workers") == "1", 60, what="reboot")
    return {}


def synchronous_commit_off(lab: RunningLab) -> dict[str, Any]:
    lab.set_cluster_parameters({"synchronous_commit": "off"}, "immediate")
    wait_for(lambda: _setting(lab, "synchronous_commit") == "off", 30, what="the reload")
    return {}


def unsupported_source_version(lab: RunningLab) -> dict[str, Any]:
    """A second cluster at 15.3 (AWS's list starts 15 at 15.4), its password self-managed
    and named through a secret of the operator's."""
    password = lab.master_password()
    lab.create_cluster("legacy-db", "15.3", password)
    secret = lab.sm.create_secret(
        Name="legacy-db/master",
        SecretString=json.dumps({"username": "postgres", "password": password}),
    )
    return {"cluster_identifier": "legacy-db", "credentials_secret_arn": secret["ARN"]}


def name_over_60_characters(lab: RunningLab) -> dict[str, Any]:
    return {"deployment_name": TOO_LONG_NAME}


def _setting(lab: RunningLab, name: str) -> str | None:
    try:
        with lab.connect_cluster(CLUSTER_ID, lab.master_password(), "postgres") as conn:
            return str(conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0])
    except Exception:  # the server restarting
        return None


# case: (arrange, the check that fails, what its detail says, what its fix says)
PREREQUISITES: dict[str, tuple[Callable[[RunningLab], dict[str, Any]], str, str, str]] = {
    "keyless-table-in-a-second-database": (
        keyless_table_in_a_second_database,
        "tables have primary keys",
        f"{SECOND_DATABASE}.public.page_visits (~50 rows)",
        "add a primary key before creating the deployment; REPLICA IDENTITY FULL only where "
        "no key exists",
    ),
    "unlogged-table-with-rows": (
        unlogged_table_with_rows,
        "no unlogged tables with rows",
        "unlogged with rows: app.public.web_sessions",
        "ALTER TABLE ... SET LOGGED before creating the deployment",
    ),
    "large-object": (large_object, "no large objects", "large objects in app (1)", "bytea"),
    "own-publication": (
        own_publication,
        "no own publications",
        "publications: app.reporting",
        "DROP PUBLICATION",
    ),
    "static-parameter-changed-without-reboot": (
        static_parameter_without_reboot,
        "writer in sync with its parameter group",
        f"writer rds-1 is pending-reboot with {BLUE_CLUSTER_GROUP}",
        "reboot the writer rds-1",
    ),
    "too-few-workers-for-the-databases": (
        too_few_workers,
        "max_logical_replication_workers",
        "2 databases need max_logical_replication_workers >= 2; blue has 1",
        f"raise max_logical_replication_workers to at least 2 in {BLUE_CLUSTER_GROUP}",
    ),
    "synchronous-commit-off": (
        synchronous_commit_off,
        "synchronous_commit on",
        "blue runs with synchronous_commit = off",
        "set synchronous_commit = on",
    ),
    "unsupported-source-version": (
        unsupported_source_version,
        "source version supports Blue/Green",
        "blue runs 15.3; AWS supports 11.21+, 12.16+, 13.12+, 14.9+, 15.4+, 16.1+",
        "upgrade blue to a supported minor version first",
    ),
    "name-over-60-characters": (
        name_over_60_characters,
        "deployment name valid",
        "61 characters (1–60 allowed)",
        "choose a deployment_name of 1–60 letters, digits and single hyphens",
    ),
}


def preflight_rows(run: Any, cluster_id: str) -> dict[str, dict[str, Any]]:
    return {r["check"]: r for r in table_rows(artifacts_of(run.id)[f"{cluster_id}-preflight"])}


@pytest.mark.parametrize("case", list(PREREQUISITES))
def test_a_broken_aws_prerequisite_stops_the_run_in_preflight_with_its_fix(
    lab: RunningLab, case: str
) -> None:
    arrange, check, detail, fix = PREREQUISITES[case]
    overrides = arrange(lab)
    cluster_id = overrides.get("cluster_identifier", CLUSTER_ID)
    started = time.time()

    run = run_flow(lab_parameters(lab, **overrides))

    assert run.state.is_failed(), run.state
    message = run.state.message
    assert "\n" not in message
    assert re.search(r": 1 of \d+ preflight checks failed: ", message), message
    assert check in message and detail in message and fix in message
    rows = preflight_rows(run, cluster_id)
    assert [name for name, row in rows.items() if row["result"] == "FAIL"] == [check]
    assert detail in rows[check]["detail"]
    assert fix in rows[check]["fix"]
    assert lab.mutating_calls(since=started) == []


def test_every_broken_prerequisite_is_reported_at_once_before_any_change(
    lab: RunningLab,
) -> None:
    cases = [
        "keyless-table-in-a-second-database",
        "unlogged-table-with-rows",
        "large-object",
        "own-publication",
        "synchronous-commit-off",
        "name-over-60-characters",
    ]
    overrides: dict[str, Any] = {}
    for case in cases:
        overrides |= PREREQUISITES[case][0](lab)
    secret_arn = lab.cluster()["MasterUserSecret"]["SecretArn"]
    started = time.time()

    run = run_flow(lab_parameters(lab, **overrides))

    assert run.state.is_failed(), run.state
    message = run.state.message
    assert "\n" not in message
    assert re.search(rf": {len(cases)} of \d+ preflight checks failed: ", message), message
    rows = preflight_rows(run, CLUSTER_ID)
    failed = {name for name, row in rows.items() if row["result"] == "FAIL"}
    assert failed == {PREREQUISITES[case][1] for case in cases}
    for case in cases:
        _, check, detail, fix = PREREQUISITES[case]
        assert f"{check} (" in message and detail in message and fix in message
    assert lab.mutating_calls(since=started) == []
    assert lab.cluster()["MasterUserSecret"]["SecretArn"] == secret_arn


def test_warnings_are_reported_and_recorded_but_the_run_goes_on(lab: RunningLab) -> None:
    """A materialized view warns (refreshing it on blue would break replication): the
    preflight row says WARN with what to do, and the run reaches its first pause."""
    on_blue(lab, "CREATE MATERIALIZED VIEW order_totals AS SELECT count(*) AS n FROM orders")

    run = run_flow(lab_parameters(lab), "reject")

    rows = preflight_rows(run, CLUSTER_ID)
    views = rows["no materialized views"]
    assert (views["result"], views["severity"]) == ("WARN", "warning")
    assert "app.public.order_totals" in views["detail"]
    assert "after the switchover" in views["fix"]
    assert [name for name, row in rows.items() if row["result"] == "FAIL"] == []
    assert f"{CLUSTER_ID}-blue-green" in artifacts_of(run.id)  # it went on to create green


def test_what_aws_supports_with_limits_is_warned_and_recorded_not_refused(
    lab: RunningLab,
) -> None:
    """An RDS proxy targeting blue, a zero-ETL integration from it and an associated IAM
    role: AWS supports the deployment with conditions, so each is a WARN row naming what
    it found and what to do, and the run goes on to create green."""
    cluster = lab.cluster()
    role = lab.client("iam").create_role(
        RoleName="s3-import",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    lab.rds.add_role_to_db_cluster(DBClusterIdentifier=CLUSTER_ID, RoleArn=role)
    lab.rds.create_db_proxy(
        DBProxyName="orders-proxy",
        EngineFamily="POSTGRESQL",
        Auth=[{"AuthScheme": "SECRETS", "SecretArn": cluster["MasterUserSecret"]["SecretArn"]}],
        RoleArn=role,
        VpcSubnetIds=lab.info["topology"]["subnet_ids"],
    )
    lab.rds.register_db_proxy_targets(DBProxyName="orders-proxy", DBClusterIdentifiers=[CLUSTER_ID])
    lab.rds.create_integration(
        SourceArn=cluster["DBClusterArn"],
        TargetArn="arn:aws:redshift-serverless:ap-northeast-1:123456789012:namespace/analytics",
        IntegrationName="orders-to-redshift",
    )

    run = run_flow(lab_parameters(lab), "reject")

    rows = preflight_rows(run, CLUSTER_ID)
    warned = {name: row for name, row in rows.items() if row["result"] == "WARN"}
    assert set(warned) == {"no DB proxies", "no zero-ETL integrations", "no associated IAM roles"}
    assert "orders-proxy" in warned["no DB proxies"]["detail"]
    assert "orders-to-redshift" in warned["no zero-ETL integrations"]["detail"]
    assert "delete them before the switchover" in warned["no zero-ETL integrations"]["fix"]
    assert role in warned["no associated IAM roles"]["detail"]
    assert "after the switchover" in warned["no associated IAM roles"]["fix"]
    assert [name for name, row in rows.items() if row["result"] == "FAIL"] == []
    assert f"{CLUSTER_ID}-blue-green" in artifacts_of(run.id)
