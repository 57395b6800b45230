"""The way out before a switchover: blue exactly as it was, nothing left behind.

Deletes the deployment with its green target, hands blue's password back to
Secrets Manager, forgets the held password and verifies blue: same version,
same parameter groups, the same deletion protection, the password managed as it
was, no deployment, no green cluster. A password its owner self-managed before the
upgrade (preflight recorded `password_mode` "self-managed") stays self-managed.

AWS deletes green with the deployment only with green's deletion protection off,
and green copies blue's: the way out turns it off on green only — the cluster the
deployment names as its Target, verified by ARN. Blue's own protection is never
touched.
"""

from __future__ import annotations

from typing import Any

from aurora_bg.errors import InvalidState
from aurora_bg.polling import poll_until
from aurora_bg.results import StepResult
from tasks.blue_green import delete_deployment
from tasks.deletion_protection import lift_deletion_protection
from tasks.password import PASSWORD_SELF_MANAGED, forget_held_password, put_password_back
from tasks.rds_state import (
    deployment_named,
    describe_cluster,
    describe_deployment,
    identifier_from_arn,
    is_password_managed,
)


def owner_self_managed(original: dict[str, Any]) -> bool:
    """The password was self-managed by its owner before the upgrade (not by this tool)."""
    return original.get("password_mode") == PASSWORD_SELF_MANAGED


def protection_word(cluster: dict[str, Any]) -> str:
    return "on" if cluster.get("DeletionProtection") else "off"


def verify_blue(cluster_id: str, original: dict[str, Any], green_id: str | None) -> list[str]:
    """What differs from the blue recorded at preflight (empty: blue is as it was)."""
    cluster = describe_cluster(cluster_id)
    if cluster is None:
        return [f"cluster {cluster_id} is missing"]
    problems = []
    if cluster["EngineVersion"] != original.get("engine_version"):
        problems.append(f"engine version is {cluster['EngineVersion']}")
    if cluster.get("DBClusterParameterGroup") != original.get("cluster_parameter_group"):
        problems.append(f"cluster parameter group is {cluster.get('DBClusterParameterGroup')}")
    if "deletion_protection" in original and bool(cluster.get("DeletionProtection")) != bool(
        original["deletion_protection"]
    ):
        problems.append(f"deletion protection is {protection_word(cluster)}")
    managed = is_password_managed(cluster)
    if owner_self_managed(original) and managed:
        problems.append("the master password is managed by Secrets Manager, not self-managed")
    elif not owner_self_managed(original) and not managed:
        problems.append("the master password is not managed by Secrets Manager")
    if green_id and describe_cluster(green_id) is not None:
        problems.append(f"green cluster {green_id} still exists")
    return problems


def take_the_way_out(
    cluster_id: str, deployment_name: str, original: dict[str, Any], reason: str
) -> list[StepResult]:
    """Undo everything done before a switchover. Raises InvalidState after a switchover."""
    results = []
    deployment = deployment_named(deployment_name)
    green_id = None
    if deployment is not None:
        deployment_id = deployment["BlueGreenDeploymentIdentifier"]
        if deployment["Status"] == "SWITCHOVER_IN_PROGRESS":
            deployment = poll_until(
                lambda: describe_deployment(deployment_id),
                lambda d: d is None or d["Status"] != "SWITCHOVER_IN_PROGRESS",
                timeout=3900,
                what=f"the switchover of {deployment_id} to end",
            ).last
        if deployment is not None and deployment["Status"] == "SWITCHOVER_COMPLETED":
            raise InvalidState(
                f"the switchover of {deployment_id} has completed: there is no automatic way "
                "back; the cluster now runs the new version"
            )
        if deployment is not None:
            green_arn = deployment.get("Target", "")
            green_id = identifier_from_arn(green_arn)
            if green_id and deployment["Status"] != "DELETING":
                results.append(
                    lift_deletion_protection(green_id, "green", cluster_id, expected_arn=green_arn)
                )
            results.append(delete_deployment(deployment_id, delete_target=True))
    credentials = original.get("credentials_secret_arn") if owner_self_managed(original) else None
    results.append(put_password_back(cluster_id, credentials_secret_arn=credentials))
    results.append(forget_held_password(cluster_id))
    problems = verify_blue(cluster_id, original, green_id)
    if problems:
        results.append(
            StepResult("verify-failed", f"Blue is NOT as it was: {'; '.join(problems)}.")
        )
    else:
        password = (
            "password self-managed as before"
            if owner_self_managed(original)
            else "password managed by Secrets Manager"
        )
        results.append(
            StepResult(
                "verified",
                f"Blue {cluster_id} is as it was: {original.get('engine_version')}, "
                f"{original.get('cluster_parameter_group')}, {password}, deletion protection "
                f"{protection_word(describe_cluster(cluster_id) or {})}, no deployment, no green.",
            )
        )
    results.insert(0, StepResult("way-out", f"Took the way out because {reason}"))
    return results
