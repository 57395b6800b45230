"""Phases 4, 6 and 9: look at green (read-only) and at the switched cluster.

The password is read from Secrets Manager inside each task and lives only in
a local variable for the duration of the checks.
"""

from __future__ import annotations

from typing import Any

from aurora_bg.params import UpgradeParameters
from tasks.blue_green import members
from tasks.password import current_password, read_managed_password
from tasks.pg_session import Endpoint, connect
from tasks.rds_state import describe_cluster, describe_deployment, describe_instance
from tasks.validation import Check, ValidationReport, check_after_switchover, validate_green


def endpoint_of(cluster: dict[str, Any]) -> Endpoint:
    return Endpoint(cluster["Endpoint"], int(cluster["Port"]))


def validate_green_side(params: UpgradeParameters, deployment_id: str) -> ValidationReport:
    """Compare green with blue through read-only sessions (phase 4)."""
    deployment = describe_deployment(deployment_id)
    blue_id = params.cluster_identifier
    green_id = deployment["Target"].rsplit(":", 1)[-1]
    blue, green = describe_cluster(blue_id), describe_cluster(green_id)
    password = current_password(blue_id)
    return validate_green(
        endpoint_of(green),
        endpoint_of(blue),
        blue["MasterUsername"],
        password,
        params.validation.database,
        target_major=params.target_major,
        schemas=params.validation.schemas,
        tables=params.validation.tables or None,
    )


def pre_switchover_checks(params: UpgradeParameters, deployment_id: str) -> ValidationReport:
    """Deployment AVAILABLE, every green member available, replication caught up (phase 6)."""
    deployment = describe_deployment(deployment_id) or {}
    checks = [
        Check(
            "deployment available",
            "both",
            deployment.get("Status") == "AVAILABLE",
            str(deployment.get("Status", "missing")),
            "AVAILABLE",
            "blocker",
            "AWS refuses a switchover unless the deployment is AVAILABLE.",
        )
    ]
    for source, target, status in members(deployment):
        found = describe_cluster(target) or describe_instance(target) or {}
        ready = status == "AVAILABLE" and found.get("Status", found.get("DBInstanceStatus")) in (
            "available",
        )
        checks.append(
            Check(
                f"green member {target}",
                "green",
                ready,
                f"pair {status}, {found.get('Status') or found.get('DBInstanceStatus') or 'gone'}",
                "pair AVAILABLE, available",
                "blocker",
                f"{target} takes {source}'s place: it must be available before the switchover.",
            )
        )
    replication = validate_green_side(params, deployment_id)
    return ValidationReport(checks + replication.checks)


def post_switchover_checks(
    params: UpgradeParameters, original: Endpoint, user: str
) -> ValidationReport:
    """The original endpoint reaches the new version and accepts writes (phase 9)."""
    return check_after_switchover(
        original,
        user,
        current_password(params.cluster_identifier),
        params.validation.database,
        target_major=params.target_major,
    )


def prove_managed_password(cluster_id: str, dbname: str) -> str:
    """Log in with the new managed secret's value; returns the server version seen."""
    cluster = describe_cluster(cluster_id)
    password = read_managed_password(cluster)
    with connect(endpoint_of(cluster), cluster["MasterUsername"], password, dbname) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])
