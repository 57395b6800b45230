"""Read-only views of the live RDS state that every step observes first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aurora_bg.errors import InvalidState
from aurora_bg.polling import PollStats, poll_until
from tasks.aws import call, classify, client, is_not_found

TAG_RETIRED_FROM = "aurora-bg:retired-from"
TAG_DEPLOYMENT = "aurora-bg:deployment"
# On the upgraded cluster, the deployment's name: once the old blue is gone it is
# the one sign left that this tool did the upgrade, so that a rerun finishes the job.
TAG_UPGRADED_BY = "aurora-bg:upgraded-by"


def identifier_from_arn(arn: str) -> str:
    """`arn:aws:rds:…:cluster:name` → `name` (also for `:db:` ARNs)."""
    return arn.rsplit(":", 1)[-1]


def describe_cluster(cluster_id: str, rds: Any = None) -> dict[str, Any] | None:
    """The cluster as AWS reports it, or None when it does not exist."""
    rds = rds or client("rds")
    try:
        return rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    except Exception as error:
        if is_not_found(error):
            return None
        raise classify(error, f"describing cluster {cluster_id}") from None


def existing_cluster(cluster_id: str, rds: Any = None) -> dict[str, Any]:
    """The cluster as AWS reports it. Raises InvalidState when it does not exist."""
    cluster = describe_cluster(cluster_id, rds)
    if cluster is None:
        raise InvalidState(f"cluster {cluster_id} does not exist")
    return cluster


def describe_instance(instance_id: str, rds: Any = None) -> dict[str, Any] | None:
    rds = rds or client("rds")
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
    except Exception as error:
        if is_not_found(error):
            return None
        raise classify(error, f"describing instance {instance_id}") from None


def member_ids(cluster: dict[str, Any]) -> list[str]:
    return [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]


def is_password_managed(cluster: dict[str, Any]) -> bool:
    return bool(cluster.get("MasterUserSecret"))


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("TagList", [])}


def deployments_of_source(source_arn: str, rds: Any = None) -> list[dict[str, Any]]:
    rds = rds or client("rds")
    response = call(
        "listing Blue/Green deployments",
        rds.describe_blue_green_deployments,
        Filters=[{"Name": "source", "Values": [source_arn]}],
    )
    return response["BlueGreenDeployments"]


def deployment_named(name: str, rds: Any = None) -> dict[str, Any] | None:
    rds = rds or client("rds")
    response = call(
        "finding the Blue/Green deployment",
        rds.describe_blue_green_deployments,
        Filters=[{"Name": "blue-green-deployment-name", "Values": [name]}],
    )
    found = response["BlueGreenDeployments"]
    return found[0] if found else None


def describe_deployment(deployment_id: str, rds: Any = None) -> dict[str, Any] | None:
    rds = rds or client("rds")
    try:
        return rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=deployment_id)[
            "BlueGreenDeployments"
        ][0]
    except Exception as error:
        if is_not_found(error):
            return None
        raise classify(error, f"describing deployment {deployment_id}") from None


def existing_deployment(deployment_id: str, rds: Any = None) -> dict[str, Any]:
    """The deployment as AWS reports it. Raises InvalidState when it does not exist."""
    deployment = describe_deployment(deployment_id, rds)
    if deployment is None:
        raise InvalidState(f"Blue/Green deployment {deployment_id} does not exist")
    return deployment


def retired_clusters(cluster_id: str, rds: Any = None) -> list[dict[str, Any]]:
    """Old blue clusters this tool tagged as retired from `cluster_id` before cleanup."""
    rds = rds or client("rds")
    clusters = call("listing clusters", rds.describe_db_clusters)["DBClusters"]
    return [c for c in clusters if tags_of(c).get(TAG_RETIRED_FROM) == cluster_id]


def wait_until_gone(
    describe: Callable[[str, Any], dict[str, Any] | None],
    identifier: str,
    what: str,
    rds: Any = None,
    timeout: float = 3600,
) -> PollStats[dict[str, Any] | None]:
    """Wait until `describe(identifier, rds)` finds nothing; WaitTimedOut after `timeout`.

    Deleting a deployment takes seconds, an instance or a cluster minutes: poll
    at 1 s for the first seconds (most deletions end there), then back off to
    15 s, so a long deletion costs about as many calls as a 15-s poll.
    """
    rds = rds or client("rds")
    return poll_until(
        lambda: describe(identifier, rds),
        lambda found: found is None,
        timeout=timeout,
        what=f"deletion of {what} {identifier}",
        first_interval=1.0,
        settle=5.0,
        max_interval=15.0,
    )
