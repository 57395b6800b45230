"""The lab fails where AWS fails: each documented failure of an Aurora PostgreSQL
Blue/Green deployment (AWS-FACTS.md), caused for real and seen from outside, with boto3
and psycopg only.

One lab started with two application databases (`app`, `app_2`; a deployment
replicates them and `postgres`: three databases) serves the module, its master password
self-managed so that deployments may be created. Every test leaves it as it found it:
parameters restored, deployments deleted with their green, tables it made dropped;
the last one switches over and keeps the result.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from lab import control
from lab.harness import CLUSTER_ID, RunningLab, wait_for

PROVISIONING_DELAY = 2.0
REPLICATED = ["app", "app_2", "postgres"]
RDS_SLOTS = {"rds_bg_sub_app", "rds_bg_sub_app_2", "rds_bg_sub_postgres"}
REPLICATION_WAIT_S = 15.0
GREEN_TARGET = "arn:aws:redshift-serverless:ap-northeast-1:123456789012:namespace/zero-etl"


@dataclass
class Blue:
    """The module's lab and the master password of its (self-managed) cluster."""

    lab: RunningLab
    password: str

    def connect(self, dbname: str = "app") -> psycopg.Connection[Any]:
        """An autocommit session on blue's writer endpoint, as the master user."""
        return self.lab.connect_cluster(CLUSTER_ID, self.password, dbname)

    def show(self, setting: str) -> str:
        with self.connect("postgres") as conn:
            value: str = conn.execute(f"SHOW {setting}").fetchone()[0]
        return value


@pytest.fixture(scope="module")
def blue(two_database_lab: RunningLab) -> Blue:
    password = two_database_lab.unmanage_password()
    two_database_lab.set_provisioning_delay(PROVISIONING_DELAY)
    return Blue(two_database_lab, password)


def code_of(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


def message_of(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Message"]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def delete_with_green(lab: RunningLab, identifier: str) -> None:
    """DeleteBlueGreenDeployment with DeleteTarget; a deployment already gone is fine."""
    try:
        lab.rds.delete_blue_green_deployment(
            BlueGreenDeploymentIdentifier=identifier, DeleteTarget=True
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "BlueGreenDeploymentNotFoundFault":
            raise


@contextmanager
def deployment(lab: RunningLab, name: str) -> Iterator[str]:
    """A deployment of the lab's cluster for the block, deleted with its green after."""
    identifier = lab.create_deployment(name=unique(name))
    try:
        yield identifier
    finally:
        delete_with_green(lab, identifier)


@contextmanager
def cluster_parameters(
    blue: Blue, values: dict[str, str], apply_method: str = "pending-reboot"
) -> Iterator[None]:
    """Blue's cluster parameter group with `values`, applied (a reboot of the writer for
    pending-reboot); the values blue ran before are applied again after the block."""
    before = {name: blue.show(name) for name in values}
    blue.lab.set_cluster_parameters(values, apply_method)
    if apply_method == "pending-reboot":
        blue.lab.reboot_writer()
    try:
        yield
    finally:
        blue.lab.set_cluster_parameters(before, apply_method)
        if apply_method == "pending-reboot":
            blue.lab.reboot_writer()


def blue_replication_objects(blue: Blue) -> tuple[set[str], set[str]]:
    """Replication slots on blue, and the publications of blue's databases."""
    with blue.connect("postgres") as conn:
        slots = {row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots")}
    publications = set()
    for dbname in REPLICATED:
        with blue.connect(dbname) as conn:
            publications |= {row[0] for row in conn.execute("SELECT pubname FROM pg_publication")}
    return slots, publications


def deployment_messages(lab: RunningLab, identifier: str) -> list[str]:
    return [e["Message"] for e in lab.events("blue-green-deployment", identifier)]


# --- what the lab starts with ----------------------------------------------------------


def test_lab_up_with_two_databases_seeds_app_and_app_2_with_audit_log_replica_identity_full(
    blue: Blue,
) -> None:
    assert blue.lab.databases == ["app", "app_2"]
    for dbname in blue.lab.databases:
        with blue.connect(dbname) as conn:
            assert conn.execute("SELECT count(*) FROM customers").fetchone() == (50,)
            identity = conn.execute(
                "SELECT relreplident FROM pg_class WHERE oid = 'audit_log'::regclass"
            ).fetchone()
            assert identity == ("f",)  # FULL: UPDATE and DELETE replicate without a key


def test_blue_runs_synchronous_commit_on_and_shows_rds_logical_replication_on(
    blue: Blue,
) -> None:
    assert blue.show("synchronous_commit") == "on"
    assert blue.show("rds.logical_replication") == "on"


def test_proxies_integrations_and_global_clusters_are_described_empty_until_one_exists(
    blue: Blue,
) -> None:
    rds = blue.lab.rds
    assert rds.describe_db_proxies()["DBProxies"] == []
    assert rds.describe_global_clusters()["GlobalClusters"] == []
    assert rds.describe_integrations()["Integrations"] == []
    source = blue.lab.cluster()["DBClusterArn"]
    created = rds.create_integration(
        SourceArn=source, TargetArn=GREEN_TARGET, IntegrationName="zero-etl-test"
    )
    try:
        found = rds.describe_integrations()["Integrations"]
        assert [(i["IntegrationName"], i["SourceArn"]) for i in found] == [
            ("zero-etl-test", source)
        ]
        named = rds.describe_integrations(IntegrationIdentifier="zero-etl-test")
        assert named["Integrations"][0]["IntegrationArn"] == created["IntegrationArn"]
    finally:
        rds.delete_integration(IntegrationIdentifier=created["IntegrationArn"])
    assert rds.describe_integrations()["Integrations"] == []
    with pytest.raises(ClientError) as error:
        rds.describe_integrations(IntegrationIdentifier="zero-etl-test")
    assert code_of(error) == "IntegrationNotFoundFault"


# --- refused at once -------------------------------------------------------------------


def test_a_source_version_outside_awss_blue_green_list_is_refused_at_once(blue: Blue) -> None:
    lab = blue.lab
    cluster = lab.create_cluster("old-source", "15.3", blue.password)
    try:
        assert cluster["EngineVersion"] == "15.3"
        with pytest.raises(ClientError) as error:
            lab.create_deployment(name=unique("old-source"), cluster="old-source")
        assert code_of(error) == "SourceClusterNotSupportedFault"
        assert "15.3" in message_of(error)
        assert lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []
    finally:
        lab.rds.delete_db_instance(DBInstanceIdentifier="old-source-1")
        lab.rds.delete_db_cluster(DBClusterIdentifier="old-source", SkipFinalSnapshot=True)


@pytest.mark.parametrize("name", ["a" * 61, "double--hyphen", "1-starts-with-a-digit"])
def test_a_deployment_name_aws_would_not_take_is_refused(blue: Blue, name: str) -> None:
    with pytest.raises(ClientError) as error:
        blue.lab.create_deployment(name=name)
    assert code_of(error) == "InvalidParameterValue"
    assert "BlueGreenDeploymentName" in message_of(error)
    assert blue.lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []


def test_a_static_parameter_waits_pending_reboot_and_blocks_creation_until_the_writer_reboots(
    blue: Blue,
) -> None:
    lab = blue.lab
    before = blue.show("max_replication_slots")
    lab.set_cluster_parameters({"max_replication_slots": "12"})
    try:
        assert lab.writer_parameter_status() == "pending-reboot"
        assert blue.show("max_replication_slots") == before  # not applied yet
        with pytest.raises(ClientError) as error:
            lab.create_deployment(name=unique("pending-reboot"))
        assert code_of(error) == "InvalidDBClusterStateFault"
        assert "pending-reboot" in message_of(error)
        assert lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []

        lab.reboot_writer()
        assert lab.writer_parameter_status() == "in-sync"
        assert blue.show("max_replication_slots") == "12"
        assert control.status(lab.dir)["running"] is True  # the restarted postmaster is known
    finally:
        lab.set_cluster_parameters({"max_replication_slots": before})
        lab.reboot_writer()
    assert blue.show("max_replication_slots") == before


def test_a_static_parameter_with_apply_method_immediate_is_refused(blue: Blue) -> None:
    with pytest.raises(ClientError) as error:
        blue.lab.set_cluster_parameters({"max_wal_senders": "4"}, apply_method="immediate")
    assert code_of(error) == "InvalidParameterCombination"
    assert blue.lab.writer_parameter_status() == "in-sync"


# --- accepted, then INVALID_CONFIGURATION after the provisioning delay -------------------


def test_too_few_slots_and_workers_for_three_databases_end_invalid_configuration_with_event_0245(
    blue: Blue,
) -> None:
    lab = blue.lab
    with cluster_parameters(
        blue, {"max_replication_slots": "2", "max_logical_replication_workers": "2"}
    ):
        started = time.monotonic()
        with deployment(lab, "too-few-workers") as identifier:
            assert lab.deployment(identifier)["Status"] == "PROVISIONING"
            failed = lab.wait_for_deployment(identifier, "INVALID_CONFIGURATION")
            assert time.monotonic() - started >= PROVISIONING_DELAY * 0.9
            failures = [
                m
                for m in deployment_messages(lab, identifier)
                if m.startswith("Creation of blue/green deployment failed because")
            ]
            assert len(failures) == 1
            assert "max_replication_slots is 2, less than 3" in failures[0]
            assert "max_logical_replication_workers is 2, less than 3" in failures[0]
            assert "max_wal_senders" not in failures[0]  # that one is large enough
            assert failed["StatusDetails"] == failures[0]
            assert blue_replication_objects(blue) == (set(), set())  # nothing was created


def test_synchronous_commit_off_applies_at_once_and_ends_the_creation_invalid_configuration(
    blue: Blue,
) -> None:
    lab = blue.lab
    with cluster_parameters(blue, {"synchronous_commit": "off"}, apply_method="immediate"):
        assert blue.show("synchronous_commit") == "off"  # dynamic: no reboot needed
        assert lab.writer_parameter_status() == "in-sync"
        with deployment(lab, "async-commit") as identifier:
            lab.wait_for_deployment(identifier, "INVALID_CONFIGURATION")
            messages = deployment_messages(lab, identifier)
            assert any("synchronous_commit is off; it must be on" in m for m in messages)
    assert blue.show("synchronous_commit") == "on"


# --- a deployment that replicates --------------------------------------------------------


def test_a_deployment_replicates_every_database_through_rds_named_objects(blue: Blue) -> None:
    lab = blue.lab
    marker = f"app_2 row {uuid.uuid4()}"
    with deployment(lab, "every-database") as identifier:
        available = lab.wait_for_deployment(identifier, "AVAILABLE")
        assert "Replication degraded" not in available["StatusDetails"]
        slots, publications = blue_replication_objects(blue)
        assert slots == RDS_SLOTS
        assert publications == {"rds_bg_pub"}
        with blue.connect("app_2") as conn:
            conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', %s)", [marker])
        green_id = available["Target"].rsplit(":", 1)[-1]
        with lab.connect_cluster(green_id, blue.password, "app_2") as green:
            assert green.execute("SELECT count(*) FROM customers").fetchone() == (50,)
            wait_for(
                lambda: green.execute(
                    "SELECT 1 FROM audit_log WHERE action = %s", [marker]
                ).fetchone(),
                REPLICATION_WAIT_S,
                what="the app_2 row reaching green",
            )
        assert any(
            m.startswith("Blue/green deployment tasks completed")
            for m in (deployment_messages(lab, identifier))
        )
    assert blue_replication_objects(blue) == (set(), set())  # deleting it removed them


def test_on_the_lab_an_update_on_a_keyless_table_of_blue_fails_once_a_deployment_exists(
    blue: Blue,
) -> None:
    """The reason a table without a primary key or replica identity is a preflight
    blocker: from the moment the deployment publishes it, PostgreSQL refuses UPDATE and
    DELETE on it on blue, production, until the deployment is gone."""
    lab = blue.lab
    with blue.connect("app_2") as conn:
        conn.execute("CREATE TABLE keyless (note text)")
        conn.execute("INSERT INTO keyless VALUES ('before')")
        assert conn.execute("UPDATE keyless SET note = 'updated before'").rowcount == 1
    try:
        with deployment(lab, "keyless") as identifier:
            lab.wait_for_deployment(identifier, "AVAILABLE")
            with blue.connect("app_2") as conn:
                with pytest.raises(
                    psycopg.errors.ObjectNotInPrerequisiteState, match="replica identity"
                ):
                    conn.execute("UPDATE keyless SET note = 'updated during'")
                with pytest.raises(
                    psycopg.errors.ObjectNotInPrerequisiteState, match="replica identity"
                ):
                    conn.execute("DELETE FROM keyless")
                conn.execute("INSERT INTO keyless VALUES ('inserted during')")  # needs no key
                updated = conn.execute("UPDATE audit_log SET actor = 'seed' WHERE actor = 'seed'")
                assert updated.rowcount == 30  # REPLICA IDENTITY FULL: the documented fix
        with blue.connect("app_2") as conn:
            assert conn.execute("UPDATE keyless SET note = 'updated after'").rowcount == 2
    finally:
        with blue.connect("app_2") as conn:
            conn.execute("DROP TABLE keyless")


def test_ddl_on_blue_degrades_replication_and_the_switchover_is_refused(blue: Blue) -> None:
    lab = blue.lab
    try:
        with deployment(lab, "ddl-on-blue") as identifier:
            lab.wait_for_deployment(identifier, "AVAILABLE")
            with blue.connect("app_2") as conn:
                conn.execute("ALTER TABLE customers ADD COLUMN nickname text")
            degraded = lab.deployment(identifier)
            assert degraded["Status"] == "AVAILABLE"  # the API has no status value for it
            details = degraded["StatusDetails"]
            assert details.startswith("Replication degraded: DDL on blue in database app_2")
            assert "Delete the blue/green deployment and create a new one." in details
            with pytest.raises(ClientError) as error:
                lab.rds.switchover_blue_green_deployment(
                    BlueGreenDeploymentIdentifier=identifier, SwitchoverTimeout=30
                )
            assert code_of(error) == "InvalidBlueGreenDeploymentStateFault"
            assert "Replication degraded" in message_of(error)
            assert lab.deployment(identifier)["Status"] == "AVAILABLE"
            assert lab.cluster_ids() == {CLUSTER_ID, degraded["Target"].rsplit(":", 1)[-1]}
    finally:
        with blue.connect("app_2") as conn:
            conn.execute("ALTER TABLE customers DROP COLUMN IF EXISTS nickname")


def test_a_large_object_created_on_blue_degrades_replication(blue: Blue) -> None:
    lab = blue.lab
    large_object = None
    try:
        with deployment(lab, "large-object") as identifier:
            lab.wait_for_deployment(identifier, "AVAILABLE")
            with blue.connect("app") as conn:
                large_object = conn.execute("SELECT lo_from_bytea(0, 'scan')").fetchone()[0]
            details = lab.deployment(identifier)["StatusDetails"]
            assert details.startswith("Replication degraded: a large object created or changed")
            assert "database app " in details
    finally:
        if large_object is not None:
            with blue.connect("app") as conn:
                conn.execute("SELECT lo_unlink(%s)", [large_object])


def test_grant_analyze_and_vacuum_on_blue_leave_replication_healthy(blue: Blue) -> None:
    lab = blue.lab
    try:
        with deployment(lab, "grant-on-blue") as identifier:
            lab.wait_for_deployment(identifier, "AVAILABLE")
            with blue.connect("app") as conn:
                conn.execute("GRANT SELECT ON customers TO PUBLIC")
                conn.execute("ANALYZE customers")
                conn.execute("VACUUM customers")
            details = lab.deployment(identifier)["StatusDetails"]
            assert details == "Blue/green deployment is ready for switchover"
    finally:
        with blue.connect("app") as conn:
            conn.execute("REVOKE SELECT ON customers FROM PUBLIC")


# --- last: the switchover, which this module's lab keeps --------------------------------


def test_the_switchover_carries_every_database_and_says_so_in_events(blue: Blue) -> None:
    lab = blue.lab
    marker = f"before switchover {uuid.uuid4()}"
    identifier = lab.create_deployment(name=unique("switch-all"))
    green_id = lab.wait_for_deployment(identifier, "AVAILABLE")["Target"].rsplit(":", 1)[-1]
    with blue.connect("app_2") as conn:
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', %s)", [marker])
    lab.rds.switchover_blue_green_deployment(
        BlueGreenDeploymentIdentifier=identifier, SwitchoverTimeout=60
    )
    lab.wait_for_deployment(identifier, "SWITCHOVER_COMPLETED", timeout=90)
    with blue.connect("app_2") as conn:  # the original endpoint: now green, PostgreSQL 16
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("16")
        assert conn.execute("SELECT 1 FROM audit_log WHERE action = %s", [marker]).fetchone()
    with blue.connect("app") as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (200,)
    messages = deployment_messages(lab, identifier)
    assert f"Switchover from {CLUSTER_ID} to {green_id} started." in messages
    assert "Switchover completed on blue/green deployment." in messages
    cluster_messages = [e["Message"] for e in lab.events("db-cluster", CLUSTER_ID)]
    assert (
        f"Switchover from DB cluster {CLUSTER_ID} to {green_id} completed. Renamed "
        f"{CLUSTER_ID} to {CLUSTER_ID}-old1 and {green_id} to {CLUSTER_ID}."
    ) in cluster_messages
    lab.rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=identifier)
    assert any(m == "Blue/green deployment deleted." for m in deployment_messages(lab, identifier))
