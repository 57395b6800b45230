"""Switching a Blue/Green deployment over, and deleting it, as Aurora does.

AWS facts reproduced here (AWS-FACTS S3, "Switching a B/G deployment",
…/AuroraUserGuide/blue-green-deployments-switching.html; S5, "Deleting a B/G
deployment", …/AuroraUserGuide/blue-green-deployments-deleting.html; S10 for the
events; S13 for the API):

- SwitchoverBlueGreenDeployment is refused unless AVAILABLE, and while replication
  is degraded (InvalidBlueGreenDeploymentStateFault). SwitchoverTimeout is 30–3600 s,
  default 300. The switchover stops writes on blue and waits for green to catch up
  in every database. Past the timeout AWS rolls back and changes neither
  environment: SWITCHOVER_FAILED, nothing renamed, RDS-EVENT-0249 and 0261 with the
  reason. On success the blue cluster and each blue instance get `-old1`, the green
  ones take the original names, connections are dropped, old blue stays read-only;
  RDS-EVENT-0247/0259 at the start, 0248/0260 at the end.
- DeleteBlueGreenDeployment keeps both clusters unless DeleteTarget, which is
  refused after a completed switchover; deleting the deployment removes its
  replication from blue (so blue's tables are no longer published) and lifts the
  read-only protection of the old cluster. RDS-EVENT-0246.
- Deletion protection (S5): `DeleteTarget` needs it off on green, and green is a
  copy of blue, so a protected blue gives a protected green (moto copies the flag
  at creation). A deployment whose green target is protected is refused with
  InvalidParameterCombination before anything changes. DeleteDBCluster of a
  protected cluster is refused the same way (moto already does, with AWS's
  message "Cannot delete protected Cluster, please disable deletion protection
  and try again."); that covers the old blue after a switchover.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

from lab.fidelity import events
from lab.fidelity.deployments import (
    Runtime,
    client_error,
    runtimes,
    servers,
    set_status,
)
from lab.fidelity.endpoints import cluster_key, instance_key
from lab.fidelity.world import world

log = logging.getLogger("lab.fidelity.switchover")

OLD_SUFFIX = "-old1"


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
    runtime = runtimes[deployment_id]
    blue, green = servers(runtime)
    backend = lab.rds
    deployment = backend.blue_green_deployments[deployment_id]
    cluster_pair = runtime.pairs[0]
    blue_cluster = (cluster_pair.source, backend.clusters[cluster_pair.source].db_cluster_arn)
    green_id = cluster_pair.target
    events.switchover_started(deployment, blue_cluster, green_id)
    deadline = time.monotonic() + timeout
    try:
        replication.block_writes(blue)
        while not replication.is_caught_up(blue, green, runtime.databases):
            if time.monotonic() > deadline:
                replication.cancel_switchover(blue)
                reason = f"green not catching up with blue within {timeout} seconds"
                with lab.lock:
                    set_status(
                        deployment,
                        "SWITCHOVER_FAILED",
                        f"Switchover timed out after {timeout} seconds: green did not catch up "
                        "with blue. The switchover was rolled back.",
                    )
                    events.switchover_canceled(deployment, blue_cluster, green_id, reason)
                return
            time.sleep(0.2)
        replication.finish_switchover(blue, green)
        with lab.lock:
            before = _endpoint_keys(runtime)
            _swap_names(backend, runtime)
            deployment.source = backend.clusters[cluster_pair.source].db_cluster_arn
            deployment.target = backend.clusters[cluster_pair.target].db_cluster_arn
            set_status(deployment, "SWITCHOVER_COMPLETED", "Switchover completed")
            events.switchover_completed(deployment, blue_cluster, green_id, cluster_pair.source)
        lab.proxy.drop_connections(before | _endpoint_keys(runtime))
    except Exception as error:
        log.exception("switchover of %s failed", deployment_id)
        replication.cancel_switchover(blue)
        with lab.lock:
            set_status(
                deployment, "SWITCHOVER_FAILED", f"Switchover failed: {type(error).__name__}"
            )
            events.switchover_canceled(
                deployment, blue_cluster, green_id, f"an internal error ({type(error).__name__})"
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
        runtime = runtimes.get(deployment_id)
        if runtime is not None and runtime.degraded:
            raise client_error(
                "InvalidBlueGreenDeploymentStateFault",
                f"The blue/green deployment {deployment_id} can't be switched over: "
                f"{runtime.degraded}",
            )
        timeout = int(switchover_timeout or 300)
        if not 30 <= timeout <= 3600:
            raise client_error(
                "InvalidParameterValue", "SwitchoverTimeout must be between 30 and 3600 seconds."
            )
        set_status(deployment, "SWITCHOVER_IN_PROGRESS", "Switchover in progress")
        threading.Thread(target=_run_switchover, args=(deployment_id, timeout), daemon=True).start()
        return copy.copy(deployment)


def _refuse_protected_target(backend: Any, deployment: Any) -> None:
    """AWS deletes green with the deployment only when green's deletion protection is off."""
    green = next(
        (c for c in backend.clusters.values() if c.db_cluster_arn == deployment.target), None
    )
    if green is not None and green.deletion_protection:
        raise client_error(
            "InvalidParameterCombination",
            f"Cannot delete the target cluster {green.db_cluster_identifier} of blue/green "
            f"deployment {deployment.blue_green_deployment_identifier}: deletion protection "
            "is enabled on it. Disable deletion protection on the target and try again.",
        )


def delete(backend: Any, original: Any, deployment_id: str, delete_target: bool = False) -> Any:
    from moto.rds.exceptions import (
        BlueGreenDeploymentNotFoundFault,
        InvalidBlueGreenDeploymentStateFault,
    )

    from lab import replication

    lab = world()
    blue, green = servers(runtimes.get(deployment_id))
    with lab.lock:
        deployment = backend.blue_green_deployments.get(deployment_id)
        if deployment is None:
            raise BlueGreenDeploymentNotFoundFault(deployment_id)
        if deployment.status == "SWITCHOVER_IN_PROGRESS":
            raise InvalidBlueGreenDeploymentStateFault(deployment_id)
        completed = deployment.status == "SWITCHOVER_COMPLETED"
        if delete_target and completed:
            raise client_error(
                "InvalidParameterCombination",
                "You can't delete the target after the blue/green deployment has switched over.",
            )
        if delete_target and not completed:
            _refuse_protected_target(backend, deployment)
        runtime = runtimes.pop(deployment_id, None)
    if runtime is not None:
        runtime.cancelled.set()
        if runtime.worker is not None:
            runtime.worker.join(timeout=30)
    if completed:
        replication.drop_publications(blue)
        replication.unblock_writes(blue)  # lifts the old cluster's read-only protection
    elif delete_target:
        replication.reset_green(blue, green)
    else:  # green stays as a standalone cluster: replication stops, it becomes writable
        replication.drop_subscriptions(blue, green)
        replication.drop_publications(blue)
        replication.unblock_writes(green)
    with lab.lock:
        response = original(backend, deployment_id, delete_target)
        events.deleted(response)
        response = copy.copy(response)
        response.status = "DELETING"
        return response
