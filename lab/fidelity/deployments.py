"""What the lab tracks about each Blue/Green deployment beyond moto's model, and how
it reports a deployment's status.

Shared by creation (`blue_green`) and switchover and deletion (`switchover`). The
status values and SwitchoverDetails follow the RDS API reference (AWS-FACTS S13:
BlueGreenDeployment, SwitchoverDetail): one SwitchoverDetails entry per cluster and
per instance pair, each with the deployment's status.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.fidelity.replication_degraded import Fingerprints
from lab.fidelity.world import world

TASK_NAMES = [
    "CREATING_READ_REPLICA_OF_SOURCE",
    "DB_ENGINE_VERSION_UPGRADE",
    "CREATE_DB_INSTANCES_FOR_CLUSTER",
    "CONFIGURE_BACKUPS",
]
# Statuses during which DDL on blue degrades the deployment's replication.
REPLICATING = ("PROVISIONING", "AVAILABLE")


@dataclass
class Pair:
    kind: str  # "cluster" or "instance"
    source: str  # identifiers, kept current across renames
    target: str


@dataclass
class Runtime:
    """What the lab tracks for one deployment beyond moto's model."""

    pairs: list[Pair]
    blue_server: str = "blue"  # the PostgreSQL servers playing this deployment's sides
    green_server: str = "green"
    databases: list[str] = field(default_factory=list)  # what it replicates, fixed at creation
    baseline: Fingerprints = field(default_factory=dict)  # blue's catalog at creation
    degraded: str | None = None  # StatusDetails once replication is degraded
    cancelled: threading.Event = field(default_factory=threading.Event)
    worker: threading.Thread | None = None


runtimes: dict[str, Runtime] = {}
# deployment id -> status -> when the lab first set it (time.time()): benchmarks measure
# how long a waiter takes to notice a change from the moment the lab made it
status_times: dict[str, dict[str, float]] = {}


def client_error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def member_arn(backend: Any, pair: Pair, side: str) -> str:
    identifier = getattr(pair, side)
    if pair.kind == "cluster":
        resource = backend.clusters.get(identifier)
        return resource.db_cluster_arn if resource else identifier
    resource = backend.databases.get(identifier)
    return resource.db_instance_arn if resource else identifier


def set_status(deployment: Any, status: str, details: str | None = None) -> None:
    """Set the deployment's status and one SwitchoverDetails entry per member pair.

    A degraded deployment keeps saying so while it still replicates.
    """
    from moto.rds.models import SwitchoverDetails

    backend = world().rds
    deployment.status = status
    changes = status_times.setdefault(deployment.blue_green_deployment_identifier, {})
    changes.setdefault(status, time.time())
    runtime = runtimes.get(deployment.blue_green_deployment_identifier)
    if runtime is not None and runtime.degraded and status in REPLICATING:
        details = runtime.degraded
    if details is not None:
        deployment.status_details = details
    if runtime is None:
        return
    deployment.switchover_details = [
        SwitchoverDetails(
            member_arn(backend, pair, "source"), member_arn(backend, pair, "target"), status
        )
        for pair in runtime.pairs
    ]


def set_task(deployment: Any, index: int, status: str) -> None:
    from moto.rds.models import BlueGreenDeploymentTask

    deployment.tasks[index] = BlueGreenDeploymentTask(TASK_NAMES[index], status)


def servers(runtime: Runtime | None) -> tuple[Any, Any]:
    """The blue and green PostgreSQL servers of a deployment (the lab's first pair when
    the lab no longer tracks it)."""
    lab = world()
    runtime = runtime or Runtime([])
    return lab.servers[runtime.blue_server], lab.servers[runtime.green_server]


def set_green_status(backend: Any, runtime: Runtime, status: str) -> None:
    for pair in runtime.pairs:
        store = backend.clusters if pair.kind == "cluster" else backend.databases
        resource = store.get(pair.target)
        if resource is not None:
            resource.status = status
