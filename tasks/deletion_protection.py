"""Turning deletion protection off on a cluster this run is about to delete.

AWS deletes a cluster — green with its deployment (`DeleteTarget`), or the old blue
after the switchover — only with deletion protection off (AWS-FACTS "Deleting", S5),
and green is a copy of blue, so a protected production cluster gives a protected green.
Only the cluster the caller proved is green or the old blue is touched; production's
own protection never is. The cluster is observed first, so a rerun that finds the
protection already off changes nothing.
"""

from __future__ import annotations

from typing import Any

from aurora_bg.errors import InvalidState
from aurora_bg.polling import poll_until
from aurora_bg.results import StepResult
from tasks.aws import call, client
from tasks.rds_state import describe_cluster


def lift_deletion_protection(
    cluster_id: str,
    role: str,
    production_id: str,
    expected_arn: str | None = None,
    rds: Any = None,
    timeout: float = 600,
) -> StepResult:
    """Turn deletion protection off on `cluster_id` (the `role` cluster, "green" or
    "old blue") so that it can be deleted; say what was done with it.

    Raises InvalidState, changing nothing, when `cluster_id` is the production cluster
    or its ARN is not `expected_arn` (the ARN that proves it is the cluster meant).
    """
    if cluster_id == production_id:
        raise InvalidState(
            f"refusing to turn deletion protection off on {cluster_id}: it is the production "
            f"cluster, not the {role}"
        )
    rds = rds or client("rds")
    cluster = describe_cluster(cluster_id, rds)
    if cluster is None:
        return StepResult(
            "already-done", f"The {role} {cluster_id} is gone: no deletion protection to turn off."
        )
    if expected_arn is not None and cluster["DBClusterArn"] != expected_arn:
        raise InvalidState(
            f"cluster {cluster_id} is {cluster['DBClusterArn']}, not the {role} {expected_arn}: "
            "its deletion protection is left alone"
        )
    if not cluster.get("DeletionProtection"):
        return StepResult(
            "already-done",
            f"Deletion protection was off on the {role} {cluster_id}: nothing to turn off.",
            {"cluster": cluster_id, "protection_lifted": False},
        )
    call(
        f"turning deletion protection off on the {role} {cluster_id}",
        rds.modify_db_cluster,
        DBClusterIdentifier=cluster_id,
        DeletionProtection=False,
        ApplyImmediately=True,
    )
    poll_until(
        lambda: describe_cluster(cluster_id, rds),
        lambda found: found is None or not found.get("DeletionProtection"),
        timeout=timeout,
        what=f"deletion protection of {cluster_id} to be off",
    )
    return StepResult(
        "protection-off",
        f"Turned deletion protection off on the {role} {cluster_id} so that it can be deleted; "
        f"{production_id}'s own protection is untouched.",
        {"cluster": cluster_id, "protection_lifted": True},
    )
