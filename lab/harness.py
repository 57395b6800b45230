"""Drive a running lab from Python, as a client would: for the tests and the benchmarks.

`running_lab(dir)` starts a lab with `lab.control.up`, yields a `RunningLab` and always
stops it with `lab.control.down`. A `RunningLab` talks to the lab only from the outside:
boto3 clients pointed at it (explicit endpoint, region and credentials; the process
environment is never read or changed), the lab's control API (`/_lab/...`: faults,
provisioning delay), its call log, and psycopg sessions to the endpoints AWS reports.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import boto3
import psycopg
from botocore.config import Config

from lab import control, topology
from lab.fidelity.call_log import mutating_calls, read_call_log

# What `lab up` creates (lab.topology), named for those who drive it.
CLUSTER_ID = topology.CLUSTER_ID
SOURCE_CLUSTER_PARAMETER_GROUP, SOURCE_INSTANCE_PARAMETER_GROUP = topology.PARAMETER_GROUPS[15]
MASTER_USERNAME = topology.MASTER_USERNAME
SOURCE_VERSION = topology.SOURCE_VERSION
TARGET_VERSION = topology.TARGET_VERSION
TARGET_CLUSTER_PARAMETER_GROUP, TARGET_INSTANCE_PARAMETER_GROUP = topology.PARAMETER_GROUPS[16]
CONNECT_TIMEOUT_S = 5
CALL_LOG_WAIT_S = 5.0
CONTROL_TIMEOUT_S = 10
# Statuses after which a Blue/Green deployment changes no more by itself.
TERMINAL_DEPLOYMENT_STATUSES = frozenset(
    {"AVAILABLE", "SWITCHOVER_COMPLETED", "SWITCHOVER_FAILED", "INVALID_CONFIGURATION"}
)

T = TypeVar("T")
# The services the lab's topology and the flow call, which the lab's AWS API answers.
Service = Literal["rds", "secretsmanager", "ssm", "ec2", "iam", "sts"]


class PasswordNotManaged(Exception):
    """The cluster's master password is not in Secrets Manager: no secret to read."""


class LabAlreadyRunning(Exception):
    """`running_lab` was pointed at a directory where a lab already runs."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy and return that.

    Raises AssertionError naming `what` after `timeout` seconds, so that a test waiting
    on the lab fails (rather than errors) when the lab never gets there.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(interval)


def new_password() -> str:
    """A password valid for RDS and unique enough to grep for."""
    return f"Lab-{secrets.token_hex(12)}"


@dataclass
class RunningLab:
    """A running lab, seen from the outside: `info` is what `lab up` recorded."""

    info: dict[str, Any]
    dir: Path
    env: dict[str, str] = field(init=False)
    # boto3 clients are built per service name at run time; like the rest of the lab,
    # their calls are read as plain dictionaries.
    rds: Any = field(init=False)
    sm: Any = field(init=False)
    ssm: Any = field(init=False)

    def __post_init__(self) -> None:
        self.env = control.env_dict(self.info)
        self.rds = self.client("rds")
        self.sm = self.client("secretsmanager")
        self.ssm = self.client("ssm")

    # --- AWS API ------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    def client(self, service: Service, config: Config | None = None) -> Any:
        """A boto3 client for `service` at this lab, built without reading os.environ."""
        session = boto3.session.Session(
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_REGION"],
        )
        return session.client(service, endpoint_url=self.endpoint_url, config=config)

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the lab's control API (`/_lab/...`) and return its JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.endpoint_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")

    def arm_fault(
        self, action: str, kind: str = "throttle", count: int = 1, probability: float = 1.0
    ) -> None:
        """Make the lab fail the next `count` calls of `action` with `kind`."""
        self.control(
            "POST",
            "/_lab/faults",
            {"action": action, "kind": kind, "count": count, "probability": probability},
        )

    def clear_faults(self) -> None:
        self.control("DELETE", "/_lab/faults")

    def set_provisioning_delay(self, seconds: float) -> None:
        self.control("POST", "/_lab/settings", {"provisioning_delay": seconds})

    def calls(self, since: float = 0.0, at_least: int = 0) -> list[dict[str, Any]]:
        """The AWS calls the lab answered (after `since`), from its call log.

        The lab records a call once its response has been sent, so the entry of
        a call that just returned may lag a moment behind: `at_least` waits
        (bounded) until that many entries are there.
        """

        deadline = time.monotonic() + CALL_LOG_WAIT_S
        while True:
            found = [e for e in read_call_log(self.dir) if e["time"] >= since]
            if len(found) >= at_least:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the call log holds {len(found)} entries, not {at_least}, "
                    f"{CALL_LOG_WAIT_S} s after the calls returned"
                )
            time.sleep(0.02)

    def mutating_calls(self, since: float = 0.0, at_least: int = 0) -> list[dict[str, Any]]:
        """The calls after `since` that change AWS state; `at_least` as in `calls`."""
        return mutating_calls(self.calls(since, at_least), since)

    def cluster(self, identifier: str = CLUSTER_ID) -> dict[str, Any]:
        clusters: list[dict[str, Any]] = self.rds.describe_db_clusters(
            DBClusterIdentifier=identifier
        )["DBClusters"]
        return clusters[0]

    def instance(self, identifier: str) -> dict[str, Any]:
        instances: list[dict[str, Any]] = self.rds.describe_db_instances(
            DBInstanceIdentifier=identifier
        )["DBInstances"]
        return instances[0]

    def cluster_ids(self) -> set[str]:
        return {c["DBClusterIdentifier"] for c in self.rds.describe_db_clusters()["DBClusters"]}

    def instance_ids(self) -> set[str]:
        return {i["DBInstanceIdentifier"] for i in self.rds.describe_db_instances()["DBInstances"]}

    def member_ids(self, cluster_identifier: str) -> set[str]:
        members = self.cluster(cluster_identifier)["DBClusterMembers"]
        return {m["DBInstanceIdentifier"] for m in members}

    @property
    def databases(self) -> list[str]:
        """The application databases `lab up` seeded on blue (`app`, `app_2`, …)."""
        seeded: list[str] = self.info.get("databases") or [self.info.get("dbname", "app")]
        return seeded

    def writer_parameter_status(self, cluster_identifier: str = CLUSTER_ID) -> str:
        """The writer's DBClusterParameterGroupStatus (`in-sync`, `pending-reboot`)."""
        members = self.cluster(cluster_identifier)["DBClusterMembers"]
        status: str = next(m for m in members if m["IsClusterWriter"])[
            "DBClusterParameterGroupStatus"
        ]
        return status

    def writer_id(self, cluster_identifier: str = CLUSTER_ID) -> str:
        members = self.cluster(cluster_identifier)["DBClusterMembers"]
        writer: str = next(m for m in members if m["IsClusterWriter"])["DBInstanceIdentifier"]
        return writer

    def set_cluster_parameters(
        self,
        parameters: dict[str, str],
        apply_method: str = "pending-reboot",
        group: str = SOURCE_CLUSTER_PARAMETER_GROUP,
    ) -> None:
        """ModifyDBClusterParameterGroup of `group` (blue's, by default) with `parameters`."""
        self.rds.modify_db_cluster_parameter_group(
            DBClusterParameterGroupName=group,
            Parameters=[
                {"ParameterName": name, "ParameterValue": value, "ApplyMethod": apply_method}
                for name, value in parameters.items()
            ],
        )

    def reboot_writer(self, cluster_identifier: str = CLUSTER_ID) -> None:
        """RebootDBInstance of the cluster's writer: its parameter group applies."""
        self.rds.reboot_db_instance(DBInstanceIdentifier=self.writer_id(cluster_identifier))

    def events(self, source_type: str, identifier: str) -> list[dict[str, Any]]:
        """DescribeEvents of one source (`blue-green-deployment`, `db-cluster`, …)."""
        found: list[dict[str, Any]] = self.rds.describe_events(
            SourceType=source_type, SourceIdentifier=identifier
        )["Events"]
        return found

    def create_cluster(
        self, identifier: str, engine_version: str, password: str, instances: int = 1
    ) -> dict[str, Any]:
        """A further cluster at `engine_version` (with `instances` instances), for a test.

        The lab plays it with the same blue PostgreSQL server as its first cluster, whose
        master role is shared: give the first cluster's master password, the one that
        logs in through either cluster's endpoints.
        """
        self.rds.create_db_cluster(
            DBClusterIdentifier=identifier,
            Engine="aurora-postgresql",
            EngineVersion=engine_version,
            EngineMode="provisioned",
            MasterUsername=MASTER_USERNAME,
            MasterUserPassword=password,
            DBSubnetGroupName=topology.SUBNET_GROUP,
            DBClusterParameterGroupName=SOURCE_CLUSTER_PARAMETER_GROUP,
        )
        for index in range(instances):
            self.rds.create_db_instance(
                DBInstanceIdentifier=f"{identifier}-{index + 1}",
                DBClusterIdentifier=identifier,
                DBInstanceClass="db.serverless",
                Engine="aurora-postgresql",
                EngineVersion=engine_version,
                DBParameterGroupName=SOURCE_INSTANCE_PARAMETER_GROUP,
            )
        return self.cluster(identifier)

    def deployment(self, identifier: str) -> dict[str, Any]:
        deployments: list[dict[str, Any]] = self.rds.describe_blue_green_deployments(
            BlueGreenDeploymentIdentifier=identifier
        )["BlueGreenDeployments"]
        return deployments[0]

    # --- passwords ----------------------------------------------------------

    def master_password(self, cluster_identifier: str = CLUSTER_ID) -> str:
        """The password in the cluster's managed secret; PasswordNotManaged when there is none."""
        secret = self.cluster(cluster_identifier).get("MasterUserSecret")
        if not secret:
            raise PasswordNotManaged(f"{cluster_identifier} has no managed master password")
        value = self.sm.get_secret_value(SecretId=secret["SecretArn"])["SecretString"]
        password: str = json.loads(value)["password"]
        return password

    def unmanage_password(self, password: str | None = None, cluster: str = CLUSTER_ID) -> str:
        """Turn password management off with a password of ours; return that password."""
        password = password or new_password()
        self.rds.modify_db_cluster(
            DBClusterIdentifier=cluster,
            ManageMasterUserPassword=False,
            MasterUserPassword=password,
            ApplyImmediately=True,
        )
        return password

    def manage_password(self, cluster: str = CLUSTER_ID) -> str:
        """Turn password management on; return the new secret's ARN."""
        self.rds.modify_db_cluster(
            DBClusterIdentifier=cluster, ManageMasterUserPassword=True, ApplyImmediately=True
        )
        arn: str = self.cluster(cluster)["MasterUserSecret"]["SecretArn"]
        return arn

    def protect(self, on: bool = True, cluster: str = CLUSTER_ID) -> None:
        """Turn the cluster's deletion protection on (or off), as production has it."""
        self.rds.modify_db_cluster(
            DBClusterIdentifier=cluster, DeletionProtection=on, ApplyImmediately=True
        )

    def is_protected(self, cluster: str = CLUSTER_ID) -> bool:
        return bool(self.cluster(cluster).get("DeletionProtection"))

    # --- databases ----------------------------------------------------------

    def connect(
        self,
        endpoint: str,
        port: int,
        password: str,
        dbname: str = "app",
        user: str = MASTER_USERNAME,
        autocommit: bool = True,
    ) -> psycopg.Connection[Any]:
        """A psycopg session to an endpoint the lab reported, as the master user."""
        return psycopg.connect(
            host=endpoint,
            port=port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=CONNECT_TIMEOUT_S,
            autocommit=autocommit,
        )

    def connect_cluster(
        self, cluster_identifier: str, password: str, dbname: str = "app"
    ) -> psycopg.Connection[Any]:
        """A psycopg session to the cluster's writer endpoint, as the master user."""
        cluster = self.cluster(cluster_identifier)
        return self.connect(cluster["Endpoint"], cluster["Port"], password, dbname)

    # --- Blue/Green builders --------------------------------------------------

    def create_deployment(
        self,
        name: str = "upgrade-to-16",
        cluster: str = CLUSTER_ID,
        target_version: str = TARGET_VERSION,
        **extra: Any,
    ) -> str:
        """CreateBlueGreenDeployment of `cluster` to `target_version`; return its identifier."""
        params = {
            "BlueGreenDeploymentName": name,
            "Source": self.cluster(cluster)["DBClusterArn"],
            "TargetEngineVersion": target_version,
            "TargetDBClusterParameterGroupName": TARGET_CLUSTER_PARAMETER_GROUP,
            "TargetDBParameterGroupName": TARGET_INSTANCE_PARAMETER_GROUP,
            **extra,
        }
        response = self.rds.create_blue_green_deployment(**params)
        identifier: str = response["BlueGreenDeployment"]["BlueGreenDeploymentIdentifier"]
        return identifier

    def wait_for_deployment(
        self, identifier: str, status: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the deployment until it has `status`; fail early on a terminal other status."""

        def reached() -> dict[str, Any] | None:
            deployment = self.deployment(identifier)
            if deployment["Status"] == status:
                return deployment
            if deployment["Status"] in TERMINAL_DEPLOYMENT_STATUSES - {status, "AVAILABLE"}:
                raise AssertionError(
                    f"deployment {identifier} is {deployment['Status']}, waiting for {status}: "
                    f"{deployment.get('StatusDetails')}"
                )
            return None

        return wait_for(reached, timeout, what=f"deployment {identifier} {status}")


@contextmanager
def running_lab(
    lab_dir: Path, instances: int = 1, provisioning_delay: float = 0.0, databases: int = 1
) -> Iterator[RunningLab]:
    """A lab started in `lab_dir` for the duration of the block (with `databases`
    application databases), stopped on the way out whatever happens. Raises
    LabAlreadyRunning (and stops that lab) when one already ran there: a lab nobody used
    is the point."""
    lab_dir = Path(lab_dir)
    try:
        info = control.up(lab_dir, instances, provisioning_delay, databases=databases)
        if info.get("already_running"):
            raise LabAlreadyRunning(f"a lab already runs in {lab_dir}")
        yield RunningLab(info=info, dir=Path(info["lab_dir"]))
    finally:
        control.down(lab_dir)
