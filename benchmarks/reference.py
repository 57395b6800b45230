"""The upgrade's AWS and SQL calls with plain boto3 and psycopg, no Prefect.

The yardstick of the orchestration overhead: the same lab, the same order of
phases and the same kinds of calls as the flow (describe, modify, create,
switch over, delete; read-only sessions on green, row counts, subscriptions,
sequences), each wait a tight 0.2-s poll, no retries, no artifacts, no
pauses. It is not an alternative to the flow: it observes nothing before
acting and has no way out. Run against a fresh lab:

    python -m benchmarks.reference   # environment from the lab's .lab/env

Prints one JSON object: seconds per phase. The master password only lives in
memory.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
import psycopg

CLUSTER = "provisioning-rds"
TARGET_VERSION = "16.2"
CLUSTER_GROUP = "test-aurora-postgresql16-cluster"
INSTANCE_GROUP = "test-aurora-postgresql16-instance"
DBNAME = "app"
HELD = f"aurora-bg/{CLUSTER}/master-password"
DEPLOYMENT = f"aurora-bg-{CLUSTER}-16-2"
POLL_S = 0.2

TABLES = """SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' ORDER BY 1, 2"""
COLUMNS = """SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'public' ORDER BY 1, 2"""
SEQUENCES = "SELECT schemaname, sequencename, last_value FROM pg_sequences"
SUBSCRIPTIONS = "SELECT subname, subenabled FROM pg_subscription"
WORKERS = "SELECT subname, received_lsn FROM pg_stat_subscription"
SLOTS = "SELECT slot_name, confirmed_flush_lsn FROM pg_replication_slots"


def wait(probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        state = probe()
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not done: {state}")
        time.sleep(POLL_S)


def cluster(rds: Any, identifier: str = CLUSTER) -> dict[str, Any] | None:
    try:
        return rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
    except rds.exceptions.DBClusterNotFoundFault:
        return None


def instance(rds: Any, identifier: str) -> dict[str, Any] | None:
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    except rds.exceptions.DBInstanceNotFoundFault:
        return None


def deployment(rds: Any, identifier: str) -> dict[str, Any] | None:
    try:
        found = rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=identifier)
    except rds.exceptions.BlueGreenDeploymentNotFoundFault:
        return None
    return found["BlueGreenDeployments"][0]


def secret_password(sm: Any, secret_id: str) -> str:
    return json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])["password"]


def session(described: dict[str, Any], password: str, read_only: bool) -> psycopg.Connection:
    options = "-c default_transaction_read_only=on" if read_only else ""
    return psycopg.connect(
        host=described["Endpoint"],
        port=described["Port"],
        user=described["MasterUsername"],
        password=password,
        dbname=DBNAME,
        options=options,
        autocommit=True,
        connect_timeout=5,
    )


def rows(conn: psycopg.Connection, query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def compare(blue: psycopg.Connection, green: psycopg.Connection) -> None:
    """What validation reads on both sides: schema, row counts, sequences, replication."""
    for conn in (blue, green):
        rows(conn, "SHOW server_version")
        rows(conn, COLUMNS)
        rows(conn, SEQUENCES)
        for schema, table in rows(conn, TABLES):
            rows(conn, f'SELECT count(*) FROM "{schema}"."{table}"')
    rows(green, SUBSCRIPTIONS)
    rows(green, WORKERS)
    rows(blue, SLOTS)


def upgrade(rds: Any, sm: Any) -> dict[str, float]:
    """Every phase of the flow in its order; returns seconds per phase."""
    timings: dict[str, float] = {}
    state: dict[str, Any] = {}

    def phase(name: str, body: Callable[[], None]) -> None:
        started = time.perf_counter()
        body()
        timings[name] = time.perf_counter() - started

    def preflight() -> None:
        blue = cluster(rds)
        state["blue"] = blue
        for member in blue["DBClusterMembers"]:
            instance(rds, member["DBInstanceIdentifier"])
        rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=CLUSTER_GROUP)
        rds.describe_db_parameter_groups(DBParameterGroupName=INSTANCE_GROUP)
        rds.describe_db_cluster_parameters(
            DBClusterParameterGroupName=blue["DBClusterParameterGroup"]
        )
        rds.describe_db_engine_versions(Engine=blue["Engine"], EngineVersion=blue["EngineVersion"])
        rds.describe_blue_green_deployments(
            Filters=[{"Name": "source", "Values": [blue["DBClusterArn"]]}]
        )
        state["password"] = secret_password(sm, blue["MasterUserSecret"]["SecretArn"])
        with session(blue, state["password"], read_only=True) as conn:
            rows(conn, "SHOW server_version")
            rows(conn, TABLES)
            rows(conn, SLOTS)

    def password_out() -> None:
        blue = state["blue"]
        sm.create_secret(
            Name=HELD,
            SecretString=json.dumps(
                {"username": blue["MasterUsername"], "password": state["password"]}
            ),
        )
        rds.modify_db_cluster(
            DBClusterIdentifier=CLUSTER,
            ManageMasterUserPassword=False,
            MasterUserPassword=state["password"],
            ApplyImmediately=True,
        )
        wait(
            lambda: cluster(rds),
            lambda c: c["Status"] == "available" and not c.get("MasterUserSecret"),
        )

    def create() -> None:
        rds.describe_blue_green_deployments(
            Filters=[{"Name": "blue-green-deployment-name", "Values": [DEPLOYMENT]}]
        )
        created = rds.create_blue_green_deployment(
            BlueGreenDeploymentName=DEPLOYMENT,
            Source=state["blue"]["DBClusterArn"],
            TargetEngineVersion=TARGET_VERSION,
            TargetDBClusterParameterGroupName=CLUSTER_GROUP,
            TargetDBParameterGroupName=INSTANCE_GROUP,
        )["BlueGreenDeployment"]
        state["deployment"] = created["BlueGreenDeploymentIdentifier"]

    def wait_green() -> None:
        done = wait(
            lambda: deployment(rds, state["deployment"]), lambda d: d["Status"] != "PROVISIONING"
        )
        state["green_id"] = done["Target"].rsplit(":", 1)[-1]

    def validate() -> None:
        deployment(rds, state["deployment"])
        blue, green = cluster(rds), cluster(rds, state["green_id"])
        password = secret_password(sm, HELD)
        with (
            session(blue, password, read_only=True) as on_blue,
            session(green, password, read_only=True) as on_green,
        ):
            compare(on_blue, on_green)

    def pre_switchover() -> None:
        deployment(rds, state["deployment"])
        green = cluster(rds, state["green_id"])
        for member in green["DBClusterMembers"]:
            instance(rds, member["DBInstanceIdentifier"])
        password = secret_password(sm, HELD)
        with (
            session(cluster(rds), password, read_only=True) as on_blue,
            session(green, password, read_only=True) as on_green,
        ):
            rows(on_blue, "SELECT pg_current_wal_lsn()")
            rows(on_green, WORKERS)
            rows(on_blue, "SELECT pid FROM pg_stat_activity WHERE state <> 'idle'")

    def switchover() -> None:
        deployment(rds, state["deployment"])
        rds.switchover_blue_green_deployment(
            BlueGreenDeploymentIdentifier=state["deployment"], SwitchoverTimeout=60
        )

    def wait_switchover() -> None:
        done = wait(
            lambda: deployment(rds, state["deployment"]),
            lambda d: d["Status"] != "SWITCHOVER_IN_PROGRESS",
        )
        state["switched"] = done

    def post_checks() -> None:
        with session(cluster(rds), secret_password(sm, HELD), read_only=False) as conn:
            rows(conn, "SHOW server_version")
            rows(conn, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")

    def sequences() -> None:
        password = secret_password(sm, HELD)
        old_id = state["switched"]["Source"].rsplit(":", 1)[-1]
        with (
            session(cluster(rds, old_id), password, read_only=True) as old,
            session(cluster(rds), password, read_only=False) as new,
        ):
            for schema, name, last in rows(old, SEQUENCES):
                if last is not None:
                    new.execute(
                        f'SELECT setval(\'"{schema}"."{name}"\', '
                        f'greatest({int(last)}, (SELECT last_value FROM "{schema}"."{name}")))'
                    )

    def password_back() -> None:
        rds.modify_db_cluster(
            DBClusterIdentifier=CLUSTER, ManageMasterUserPassword=True, ApplyImmediately=True
        )
        wait(
            lambda: cluster(rds),
            lambda c: (
                c["Status"] == "available"
                and (c.get("MasterUserSecret") or {}).get("SecretStatus") == "active"
            ),
        )

    def prove() -> None:
        new = cluster(rds)
        password = secret_password(sm, new["MasterUserSecret"]["SecretArn"])
        with session(new, password, read_only=True) as conn:
            rows(conn, "SHOW server_version")

    def forget() -> None:
        sm.describe_secret(SecretId=HELD)
        sm.delete_secret(SecretId=HELD, ForceDeleteWithoutRecovery=True)

    def clean_up() -> None:
        switched = state["switched"]
        for detail in switched["SwitchoverDetails"]:
            rds.add_tags_to_resource(
                ResourceName=detail["SourceMember"],
                Tags=[{"Key": "aurora-bg:retired-from", "Value": CLUSTER}],
            )
        rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=state["deployment"])
        wait(lambda: deployment(rds, state["deployment"]), lambda d: d is None)
        old_id = switched["Source"].rsplit(":", 1)[-1]
        old = cluster(rds, old_id)
        for member in old["DBClusterMembers"]:
            member_id = member["DBInstanceIdentifier"]
            rds.delete_db_instance(DBInstanceIdentifier=member_id)
            wait(lambda member_id=member_id: instance(rds, member_id), lambda i: i is None)
        rds.delete_db_cluster(DBClusterIdentifier=old_id, SkipFinalSnapshot=True)
        wait(lambda: cluster(rds, old_id), lambda c: c is None)

    # the flow's phase names (flows/upgrade.py), so the two timelines line up
    phase("preflight", preflight)
    phase("password out of Secrets Manager", password_out)
    phase("create Blue/Green deployment", create)
    phase("wait for green", wait_green)
    phase("validate green (read-only)", validate)
    phase("pre-switchover checks", pre_switchover)
    phase("switchover", switchover)
    phase("wait for switchover", wait_switchover)
    phase("post-switchover checks", post_checks)
    phase("advance sequences", sequences)
    phase("password back into Secrets Manager", password_back)
    phase("prove the new secret", prove)
    phase("forget the held password", forget)
    phase("clean-up", clean_up)
    state.clear()  # the password goes with it
    return timings


def main() -> None:
    started = time.perf_counter()
    session_ = boto3.session.Session()  # AWS_ENDPOINT_URL and credentials from the lab's env
    timings = upgrade(session_.client("rds"), session_.client("secretsmanager"))
    json.dump({"phases": timings, "seconds": time.perf_counter() - started}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
