"""Blue/Green deployments as Aurora PostgreSQL creates them.

moto 5.2.5 makes a deployment AVAILABLE at once, switches over by renaming
only the cluster (its instances stay attached to the wrong cluster) and
reports a single SwitchoverDetails pair. The lab reproduces what AWS
documents instead (AWS-FACTS S2, "Creating a B/G deployment",
…/AuroraUserGuide/blue-green-deployments-creating.html; S6, overview; S13, the
RDS API reference); switchover and deletion are `lab.fidelity.switchover`'s:

- CreateBlueGreenDeployment refuses a source whose master password is
  managed by Secrets Manager (SourceClusterNotSupportedFault, kept from
  moto; S1), a TargetEngineVersion that is not a valid upgrade target and a target
  parameter group of the wrong family (InvalidParameterCombination), and what
  `creation_refusals` lists (source version, writer not in sync, name).
- The deployment is PROVISIONING, its `Tasks` progressing, for the configured
  provisioning delay and until green has caught up with blue by logical
  replication of every database; then AVAILABLE, with RDS-EVENT-0244. Green
  is read-only. A configuration `creation_failures` rejects ends
  INVALID_CONFIGURATION after the delay instead, with RDS-EVENT-0245.
- SwitchoverDetails holds one pair per cluster and per instance.
- Green copies blue's DeletionProtection (S5: green is a copy of blue). For Aurora the
  flag is the cluster's: green's instances do not carry it (moto copies the cluster's
  flag onto them, which would make them undeletable).
- While it replicates, DDL or a large-object change on blue degrades it
  (`replication_degraded`), checked whenever deployments are described.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

import psycopg

from lab.fidelity import (
    creation_failures,
    creation_refusals,
    engine_versions,
    events,
    replication_degraded,
    switchover,
)
from lab.fidelity.deployments import (
    REPLICATING,
    TASK_NAMES,
    Pair,
    Runtime,
    client_error,
    runtimes,
    servers,
    set_green_status,
    set_status,
    set_task,
)
from lab.fidelity.patching import patch
from lab.fidelity.world import PLAYED_BY, world

log = logging.getLogger("lab.fidelity.blue_green")

SYNC_LIMIT_SECONDS = 120


def _check_target(backend: Any, source: Any, kwargs: dict[str, Any]) -> None:
    """Refuse what AWS refuses before it creates anything."""
    target_version = kwargs.get("target_engine_version") or source.engine_version
    if target_version != source.engine_version and not engine_versions.is_valid_upgrade(
        source.engine_version, target_version
    ):
        raise client_error(
            "InvalidParameterCombination",
            f"Cannot upgrade {source.engine} from {source.engine_version} to {target_version}",
        )
    family = engine_versions.family(target_version)
    cluster_group = kwargs.get("target_db_cluster_parameter_group_name")
    if cluster_group:
        groups = backend.db_cluster_parameter_groups
        if cluster_group not in groups:
            raise client_error(
                "DBClusterParameterGroupNotFound",
                f"DBClusterParameterGroup not found: {cluster_group}",
            )
        actual = groups[cluster_group].db_parameter_group_family
        if actual != family:
            raise client_error(
                "InvalidParameterCombination",
                f"The parameter group {cluster_group} with DBParameterGroupFamily "
                f"{actual} can't be used for this cluster. "
                f"Use a parameter group with DBParameterGroupFamily {family}.",
            )
    instance_group = kwargs.get("target_db_parameter_group_name")
    if instance_group:
        groups = backend.db_parameter_groups
        if instance_group not in groups:
            raise client_error(
                "DBParameterGroupNotFound", f"DBParameterGroup not found: {instance_group}"
            )
        if groups[instance_group].family != family:
            raise client_error(
                "InvalidParameterCombination",
                f"The parameter group {instance_group} with DBParameterGroupFamily "
                f"{groups[instance_group].family} can't be used for this instance. "
                f"Use a parameter group with DBParameterGroupFamily {family}.",
            )


def _pairs_of(source: Any, target_cluster: Any) -> list[Pair]:
    pairs = [Pair("cluster", source.db_cluster_identifier, target_cluster.db_cluster_identifier)]
    green_members = [m.db_instance_identifier for m in target_cluster.members]
    for member in source.members:
        prefix = f"{member.db_instance_identifier}-green-"
        match = next((g for g in green_members if g.startswith(prefix)), None)
        if match:
            pairs.append(Pair("instance", member.db_instance_identifier, match))
    return pairs


def _fail(deployment: Any, reason: str) -> None:
    """End the creation INVALID_CONFIGURATION, saying why as AWS does (RDS-EVENT-0245)."""
    with world().lock:
        set_status(
            deployment,
            "INVALID_CONFIGURATION",
            f"Creation of blue/green deployment failed because {reason}.",
        )
        events.creation_failed(deployment, reason)


def _provision(deployment_id: str, blue_cluster_id: str) -> None:
    """Build green, then progress Tasks over the provisioning delay."""
    from lab import replication
    from lab.scram import set_role_password

    lab = world()
    runtime = runtimes[deployment_id]
    blue, green = servers(runtime)
    backend = lab.rds
    deployment = backend.blue_green_deployments.get(deployment_id)
    started = time.monotonic()
    step = lab.provisioning_delay / len(TASK_NAMES)
    try:
        set_task(deployment, 0, "IN_PROGRESS")
        rejected = creation_failures.reason(blue)
        if rejected is not None:  # AWS finds out while provisioning, not at the call
            if not runtime.cancelled.wait(lab.provisioning_delay):
                _fail(deployment, rejected)
            return
        replication.start_replication(blue, green, runtime.databases)
        blue_cluster = backend.clusters[blue_cluster_id]
        # The green cluster starts with blue's master password, as AWS copies it.
        set_role_password(green, blue_cluster.master_username, blue_cluster._master_user_password)
        while not replication.initial_sync_done(green, runtime.databases):
            if runtime.cancelled.is_set():
                return
            if time.monotonic() - started > SYNC_LIMIT_SECONDS:
                _fail(deployment, f"green did not copy blue's tables within {SYNC_LIMIT_SECONDS} s")
                return
            time.sleep(0.1)
        for index in range(len(TASK_NAMES)):
            set_task(deployment, index, "IN_PROGRESS")
            if runtime.cancelled.wait(max(0.0, started + step * (index + 1) - time.monotonic())):
                return
            set_task(deployment, index, "COMPLETED")
        with lab.lock:
            if not runtime.cancelled.is_set():
                set_green_status(backend, runtime, "available")
                set_status(deployment, "AVAILABLE", "Blue/green deployment is ready for switchover")
                events.creation_completed(deployment)
    except Exception as error:  # the lab reports it the way AWS would: a bad configuration
        log.exception("provisioning of %s failed", deployment_id)
        _fail(deployment, f"the lab could not provision green ({type(error).__name__})")


def create(backend: Any, original: Any, bg_kwargs: dict[str, Any]) -> Any:
    from moto.rds.models import find_cluster

    from lab.replication import replicated_databases

    lab = world()
    with lab.lock:
        source_arn = bg_kwargs.get("source", "")
        if ":cluster:" not in source_arn:
            raise client_error("InvalidParameterValue", "The lab models Aurora clusters only.")
        source = find_cluster(source_arn)
        if hasattr(source, "master_user_secret"):
            from moto.rds.exceptions import SourceClusterNotSupportedFault

            raise SourceClusterNotSupportedFault(source.db_cluster_arn)
        creation_refusals.check(source, str(bg_kwargs.get("blue_green_deployment_name", "")))
        if any(
            d.source == source.db_cluster_arn and d.status != "SWITCHOVER_COMPLETED"
            for d in backend.blue_green_deployments.values()
        ):
            raise client_error(
                "InvalidParameterCombination",
                f"The cluster {source.db_cluster_identifier} is already the source of a "
                "blue/green deployment.",
            )
        _check_target(backend, source, bg_kwargs)
        blue_server = lab.server_name_of_cluster(source)
        databases = replicated_databases(lab.servers[blue_server])
        baseline = replication_degraded.fingerprints(lab.servers[blue_server], databases)
        response = original(backend, bg_kwargs)
        deployment = backend.blue_green_deployments[response.blue_green_deployment_identifier]
        target_cluster = find_cluster(deployment.target)
        green_server = lab.green_server_name_for(source)
        setattr(target_cluster, PLAYED_BY, green_server)
        for member in target_cluster.members:  # Aurora protects the cluster, not instances
            member.deletion_protection = False
        runtime = Runtime(
            _pairs_of(source, target_cluster), blue_server, green_server, databases, baseline
        )
        runtimes[deployment.blue_green_deployment_identifier] = runtime
        deployment.tasks = [None] * len(TASK_NAMES)
        for index in range(len(TASK_NAMES)):
            set_task(deployment, index, "PENDING")
        set_green_status(backend, runtime, "creating")
        set_status(deployment, "PROVISIONING", "Creating green environment")
        runtime.worker = threading.Thread(
            target=_provision,
            args=(deployment.blue_green_deployment_identifier, source.db_cluster_identifier),
            daemon=True,
        )
        runtime.worker.start()
        return copy.copy(deployment)


def notice_degradation(backend: Any, deployment_ids: list[str] | None = None) -> None:
    """Compare blue's catalog with the deployment's baseline, for each deployment that
    still replicates and is not yet degraded; a change degrades it."""
    lab = world()
    for deployment_id, runtime in list(runtimes.items()):
        if deployment_ids is not None and deployment_id not in deployment_ids:
            continue
        deployment = backend.blue_green_deployments.get(deployment_id)
        if deployment is None or runtime.degraded or deployment.status not in REPLICATING:
            continue
        try:
            found = replication_degraded.changes(lab.servers[runtime.blue_server], runtime.baseline)
        except psycopg.Error as error:  # blue restarting (a reboot): look again next time
            log.warning("cannot compare blue's catalog for %s: %s", deployment_id, error)
            continue
        if found:
            with lab.lock:
                runtime.degraded = replication_degraded.status_details(found)
                deployment.status_details = runtime.degraded


def install() -> None:
    from moto.rds.models import RDSBackend

    original_create = RDSBackend.create_blue_green_deployment
    original_describe = RDSBackend.describe_blue_green_deployments
    original_delete = RDSBackend.delete_blue_green_deployment

    def create_blue_green_deployment(self: RDSBackend, bg_kwargs: dict[str, Any]) -> Any:
        return create(self, original_create, bg_kwargs)

    def describe_blue_green_deployments(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
        notice_degradation(self)
        return original_describe(self, *args, **kwargs)

    def switchover_blue_green_deployment(
        self: RDSBackend,
        blue_green_deployment_identifier: str,
        switchover_timeout: int | None = 300,
    ) -> Any:
        notice_degradation(self, [blue_green_deployment_identifier])
        return switchover.switchover(self, blue_green_deployment_identifier, switchover_timeout)

    def delete_blue_green_deployment(
        self: RDSBackend, blue_green_deployment_identifier: str, delete_target: bool = False
    ) -> Any:
        return switchover.delete(
            self, original_delete, blue_green_deployment_identifier, delete_target
        )

    patch(RDSBackend, "create_blue_green_deployment", create_blue_green_deployment)
    patch(RDSBackend, "describe_blue_green_deployments", describe_blue_green_deployments)
    patch(RDSBackend, "switchover_blue_green_deployment", switchover_blue_green_deployment)
    patch(RDSBackend, "delete_blue_green_deployment", delete_blue_green_deployment)
