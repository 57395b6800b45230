"""Blue/Green deployments as Aurora PostgreSQL runs them.

moto 5.2.5 makes a deployment AVAILABLE at once, switches over by renaming
only the cluster (its instances stay attached to the wrong cluster) and
reports a single SwitchoverDetails pair. The lab reproduces what AWS
documents instead:

- CreateBlueGreenDeployment refuses a source whose master password is
  managed by Secrets Manager (SourceClusterNotSupportedFault, kept from
  moto), a TargetEngineVersion that is not a valid upgrade target and a target
  parameter group of the wrong family (InvalidParameterCombination). The
  deployment is PROVISIONING, its `Tasks` progressing, for the configured
  provisioning delay and until green has caught up with blue by logical
  replication; then AVAILABLE. Green is read-only.
- SwitchoverDetails holds one pair per cluster and per instance.
- SwitchoverBlueGreenDeployment is refused unless AVAILABLE; it stops writes
  on blue and waits for green to catch up, bounded by SwitchoverTimeout
  (30–3600 s, default 300). Past the timeout AWS rolls back and changes
  neither environment: SWITCHOVER_FAILED, nothing renamed. On success the
  blue cluster and each blue instance get `-old1`, the green ones take the
  original names, connections are dropped, old blue stays read-only.
- DeleteBlueGreenDeployment keeps both clusters unless DeleteTarget, which
  is refused after a completed switchover; deleting the deployment lifts the
  read-only protection of the old cluster.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.fidelity import engine_versions
from lab.fidelity.endpoints import cluster_key, instance_key
from lab.fidelity.patching import patch
from lab.fidelity.world import PLAYED_BY, world

log = logging.getLogger("lab.fidelity.blue_green")

TASK_NAMES = [
    "CREATING_READ_REPLICA_OF_SOURCE",
    "DB_ENGINE_VERSION_UPGRADE",
    "CREATE_DB_INSTANCES_FOR_CLUSTER",
    "CONFIGURE_BACKUPS",
]
SYNC_LIMIT_SECONDS = 120
OLD_SUFFIX = "-old1"


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
    cancelled: threading.Event = field(default_factory=threading.Event)
    worker: threading.Thread | None = None


_runtimes: dict[str, Runtime] = {}
# deployment id -> status -> when the lab first set it (time.time()): benchmarks measure
# how long a waiter takes to notice a change from the moment the lab made it
status_times: dict[str, dict[str, float]] = {}


def _client_error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def _member_arn(backend: Any, pair: Pair, side: str) -> str:
    identifier = getattr(pair, side)
    if pair.kind == "cluster":
        resource = backend.clusters.get(identifier)
        return resource.db_cluster_arn if resource else identifier
    resource = backend.databases.get(identifier)
    return resource.db_instance_arn if resource else identifier


def _set_status(deployment: Any, status: str, details: str | None = None) -> None:
    """Set the deployment's status and one SwitchoverDetails entry per member pair."""
    from moto.rds.models import SwitchoverDetails

    backend = world().rds
    deployment.status = status
    changes = status_times.setdefault(deployment.blue_green_deployment_identifier, {})
    changes.setdefault(status, time.time())
    if details is not None:
        deployment.status_details = details
    runtime = _runtimes.get(deployment.blue_green_deployment_identifier)
    if runtime is None:
        return
    deployment.switchover_details = [
        SwitchoverDetails(
            _member_arn(backend, pair, "source"), _member_arn(backend, pair, "target"), status
        )
        for pair in runtime.pairs
    ]


def _set_task(deployment: Any, index: int, status: str) -> None:
    from moto.rds.models import BlueGreenDeploymentTask

    deployment.tasks[index] = BlueGreenDeploymentTask(TASK_NAMES[index], status)


def _servers(runtime: Runtime | None) -> tuple[Any, Any]:
    lab = world()
    runtime = runtime or Runtime([])
    return lab.servers[runtime.blue_server], lab.servers[runtime.green_server]


# --- creation -------------------------------------------------------------


def _check_target(backend: Any, source: Any, kwargs: dict[str, Any]) -> None:
    """Refuse what AWS refuses before it creates anything."""
    target_version = kwargs.get("target_engine_version") or source.engine_version
    if target_version != source.engine_version and not engine_versions.is_valid_upgrade(
        source.engine_version, target_version
    ):
        raise _client_error(
            "InvalidParameterCombination",
            f"Cannot upgrade {source.engine} from {source.engine_version} to {target_version}",
        )
    family = engine_versions.family(target_version)
    cluster_group = kwargs.get("target_db_cluster_parameter_group_name")
    if cluster_group:
        groups = backend.db_cluster_parameter_groups
        if cluster_group not in groups:
            raise _client_error(
                "DBClusterParameterGroupNotFound",
                f"DBClusterParameterGroup not found: {cluster_group}",
            )
        actual = groups[cluster_group].db_parameter_group_family
        if actual != family:
            raise _client_error(
                "InvalidParameterCombination",
                f"The parameter group {cluster_group} with DBParameterGroupFamily "
                f"{actual} can't be used for this cluster. "
                f"Use a parameter group with DBParameterGroupFamily {family}.",
            )
    instance_group = kwargs.get("target_db_parameter_group_name")
    if instance_group:
        groups = backend.db_parameter_groups
        if instance_group not in groups:
            raise _client_error(
                "DBParameterGroupNotFound", f"DBParameterGroup not found: {instance_group}"
            )
        if groups[instance_group].family != family:
            raise _client_error(
                "InvalidParameterCombination",
                f"The parameter group {instance_group} with DBParameterGroupFamily "
                f"{groups[instance_group].family} can't be used for this instance. "
                f"Use a parameter group with DBParameterGroupFamily {family}.",
            )


def _pairs_of(backend: Any, source: Any, target_cluster: Any) -> list[Pair]:
    pairs = [Pair("cluster", source.db_cluster_identifier, target_cluster.db_cluster_identifier)]
    green_members = [m.db_instance_identifier for m in target_cluster.members]
    for member in source.members:
        prefix = f"{member.db_instance_identifier}-green-"
        match = next((g for g in green_members if g.startswith(prefix)), None)
        if match:
            pairs.append(Pair("instance", member.db_instance_identifier, match))
    return pairs


def _set_green_status(backend: Any, runtime: Runtime, status: str) -> None:
    for pair in runtime.pairs:
        store = backend.clusters if pair.kind == "cluster" else backend.databases
        resource = store.get(pair.target)
        if resource is not None:
            resource.status = status


def _provision(deployment_id: str, blue_cluster_id: str) -> None:
    """Build green, then progress Tasks over the provisioning delay."""
    from lab import replication
    from lab.scram import set_role_password

    lab = world()
    runtime = _runtimes[deployment_id]
    blue, green = _servers(runtime)
    backend = lab.rds
    deployment = backend.blue_green_deployments.get(deployment_id)
    started = time.monotonic()
    step = lab.provisioning_delay / len(TASK_NAMES)
    try:
        _set_task(deployment, 0, "IN_PROGRESS")
        replication.start_replication(blue, green, lab.dbname)
        blue_cluster = backend.clusters[blue_cluster_id]
        # The green cluster starts with blue's master password, as AWS copies it.
        set_role_password(green, blue_cluster.master_username, blue_cluster._master_user_password)
        while not replication.initial_sync_done(green, lab.dbname):
            if runtime.cancelled.is_set() or time.monotonic() - started > SYNC_LIMIT_SECONDS:
                return
            time.sleep(0.1)
        for index in range(len(TASK_NAMES)):
            _set_task(deployment, index, "IN_PROGRESS")
            if runtime.cancelled.wait(max(0.0, started + step * (index + 1) - time.monotonic())):
                return
            _set_task(deployment, index, "COMPLETED")
        with lab.lock:
            if not runtime.cancelled.is_set():
                _set_green_status(backend, runtime, "available")
                _set_status(
                    deployment, "AVAILABLE", "Blue/green deployment is ready for switchover"
                )
    except Exception as error:  # the lab reports it the way AWS would: a bad configuration
        log.exception("provisioning of %s failed", deployment_id)
        with lab.lock:
            _set_status(
                deployment, "INVALID_CONFIGURATION", f"Provisioning failed: {type(error).__name__}"
            )


def create(backend: Any, original: Any, bg_kwargs: dict[str, Any]) -> Any:
    from moto.rds.models import find_cluster

    lab = world()
    with lab.lock:
        source_arn = bg_kwargs.get("source", "")
        if ":cluster:" not in source_arn:
            raise _client_error("InvalidParameterValue", "The lab models Aurora clusters only.")
        source = find_cluster(source_arn)
        if hasattr(source, "master_user_secret"):
            from moto.rds.exceptions import SourceClusterNotSupportedFault

            raise SourceClusterNotSupportedFault(source.db_cluster_arn)
        if any(
            d.source == source.db_cluster_arn and d.status != "SWITCHOVER_COMPLETED"
            for d in backend.blue_green_deployments.values()
        ):
            raise _client_error(
                "InvalidParameterCombination",
                f"The cluster {source.db_cluster_identifier} is already the source of a "
                "blue/green deployment.",
            )
        _check_target(backend, source, bg_kwargs)
        response = original(backend, bg_kwargs)
        deployment = backend.blue_green_deployments[response.blue_green_deployment_identifier]
        target_cluster = find_cluster(deployment.target)
        blue_server = lab.server_name_of_cluster(source)
        green_server = lab.green_server_name_for(source)
        setattr(target_cluster, PLAYED_BY, green_server)
        runtime = Runtime(_pairs_of(backend, source, target_cluster), blue_server, green_server)
        _runtimes[deployment.blue_green_deployment_identifier] = runtime
        deployment.tasks = [None] * len(TASK_NAMES)
        for index in range(len(TASK_NAMES)):
            _set_task(deployment, index, "PENDING")
        _set_green_status(backend, runtime, "creating")
        _set_status(deployment, "PROVISIONING", "Creating green environment")
        runtime.worker = threading.Thread(
            target=_provision,
            args=(deployment.blue_green_deployment_identifier, source.db_cluster_identifier),
            daemon=True,
        )
        runtime.worker.start()
        return copy.copy(deployment)


# --- switchover -----------------------------------------------------------


def _rename_cluster(backend: Any, old: str, new: str) -> None:
    cluster = backend.clusters.pop(old)
    members = [
        d for d in backend.databases.values() if getattr(d, "db_cluster_identifier", None) == old
    ]
    cluster.db_cluster_identifier = new
    backend.clusters[new] = cluster
    for member in members:
        member.db_cluster_identifier = new


def _rename_instance(backend: Any, old: str, new: str) -> None:
    instance = backend.databases.pop(old)
    instance.db_instance_identifier = new
    backend.databases[new] = instance


def _swap_names(backend: Any, runtime: Runtime) -> None:
    """AWS's renames: blue → `-old1`, green → the original names."""
    renames = []
    for pair in runtime.pairs:
        renames.append((pair, pair.source, pair.source + OLD_SUFFIX, pair.target, pair.source))
    # Blue first, so the original names are free before green takes them.
    for pair, old, new, _, _ in renames:
        (_rename_cluster if pair.kind == "cluster" else _rename_instance)(backend, old, new)
    for pair, _, _, green_old, green_new in renames:
        (_rename_cluster if pair.kind == "cluster" else _rename_instance)(
            backend, green_old, green_new
        )
    for pair, _, blue_new, _, green_new in renames:
        pair.source, pair.target = blue_new, green_new


def _endpoint_keys(runtime: Runtime) -> set[str]:
    """The endpoint keys of both sides' current names: whose connections a switchover drops."""
    return {
        (cluster_key if pair.kind == "cluster" else instance_key)(name)
        for pair in runtime.pairs
        for name in (pair.source, pair.target)
    }


def _run_switchover(deployment_id: str, timeout: int) -> None:
    from lab import replication

    lab = world()
    runtime = _runtimes[deployment_id]
    blue, green = _servers(runtime)
    backend = lab.rds
    deployment = backend.blue_green_deployments[deployment_id]
    deadline = time.monotonic() + timeout
    try:
        replication.block_writes(blue)
        while not replication.is_caught_up(blue, green, lab.dbname):
            if time.monotonic() > deadline:
                replication.cancel_switchover(blue)
                with lab.lock:
                    _set_status(
                        deployment,
                        "SWITCHOVER_FAILED",
                        f"Switchover timed out after {timeout} seconds: green did not catch up "
                        "with blue. The switchover was rolled back.",
                    )
                return
            time.sleep(0.2)
        replication.finish_switchover(blue, green, lab.dbname)
        with lab.lock:
            before = _endpoint_keys(runtime)
            _swap_names(backend, runtime)
            cluster_pair = runtime.pairs[0]
            deployment.source = backend.clusters[cluster_pair.source].db_cluster_arn
            deployment.target = backend.clusters[cluster_pair.target].db_cluster_arn
            _set_status(deployment, "SWITCHOVER_COMPLETED", "Switchover completed")
        lab.proxy.drop_connections(before | _endpoint_keys(runtime))
    except Exception as error:
        log.exception("switchover of %s failed", deployment_id)
        replication.cancel_switchover(blue)
        with lab.lock:
            _set_status(
                deployment, "SWITCHOVER_FAILED", f"Switchover failed: {type(error).__name__}"
            )


def switchover(backend: Any, deployment_id: str, switchover_timeout: int | None = 300) -> Any:
    from moto.rds.exceptions import (
        BlueGreenDeploymentNotFoundFault,
        InvalidBlueGreenDeploymentStateFault,
    )

    lab = world()
    with lab.lock:
        deployment = backend.blue_green_deployments.get(deployment_id)
        if deployment is None:
            raise BlueGreenDeploymentNotFoundFault(deployment_id)
        if deployment.status != "AVAILABLE":
            raise InvalidBlueGreenDeploymentStateFault(deployment_id)
        timeout = int(switchover_timeout or 300)
        if not 30 <= timeout <= 3600:
            raise _client_error(
                "InvalidParameterValue", "SwitchoverTimeout must be between 30 and 3600 seconds."
            )
        _set_status(deployment, "SWITCHOVER_IN_PROGRESS", "Switchover in progress")
        threading.Thread(target=_run_switchover, args=(deployment_id, timeout), daemon=True).start()
        return copy.copy(deployment)


# --- deletion -------------------------------------------------------------


def delete(backend: Any, original: Any, deployment_id: str, delete_target: bool = False) -> Any:
    from moto.rds.exceptions import (
        BlueGreenDeploymentNotFoundFault,
        InvalidBlueGreenDeploymentStateFault,
    )

    from lab import replication

    lab = world()
    blue, green = _servers(_runtimes.get(deployment_id))
    with lab.lock:
        deployment = backend.blue_green_deployments.get(deployment_id)
        if deployment is None:
            raise BlueGreenDeploymentNotFoundFault(deployment_id)
        if deployment.status == "SWITCHOVER_IN_PROGRESS":
            raise InvalidBlueGreenDeploymentStateFault(deployment_id)
        completed = deployment.status == "SWITCHOVER_COMPLETED"
        if delete_target and completed:
            raise _client_error(
                "InvalidParameterCombination",
                "You can't delete the target after the blue/green deployment has switched over.",
            )
        runtime = _runtimes.pop(deployment_id, None)
    if runtime is not None:
        runtime.cancelled.set()
        if runtime.worker is not None:
            runtime.worker.join(timeout=30)
    if completed:
        replication.unblock_writes(blue)  # lifts the old cluster's read-only protection
    elif delete_target:
        replication.reset_green(blue, green, lab.dbname)
    else:  # green stays as a standalone cluster: replication stops, it becomes writable
        replication.drop_subscription(blue, green, lab.dbname)
        replication.unblock_writes(green)
    with lab.lock:
        response = original(backend, deployment_id, delete_target)
        response = copy.copy(response)
        response.status = "DELETING"
        return response


def install() -> None:
    from moto.rds.models import RDSBackend

    original_create = RDSBackend.create_blue_green_deployment
    original_delete = RDSBackend.delete_blue_green_deployment

    def create_blue_green_deployment(self: RDSBackend, bg_kwargs: dict[str, Any]) -> Any:
        return create(self, original_create, bg_kwargs)

    def switchover_blue_green_deployment(
        self: RDSBackend,
        blue_green_deployment_identifier: str,
        switchover_timeout: int | None = 300,
    ) -> Any:
        return switchover(self, blue_green_deployment_identifier, switchover_timeout)

    def delete_blue_green_deployment(
        self: RDSBackend, blue_green_deployment_identifier: str, delete_target: bool = False
    ) -> Any:
        return delete(self, original_delete, blue_green_deployment_identifier, delete_target)

    patch(RDSBackend, "create_blue_green_deployment", create_blue_green_deployment)
    patch(RDSBackend, "switchover_blue_green_deployment", switchover_blue_green_deployment)
    patch(RDSBackend, "delete_blue_green_deployment", delete_blue_green_deployment)
