"""Helpers for tests that need a running lab, usable from any test suite.

`running_lab(dir)` starts a lab with `lab.control.up`, yields a `RunningLab`
and always stops it with `lab.control.down`, then checks that none of the
processes it started is still alive. Tests talk to the lab as a client would:
boto3 clients pointed at the lab (explicit endpoint, region and credentials;
the process environment is never touched) and psycopg connections to the
endpoints AWS reports.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config

from lab import control
from lab.fidelity.call_log import mutating_calls, read_call_log

CLUSTER_ID = "provisioning-rds"
MASTER_USERNAME = "postgres"
SOURCE_VERSION = "15.4"
TARGET_VERSION = "16.2"
TARGET_CLUSTER_PARAMETER_GROUP = "test-aurora-postgresql16-cluster"
TARGET_INSTANCE_PARAMETER_GROUP = "test-aurora-postgresql16-instance"
CONNECT_TIMEOUT_S = 5
CALL_LOG_WAIT_S = 5.0


class PasswordNotManaged(Exception):
    """The cluster's master password is not in Secrets Manager: no secret to read."""


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(interval)


def process_alive(pid: int | None) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    return control.is_alive(pid)


def new_password() -> str:
    """A password valid for RDS and unique enough to grep for."""
    return f"Lab-{secrets.token_hex(12)}"


@dataclass
class RunningLab:
    """A lab started by `running_lab`, seen from the outside."""

    info: dict[str, Any]
    dir: Path
    env: dict[str, str] = field(init=False)
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

    def client(self, service: str, config: Config | None = None) -> Any:
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
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def arm_fault(
        self, action: str, kind: str = "throttle", count: int = 1, probability: float = 1.0
    ) -> None:
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
        return self.rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]

    def instance(self, identifier: str) -> dict[str, Any]:
        return self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]

    def cluster_ids(self) -> set[str]:
        return {c["DBClusterIdentifier"] for c in self.rds.describe_db_clusters()["DBClusters"]}

    def instance_ids(self) -> set[str]:
        return {i["DBInstanceIdentifier"] for i in self.rds.describe_db_instances()["DBInstances"]}

    def member_ids(self, cluster_identifier: str) -> set[str]:
        members = self.cluster(cluster_identifier)["DBClusterMembers"]
        return {m["DBInstanceIdentifier"] for m in members}

    def deployment(self, identifier: str) -> dict[str, Any]:
        return self.rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=identifier)[
            "BlueGreenDeployments"
        ][0]

    # --- passwords ----------------------------------------------------------

    def master_password(self, cluster_identifier: str = CLUSTER_ID) -> str:
        """The password in the cluster's managed secret; PasswordNotManaged when there is none."""
        secret = self.cluster(cluster_identifier).get("MasterUserSecret")
        if not secret:
            raise PasswordNotManaged(f"{cluster_identifier} has no managed master password")
        value = self.sm.get_secret_value(SecretId=secret["SecretArn"])["SecretString"]
        return json.loads(value)["password"]

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
        return self.cluster(cluster)["MasterUserSecret"]["SecretArn"]

    # --- databases ----------------------------------------------------------

    def connect(
        self,
        endpoint: str,
        port: int,
        password: str,
        dbname: str = "app",
        user: str = MASTER_USERNAME,
        autocommit: bool = True,
    ) -> psycopg.Connection:
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
    ) -> psycopg.Connection:
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
        return response["BlueGreenDeployment"]["BlueGreenDeploymentIdentifier"]

    def wait_for_deployment(
        self, identifier: str, status: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the deployment until it has `status`; fail early on a terminal other status."""
        terminal = {
            "AVAILABLE",
            "SWITCHOVER_COMPLETED",
            "SWITCHOVER_FAILED",
            "INVALID_CONFIGURATION",
        }

        def reached() -> dict[str, Any] | None:
            deployment = self.deployment(identifier)
            if deployment["Status"] == status:
                return deployment
            if deployment["Status"] in terminal - {status, "AVAILABLE"}:
                raise AssertionError(
                    f"deployment {identifier} is {deployment['Status']}, waiting for {status}: "
                    f"{deployment.get('StatusDetails')}"
                )
            return None

        return wait_for(reached, timeout, what=f"deployment {identifier} {status}")


def _leftovers(info: dict[str, Any]) -> list[str]:
    """Processes of this lab still alive: the PIDs it recorded and its postmasters."""
    from lab.postgres import postmaster_pid

    alive = [f"{name} ({pid})" for name, pid in info.get("pids", {}).items() if process_alive(pid)]
    for name, server in info.get("servers", {}).items():
        pid = postmaster_pid(Path(server["datadir"]))
        if pid is not None:
            alive.append(f"{name} postmaster ({pid})")
    return alive


def processes_using(path: Path) -> list[int]:
    """PIDs whose command line names `path` (or a path under it) or whose cwd is under it."""
    target = str(Path(path).resolve())
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if int(proc.name) == os.getpid() or not process_alive(int(proc.name)):
            continue
        if (
            cwd == target
            or cwd.startswith(target + "/")
            or any(arg == target or arg.startswith(target + "/") for arg in cmdline)
        ):
            found.append(int(proc.name))
    return found


def assert_nothing_running(lab_dir: Path) -> None:
    """No process recorded in `lab_dir/lab.json` (nor any of its postmasters) is alive, and
    no process runs in `lab_dir` or names it on its command line."""
    from lab.postgres import lab_runtime_outside

    info = control.read_lab(lab_dir) or {}
    leftovers = _leftovers(info) + [f"pid {pid}" for pid in processes_using(lab_dir)]
    assert not leftovers, f"still running after lab down: {', '.join(leftovers)}"
    outside = lab_runtime_outside(lab_dir)
    assert not outside.exists(), f"lab down left the lab's data in {outside}"


@contextmanager
def running_lab(
    tmp_dir: Path, instances: int = 1, provisioning_delay: float = 0.0
) -> Iterator[RunningLab]:
    """A lab in `tmp_dir` for the duration of the block; stopped (and checked) on exit."""
    lab_dir = Path(tmp_dir)
    try:
        info = control.up(lab_dir, instances, provisioning_delay)
        assert not info.get("already_running"), f"a lab already runs in {lab_dir}"
        yield RunningLab(info=info, dir=Path(info["lab_dir"]))
    finally:
        control.down(lab_dir)
        assert_nothing_running(lab_dir)


def startup_seconds(lab_dir: Path) -> float | None:
    """What `lab up` recorded as its start-up time (for reports; never asserted)."""
    info = control.read_lab(lab_dir) or {}
    return info.get("startup_seconds")
