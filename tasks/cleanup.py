"""Phase 11: retire the old blue after a completed switchover.

Old resources are identified from the deployment's SwitchoverDetails (the
source members) and tagged `aurora-bg:retired-from=<cluster>` before the
deployment is deleted, so that a rerun after a crash finds them by tag,
never by building names. DeleteTarget is refused after a switchover: the old
instances and then the old cluster are deleted on their own. AWS deletes the old
cluster only with its deletion protection off (it keeps blue's): it is turned off on
that old blue only, never on the cluster now answering at the original name.
"""

from __future__ import annotations

import time
from typing import Any

from aurora_bg.results import StepResult
from tasks.aws import call, client
from tasks.blue_green import members
from tasks.deletion_protection import lift_deletion_protection
from tasks.rds_state import (
    TAG_DEPLOYMENT,
    TAG_RETIRED_FROM,
    TAG_UPGRADED_BY,
    describe_cluster,
    describe_instance,
    member_ids,
    retired_clusters,
    wait_until_gone,
)


def tag_old_blue(deployment: dict[str, Any], cluster_id: str, rds: Any = None) -> StepResult:
    """Tag the old blue cluster and instances (from SwitchoverDetails) as retired, and the
    upgraded cluster with the deployment's name."""
    rds = rds or client("rds")
    upgraded = describe_cluster(cluster_id, rds)
    if upgraded is not None:
        call(
            "tagging the upgraded cluster",
            rds.add_tags_to_resource,
            ResourceName=upgraded["DBClusterArn"],
            Tags=[{"Key": TAG_UPGRADED_BY, "Value": deployment["BlueGreenDeploymentName"]}],
        )
    tags = [
        {"Key": TAG_RETIRED_FROM, "Value": cluster_id},
        {"Key": TAG_DEPLOYMENT, "Value": deployment["BlueGreenDeploymentIdentifier"]},
    ]
    tagged = []
    for arn in (d["SourceMember"] for d in deployment.get("SwitchoverDetails", [])):
        call("tagging the old blue", rds.add_tags_to_resource, ResourceName=arn, Tags=tags)
        tagged.append(arn.rsplit(":", 1)[-1])
    return StepResult(
        "tagged",
        f"Tagged the old blue ({', '.join(tagged)}) as retired from {cluster_id}.",
        {"old_members": [m[0] for m in members(deployment)]},
    )


def delete_old_blue(
    cluster_id: str, final_snapshot: bool, rds: Any = None, timeout: float = 3600
) -> StepResult:
    """Delete each retired instance, then the retired cluster (final snapshot if asked),
    turning the retired cluster's deletion protection off first; production's is never
    touched (InvalidState if a retired tag names the production cluster itself)."""
    rds = rds or client("rds")
    old_clusters = retired_clusters(cluster_id, rds)
    if not old_clusters:
        return StepResult("already-done", f"No retired cluster of {cluster_id} is left.")
    done, snapshots, unprotected = [], [], []
    for old in old_clusters:
        old_id = old["DBClusterIdentifier"]
        protection = lift_deletion_protection(old_id, "old blue", cluster_id, rds=rds)
        if protection.facts.get("protection_lifted"):
            unprotected.append(old_id)
        for instance_id in member_ids(old):
            if describe_instance(instance_id, rds) is not None:
                call(
                    f"deleting old instance {instance_id}",
                    rds.delete_db_instance,
                    DBInstanceIdentifier=instance_id,
                )
            wait_until_gone(describe_instance, instance_id, "instance", rds, timeout)
            done.append(instance_id)
        kwargs: dict[str, Any] = {"DBClusterIdentifier": old_id, "SkipFinalSnapshot": True}
        if final_snapshot:
            snapshot = f"{old_id}-final-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
            kwargs = {"DBClusterIdentifier": old_id, "FinalDBSnapshotIdentifier": snapshot}
            kwargs["SkipFinalSnapshot"] = False
            snapshots.append(snapshot)
        if describe_cluster(old_id, rds) is not None:
            call(f"deleting old cluster {old_id}", rds.delete_db_cluster, **kwargs)
        wait_until_gone(describe_cluster, old_id, "cluster", rds, timeout)
        done.append(old_id)
    kept = f"; final snapshot {', '.join(snapshots)}" if snapshots else "; no final snapshot"
    lifted = (
        f"; turned its deletion protection off first ({', '.join(unprotected)}), "
        f"{cluster_id}'s untouched"
        if unprotected
        else ""
    )
    return StepResult(
        "deleted",
        f"Deleted the old blue: {', '.join(done)}{kept}{lifted}.",
        {"deleted": done, "snapshots": snapshots, "protection_lifted": unprotected},
    )
