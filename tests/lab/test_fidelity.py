"""The lab behaves as AWS documents, seen from outside: boto3 and psycopg only.

Each test names the AWS behaviour it checks. Tests that leave the lab as
they found it share one lab (`shared_lab`); the Blue/Green scenarios consume
theirs, so each group starts its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lab.harness import (
    CLUSTER_ID,
    SOURCE_VERSION,
    TARGET_CLUSTER_PARAMETER_GROUP,
    TARGET_INSTANCE_PARAMETER_GROUP,
    TARGET_VERSION,
    RunningLab,
    new_password,
    wait_for,
)
from tests.support.labtools import checked_lab

OLD1 = f"{CLUSTER_ID}-old1"
PROVISIONING_DELAY = 3.0
REPLICATION_WAIT_S = 10.0
SWITCHOVER_FAILURE_WAIT_S = 45.0  # SwitchoverTimeout=30 plus the lab's rollback
# botocore's `max_attempts` counts retries; `total_max_attempts` counts the first try too.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def code_of(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


def major_of(conn: psycopg.Connection) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def insert_audit_row(conn: psycopg.Connection, action: str) -> None:
    conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', %s)", [action])


def has_audit_row(conn: psycopg.Connection, action: str) -> bool:
    found = conn.execute("SELECT 1 FROM audit_log WHERE action = %s", [action]).fetchone()
    return found is not None


def logs_in(lab: RunningLab, endpoint: str, port: int, password: str) -> bool:
    try:
        with lab.connect(endpoint, port, password) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def identifier_of(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def deployments(lab: RunningLab) -> list[dict[str, Any]]:
    return lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"]


# --- one shared lab: every test here leaves it as it found it ------------------


@pytest.fixture
def unmanaged(shared_lab: RunningLab) -> Iterator[str]:
    """The shared lab's master password turned self-managed; management is back on after."""
    password = shared_lab.unmanage_password()
    try:
        yield password
    finally:
        if "MasterUserSecret" not in shared_lab.cluster():
            shared_lab.manage_password()


def test_cluster_reader_and_instance_endpoints_reach_blue_with_the_managed_password(
    shared_lab: RunningLab,
) -> None:
    cluster = shared_lab.cluster()
    password = shared_lab.master_password()
    endpoints = [
        (cluster["Endpoint"], cluster["Port"]),
        (cluster["ReaderEndpoint"], cluster["Port"]),
    ]
    for member in cluster["DBClusterMembers"]:
        instance = shared_lab.instance(member["DBInstanceIdentifier"])
        endpoints.append((instance["Endpoint"]["Address"], instance["Endpoint"]["Port"]))
    assert len(endpoints) == 3
    for host, port in endpoints:
        with shared_lab.connect(host, port, password) as conn:
            assert major_of(conn) == shared_lab.info["versions"]["blue"]
            assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] > 0


def test_describe_db_engine_versions_lists_16_2_as_a_major_upgrade_target_of_15_4(
    shared_lab: RunningLab,
) -> None:
    versions = shared_lab.rds.describe_db_engine_versions(
        Engine="aurora-postgresql", EngineVersion=SOURCE_VERSION
    )["DBEngineVersions"]
    assert [v["EngineVersion"] for v in versions] == [SOURCE_VERSION]
    targets = {t["EngineVersion"]: t for t in versions[0]["ValidUpgradeTarget"]}
    assert TARGET_VERSION in targets
    assert targets[TARGET_VERSION]["IsMajorVersionUpgrade"] is True
    assert all(not t["IsMajorVersionUpgrade"] for v, t in targets.items() if v.startswith("15."))


def test_turning_password_management_off_sets_the_password_and_deletes_the_secret(
    shared_lab: RunningLab,
) -> None:
    cluster = shared_lab.cluster()
    old_secret = cluster["MasterUserSecret"]["SecretArn"]
    old_password = shared_lab.master_password()
    try:
        password = shared_lab.unmanage_password()
        assert "MasterUserSecret" not in shared_lab.cluster()
        assert logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], password)
        assert not logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], old_password)
        with pytest.raises(ClientError) as error:
            shared_lab.sm.get_secret_value(SecretId=old_secret)
        assert code_of(error) == "ResourceNotFoundException"
    finally:
        if "MasterUserSecret" not in shared_lab.cluster():
            shared_lab.manage_password()


def test_turning_password_management_on_creates_a_new_secret_whose_password_logs_in(
    shared_lab: RunningLab,
) -> None:
    cluster = shared_lab.cluster()
    old_secret = cluster["MasterUserSecret"]["SecretArn"]
    password = shared_lab.unmanage_password()

    new_secret = shared_lab.manage_password()

    assert new_secret != old_secret
    managed = shared_lab.master_password()
    assert managed != password
    assert logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], managed)
    assert not logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], password)


def test_modifying_only_the_master_password_changes_it(
    shared_lab: RunningLab, unmanaged: str
) -> None:
    cluster = shared_lab.cluster()
    changed = new_password()

    shared_lab.rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER_ID, MasterUserPassword=changed, ApplyImmediately=True
    )

    assert logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], changed)
    assert not logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], unmanaged)


def test_turning_password_management_off_without_a_password_is_refused(
    shared_lab: RunningLab,
) -> None:
    secret = shared_lab.cluster()["MasterUserSecret"]["SecretArn"]
    with pytest.raises(ClientError) as error:
        shared_lab.rds.modify_db_cluster(
            DBClusterIdentifier=CLUSTER_ID, ManageMasterUserPassword=False, ApplyImmediately=True
        )
    assert code_of(error) == "InvalidParameterCombination"
    assert shared_lab.cluster()["MasterUserSecret"]["SecretArn"] == secret


def test_create_deployment_is_refused_while_the_master_password_is_managed(
    shared_lab: RunningLab,
) -> None:
    with pytest.raises(ClientError) as error:
        shared_lab.create_deployment()
    assert code_of(error) == "SourceClusterNotSupportedFault"
    assert deployments(shared_lab) == []


@pytest.mark.parametrize("target_version", ["14.9", "15.2"], ids=["older-major", "downgrade"])
def test_create_deployment_is_refused_for_a_version_that_is_no_upgrade_target(
    shared_lab: RunningLab, unmanaged: str, target_version: str
) -> None:
    source = shared_lab.cluster()["DBClusterArn"]
    with pytest.raises(ClientError) as error:
        shared_lab.rds.create_blue_green_deployment(
            BlueGreenDeploymentName="not-an-upgrade",
            Source=source,
            TargetEngineVersion=target_version,
        )
    assert code_of(error) == "InvalidParameterCombination"
    assert deployments(shared_lab) == []


@pytest.mark.parametrize(
    "groups",
    [
        {
            "TargetDBClusterParameterGroupName": "test-aurora-postgresql15-cluster",
            "TargetDBParameterGroupName": TARGET_INSTANCE_PARAMETER_GROUP,
        },
        {
            "TargetDBClusterParameterGroupName": TARGET_CLUSTER_PARAMETER_GROUP,
            "TargetDBParameterGroupName": "test-aurora-postgresql15-instance",
        },
    ],
    ids=["cluster-group", "instance-group"],
)
def test_create_deployment_is_refused_with_a_15_family_target_parameter_group(
    shared_lab: RunningLab, unmanaged: str, groups: dict[str, str]
) -> None:
    with pytest.raises(ClientError) as error:
        shared_lab.create_deployment(name="wrong-family", **groups)
    assert code_of(error) == "InvalidParameterCombination"
    assert deployments(shared_lab) == []


def test_armed_throttling_fails_that_many_calls_with_throttling_then_lets_calls_through(
    shared_lab: RunningLab,
) -> None:
    rds = shared_lab.client("rds", NO_RETRIES)
    shared_lab.arm_fault("DescribeDBClusters", "throttle", count=2)
    try:
        codes = []
        for _ in range(2):
            with pytest.raises(ClientError) as error:
                rds.describe_db_clusters()
            codes.append(code_of(error))
        assert codes == ["Throttling", "Throttling"]
        assert rds.describe_db_clusters()["DBClusters"][0]["DBClusterIdentifier"] == CLUSTER_ID
    finally:
        shared_lab.clear_faults()


def test_a_500_fault_answers_http_500_internal_failure_once(shared_lab: RunningLab) -> None:
    rds = shared_lab.client("rds", NO_RETRIES)
    shared_lab.arm_fault("DescribeDBClusters", "500", count=1)
    try:
        with pytest.raises(ClientError) as error:
            rds.describe_db_clusters()
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert code_of(error) == "InternalFailure"
        assert rds.describe_db_clusters()["DBClusters"]
    finally:
        shared_lab.clear_faults()


def test_a_throttled_json_protocol_call_gets_throttling_exception(shared_lab: RunningLab) -> None:
    ssm = shared_lab.client("ssm", NO_RETRIES)
    shared_lab.arm_fault("GetParameter", "throttle", count=1)
    try:
        with pytest.raises(ClientError) as error:
            ssm.get_parameter(Name="jdbc_url")
        assert code_of(error) == "ThrottlingException"
        assert ssm.get_parameter(Name="jdbc_url")["Parameter"]["Value"]
    finally:
        shared_lab.clear_faults()


def test_the_call_log_records_every_call_with_its_action_status_and_error(
    shared_lab: RunningLab,
) -> None:
    since = time.time()
    rds = shared_lab.client("rds", NO_RETRIES)
    shared_lab.arm_fault("DescribeDBInstances", "throttle", count=1)
    try:
        with pytest.raises(ClientError):
            rds.describe_db_instances()
    finally:
        shared_lab.clear_faults()
    rds.describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)
    with pytest.raises(ClientError):
        rds.describe_db_clusters(DBClusterIdentifier="no-such-cluster")
    shared_lab.ssm.get_parameter(Name="jdbc_url")
    arn = shared_lab.cluster()["DBClusterArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "checked", "Value": "yes"}])

    # six calls, each logged once its answer has been sent; sequential calls log in order
    entries = shared_lab.calls(since, at_least=6)
    seen = [(e["service"], e["action"], e["status"], e.get("error")) for e in entries]
    assert sorted(seen, key=str) == sorted(
        [
            ("rds", "DescribeDBInstances", 400, "injected throttle"),
            ("rds", "DescribeDBClusters", 200, None),
            ("rds", "DescribeDBClusters", 404, "DBClusterNotFoundFault"),
            ("ssm", "GetParameter", 200, None),
            ("rds", "DescribeDBClusters", 200, None),
            ("rds", "AddTagsToResource", 200, None),
        ],
        key=str,
    )
    assert {"DBClusterIdentifier": "no-such-cluster"} in [e["params"] for e in entries]
    assert [e["action"] for e in shared_lab.mutating_calls(since, 6)] == ["AddTagsToResource"]
    served = [e for e in shared_lab.control("GET", "/_lab/calls") if e["time"] >= since]
    assert served == entries


def test_a_call_is_dated_when_it_arrives_so_no_earlier_call_counts_as_after_since(
    shared_lab: RunningLab,
) -> None:
    arn = shared_lab.cluster()["DBClusterArn"]
    rds = shared_lab.client("rds", NO_RETRIES)
    late = []
    for round_ in range(50):  # the entry is written after the answer: give the race a chance
        before = time.time()
        rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "round", "Value": str(round_)}])
        since = time.time()
        shared_lab.calls(before, at_least=1)
        late += shared_lab.mutating_calls(since)
    assert late == []


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]


def _holds(path: Path, needle: bytes) -> bool:
    try:
        return needle in path.read_bytes()
    except FileNotFoundError:  # PostgreSQL removes temporary and recycled files as it runs
        return False


def test_a_master_password_is_redacted_in_the_call_log_and_written_to_no_file(
    shared_lab: RunningLab, unmanaged: str
) -> None:
    changed = new_password()
    since = time.time()
    shared_lab.rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER_ID, MasterUserPassword=changed, ApplyImmediately=True
    )
    cluster = shared_lab.cluster()
    with shared_lab.connect(cluster["Endpoint"], cluster["Port"], changed) as conn:
        conn.execute("SELECT 1")
    assert not logs_in(shared_lab, cluster["Endpoint"], cluster["Port"], changed + "-wrong")

    modify = [
        e for e in shared_lab.mutating_calls(since, at_least=1) if e["action"] == "ModifyDBCluster"
    ]
    assert len(modify) == 1
    assert modify[0]["params"]["MasterUserPassword"] == "<redacted>"

    files = _files_under(shared_lab.dir)
    for server in shared_lab.info["servers"].values():
        files += _files_under(Path(server["datadir"]))
    names = {path.name for path in files}
    assert {"calls.jsonl", "aws-api.log", "lab.json", "env", "server.log"} <= names
    for secret in (changed, unmanaged):
        leaks = [str(path) for path in files if _holds(path, secret.encode())]
        assert leaks == []


# --- a deployment from creation to deletion (two instances) ---------------------


@dataclass
class Scenario:
    """One Blue/Green deployment of a 2-instance lab, driven step by step.

    Creation is observed as it happens (statuses, Tasks, a switchover attempt
    while PROVISIONING); later steps run once, on first request, so every test
    gets the state it needs whichever test asks first.
    """

    lab: RunningLab
    password: str
    before: dict[str, Any]
    deployment_id: str = ""
    observed: list[tuple[float, str, tuple[str, ...]]] = field(default_factory=list)
    switchover_while_provisioning: str = "not attempted"
    _switched: bool = False
    _deleted: bool = False

    def create(self) -> None:
        started = time.monotonic()
        self.deployment_id = self.lab.create_deployment()
        deadline = started + 60
        while time.monotonic() < deadline:
            deployment = self.lab.deployment(self.deployment_id)
            tasks = tuple(task["Status"] for task in deployment.get("Tasks", []))
            self.observed.append((time.monotonic() - started, deployment["Status"], tasks))
            if deployment["Status"] != "PROVISIONING":
                return
            if self.switchover_while_provisioning == "not attempted":
                try:
                    self.lab.rds.switchover_blue_green_deployment(
                        BlueGreenDeploymentIdentifier=self.deployment_id, SwitchoverTimeout=60
                    )
                    self.switchover_while_provisioning = "accepted"
                except ClientError as error:
                    self.switchover_while_provisioning = error.response["Error"]["Code"]
            time.sleep(0.1)

    @property
    def deployment(self) -> dict[str, Any]:
        return self.lab.deployment(self.deployment_id)

    def green_cluster_id(self) -> str:
        return identifier_of(self.deployment["Target"])

    def switched(self) -> None:
        if not self._switched:
            self.lab.rds.switchover_blue_green_deployment(
                BlueGreenDeploymentIdentifier=self.deployment_id, SwitchoverTimeout=60
            )
            self.lab.wait_for_deployment(self.deployment_id, "SWITCHOVER_COMPLETED", timeout=90)
            self._switched = True

    def deleted(self) -> None:
        self.switched()
        if not self._deleted:
            self.lab.rds.delete_blue_green_deployment(
                BlueGreenDeploymentIdentifier=self.deployment_id
            )
            self._deleted = True


@pytest.fixture(scope="class")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with checked_lab(tmp_path_factory.mktemp("bg-lab"), instances=2) as lab:
        password = lab.unmanage_password()
        cluster = lab.cluster()
        before = {
            "endpoint": (cluster["Endpoint"], cluster["Port"]),
            "resource_id": cluster["DbClusterResourceId"],
            "instances": {
                member["DBInstanceIdentifier"]: lab.instance(member["DBInstanceIdentifier"])[
                    "Endpoint"
                ]
                for member in cluster["DBClusterMembers"]
            },
        }
        lab.set_provisioning_delay(PROVISIONING_DELAY)
        scenario = Scenario(lab, password, before)
        scenario.create()
        yield scenario


class TestDeployment:
    def test_deployment_stays_provisioning_with_tasks_progressing_then_becomes_available(
        self, scenario: Scenario
    ) -> None:
        statuses = [status for _, status, _ in scenario.observed]
        assert statuses[0] == "PROVISIONING"
        assert statuses[-1] == "AVAILABLE", scenario.deployment.get("StatusDetails")
        provisioning_tasks = [
            tasks for _, status, tasks in scenario.observed if status == "PROVISIONING"
        ]
        completed = [tasks.count("COMPLETED") for tasks in provisioning_tasks]
        assert completed == sorted(completed), "Tasks went backwards"
        assert len(set(provisioning_tasks)) >= 3, "Tasks did not progress while PROVISIONING"
        assert all(task != "COMPLETED" for task in provisioning_tasks[0])
        assert set(scenario.observed[-1][2]) == {"COMPLETED"}
        became_available = scenario.observed[-1][0]
        assert became_available >= PROVISIONING_DELAY * 0.9

    def test_switchover_is_refused_while_the_deployment_is_provisioning(
        self, scenario: Scenario
    ) -> None:
        assert scenario.switchover_while_provisioning == "InvalidBlueGreenDeploymentStateFault"

    def test_green_endpoints_reach_postgresql_16_read_only_with_blues_rows(
        self, scenario: Scenario
    ) -> None:
        lab = scenario.lab
        green = lab.cluster(scenario.green_cluster_id())
        assert green["EngineVersion"] == TARGET_VERSION
        endpoints = [(green["Endpoint"], green["Port"])]
        for member in green["DBClusterMembers"]:
            endpoint = lab.instance(member["DBInstanceIdentifier"])["Endpoint"]
            endpoints.append((endpoint["Address"], endpoint["Port"]))
        assert len(endpoints) == 3
        with lab.connect(*scenario.before["endpoint"], scenario.password) as blue:
            blue_orders = blue.execute("SELECT count(*), sum(quantity) FROM orders").fetchone()
        for host, port in endpoints:
            with lab.connect(host, port, scenario.password) as conn:
                assert major_of(conn) == 16
                assert conn.execute("SELECT count(*), sum(quantity) FROM orders").fetchone() == (
                    blue_orders
                )
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    insert_audit_row(conn, "written on green")

    def test_a_row_inserted_on_blue_appears_on_green(self, scenario: Scenario) -> None:
        lab = scenario.lab
        action = f"replicated {uuid.uuid4()}"
        with lab.connect(*scenario.before["endpoint"], scenario.password) as blue:
            insert_audit_row(blue, action)
        with lab.connect_cluster(scenario.green_cluster_id(), scenario.password) as green:
            wait_for(
                lambda: has_audit_row(green, action),
                REPLICATION_WAIT_S,
                what="the row reaching green",
            )

    def test_switchover_details_hold_one_pair_per_cluster_and_per_instance(
        self, scenario: Scenario
    ) -> None:
        lab = scenario.lab
        green_id = scenario.green_cluster_id()
        details = scenario.deployment["SwitchoverDetails"]
        pairs = {
            (identifier_of(d["SourceMember"]), identifier_of(d["TargetMember"])) for d in details
        }
        assert len(details) == 3
        assert {source for source, _ in pairs} == {CLUSTER_ID, "rds-1", "rds-2"}
        assert (CLUSTER_ID, green_id) in pairs
        green_members = lab.member_ids(green_id)
        assert {target for source, target in pairs if source != CLUSTER_ID} == green_members
        for source, target in pairs:
            if source != CLUSTER_ID:
                assert target.startswith(f"{source}-green-")
        assert {d["Status"] for d in details} == {"AVAILABLE"}

    def test_switchover_renames_blue_to_old1_and_green_to_the_original_names(
        self, scenario: Scenario
    ) -> None:
        scenario.switched()
        lab = scenario.lab
        assert lab.cluster_ids() == {CLUSTER_ID, OLD1}
        old, new = lab.cluster(OLD1), lab.cluster(CLUSTER_ID)
        assert old["EngineVersion"] == SOURCE_VERSION
        assert new["EngineVersion"] == TARGET_VERSION
        assert lab.member_ids(OLD1) == {"rds-1-old1", "rds-2-old1"}
        assert lab.member_ids(CLUSTER_ID) == {"rds-1", "rds-2"}
        for identifier, cluster in [("rds-1", CLUSTER_ID), ("rds-1-old1", OLD1)]:
            assert lab.instance(identifier)["DBClusterIdentifier"] == cluster
        details = scenario.deployment["SwitchoverDetails"]
        assert {d["Status"] for d in details} == {"SWITCHOVER_COMPLETED"}
        assert {identifier_of(d["SourceMember"]) for d in details} == {
            OLD1,
            "rds-1-old1",
            "rds-2-old1",
        }

    def test_resource_ids_stay_with_their_clusters_across_the_switchover(
        self, scenario: Scenario
    ) -> None:
        scenario.switched()
        lab = scenario.lab
        assert lab.cluster(CLUSTER_ID)["DbClusterResourceId"] != scenario.before["resource_id"]
        assert lab.cluster(OLD1)["DbClusterResourceId"] == scenario.before["resource_id"]

    def test_the_original_endpoints_reach_green_postgresql_16_and_take_writes(
        self, scenario: Scenario
    ) -> None:
        scenario.switched()
        lab = scenario.lab
        action = f"after switchover {uuid.uuid4()}"
        with lab.connect(*scenario.before["endpoint"], scenario.password) as conn:
            assert major_of(conn) == 16
            insert_audit_row(conn, action)
            assert has_audit_row(conn, action)
        for endpoint in scenario.before["instances"].values():
            with lab.connect(endpoint["Address"], endpoint["Port"], scenario.password) as conn:
                assert major_of(conn) == 16

    def test_the_old1_endpoint_reaches_the_old_blue_read_only(self, scenario: Scenario) -> None:
        scenario.switched()
        lab = scenario.lab
        old = lab.cluster(OLD1)
        assert (old["Endpoint"], old["Port"]) != scenario.before["endpoint"]
        with lab.connect(old["Endpoint"], old["Port"], scenario.password) as conn:
            assert major_of(conn) == lab.info["versions"]["blue"]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                insert_audit_row(conn, "written on old blue")

    def test_a_second_switchover_is_refused(self, scenario: Scenario) -> None:
        scenario.switched()
        with pytest.raises(ClientError) as error:
            scenario.lab.rds.switchover_blue_green_deployment(
                BlueGreenDeploymentIdentifier=scenario.deployment_id
            )
        assert code_of(error) == "InvalidBlueGreenDeploymentStateFault"

    def test_delete_target_after_a_completed_switchover_is_refused(
        self, scenario: Scenario
    ) -> None:
        scenario.switched()
        lab = scenario.lab
        with pytest.raises(ClientError) as error:
            lab.rds.delete_blue_green_deployment(
                BlueGreenDeploymentIdentifier=scenario.deployment_id, DeleteTarget=True
            )
        assert code_of(error) == "InvalidParameterCombination"
        assert scenario.deployment["Status"] == "SWITCHOVER_COMPLETED"
        assert lab.cluster_ids() == {CLUSTER_ID, OLD1}

    def test_deleting_the_deployment_keeps_both_clusters_and_lifts_old_blues_read_only(
        self, scenario: Scenario
    ) -> None:
        scenario.deleted()
        lab = scenario.lab
        with pytest.raises(ClientError) as error:
            lab.deployment(scenario.deployment_id)
        assert code_of(error) == "BlueGreenDeploymentNotFoundFault"
        assert lab.cluster_ids() == {CLUSTER_ID, OLD1}
        assert lab.instance_ids() == {"rds-1", "rds-2", "rds-1-old1", "rds-2-old1"}
        action = f"old blue writable {uuid.uuid4()}"
        with lab.connect_cluster(OLD1, scenario.password) as conn:
            insert_audit_row(conn, action)
            assert has_audit_row(conn, action)

    def test_the_old_instances_then_the_old_cluster_delete_with_a_final_snapshot(
        self, scenario: Scenario
    ) -> None:
        scenario.deleted()
        lab = scenario.lab
        for identifier in ("rds-1-old1", "rds-2-old1"):
            lab.rds.delete_db_instance(DBInstanceIdentifier=identifier)
        lab.rds.delete_db_cluster(
            DBClusterIdentifier=OLD1, FinalDBSnapshotIdentifier="provisioning-rds-old1-final"
        )
        snapshots = lab.rds.describe_db_cluster_snapshots(
            DBClusterSnapshotIdentifier="provisioning-rds-old1-final"
        )["DBClusterSnapshots"]
        assert [(s["DBClusterIdentifier"], s["EngineVersion"]) for s in snapshots] == [
            (OLD1, SOURCE_VERSION)
        ]
        assert lab.cluster_ids() == {CLUSTER_ID}
        assert lab.instance_ids() == {"rds-1", "rds-2"}
        with lab.connect(*scenario.before["endpoint"], scenario.password) as conn:
            assert major_of(conn) == 16


# --- a switchover that cannot finish ---------------------------------------------


@dataclass
class Available:
    lab: RunningLab
    password: str
    deployment_id: str
    resource_id: str


@pytest.fixture(scope="class")
def available(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Available]:
    with checked_lab(tmp_path_factory.mktemp("failing-lab")) as lab:
        password = lab.unmanage_password()
        deployment_id = lab.create_deployment()
        lab.wait_for_deployment(deployment_id, "AVAILABLE")
        yield Available(lab, password, deployment_id, lab.cluster()["DbClusterResourceId"])


class TestSwitchoverFailure:
    def test_a_switchover_timeout_under_30_seconds_is_refused(self, available: Available) -> None:
        lab = available.lab
        # botocore refuses 10 before sending it; the lab must refuse it on its own too
        rds = lab.client("rds", Config(parameter_validation=False))
        with pytest.raises(ClientError) as error:
            rds.switchover_blue_green_deployment(
                BlueGreenDeploymentIdentifier=available.deployment_id, SwitchoverTimeout=10
            )
        assert code_of(error) == "InvalidParameterValue"
        assert lab.deployment(available.deployment_id)["Status"] == "AVAILABLE"

    def test_an_open_write_on_blue_fails_the_switchover_and_nothing_is_renamed(
        self, available: Available
    ) -> None:
        lab = available.lab
        green_id = identifier_of(lab.deployment(available.deployment_id)["Target"])
        with lab.connect_cluster(CLUSTER_ID, available.password) as blocker:
            blocker.autocommit = False
            insert_audit_row(blocker, "never committed")  # BEGIN + INSERT, left open

            lab.rds.switchover_blue_green_deployment(
                BlueGreenDeploymentIdentifier=available.deployment_id, SwitchoverTimeout=30
            )
            failed = lab.wait_for_deployment(
                available.deployment_id, "SWITCHOVER_FAILED", timeout=SWITCHOVER_FAILURE_WAIT_S
            )
            blocker.rollback()

        assert {d["Status"] for d in failed["SwitchoverDetails"]} == {"SWITCHOVER_FAILED"}
        assert lab.cluster_ids() == {CLUSTER_ID, green_id}
        assert not any(i.endswith("-old1") for i in lab.instance_ids())
        blue = lab.cluster(CLUSTER_ID)
        assert blue["EngineVersion"] == SOURCE_VERSION
        assert blue["DbClusterResourceId"] == available.resource_id
        assert lab.member_ids(CLUSTER_ID) == {"rds-1"}
        action = f"blue writable again {uuid.uuid4()}"
        with lab.connect_cluster(CLUSTER_ID, available.password) as conn:
            assert major_of(conn) == lab.info["versions"]["blue"]
            insert_audit_row(conn, action)
            assert has_audit_row(conn, action)


# --- deleting a deployment before any switchover ------------------------------------


def test_delete_target_before_switchover_removes_green_and_leaves_blue_untouched(
    start_lab: Callable[..., RunningLab],
) -> None:
    lab = start_lab()
    password = lab.unmanage_password()
    blue_before = lab.cluster()
    deployment_id = lab.create_deployment()
    deployment = lab.wait_for_deployment(deployment_id, "AVAILABLE")
    green_id = identifier_of(deployment["Target"])
    green = lab.cluster(green_id)
    assert lab.member_ids(green_id)

    lab.rds.delete_blue_green_deployment(
        BlueGreenDeploymentIdentifier=deployment_id, DeleteTarget=True
    )

    with pytest.raises(ClientError) as error:
        lab.deployment(deployment_id)
    assert code_of(error) == "BlueGreenDeploymentNotFoundFault"
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert lab.instance_ids() == {"rds-1"}
    assert not logs_in(lab, green["Endpoint"], green["Port"], password)  # its name is gone
    blue = lab.cluster()
    for key in ("DbClusterResourceId", "EngineVersion", "Endpoint", "Port"):
        assert blue[key] == blue_before[key]
    action = f"blue after delete {uuid.uuid4()}"
    with lab.connect(blue["Endpoint"], blue["Port"], password) as conn:
        assert major_of(conn) == lab.info["versions"]["blue"]
        insert_audit_row(conn, action)
        assert has_audit_row(conn, action)
