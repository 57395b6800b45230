"""Phase 1: everything that can be checked read-only, before anything changes.

Every check is run (not just until the first failure) so the operator gets
the whole list with a fix for each, and preflight makes no mutating call: it
describes, and reads secrets and blue's catalogs. Preflight also tells where an
earlier attempt left off: a rerun resumes from what AWS shows. AWS's
prerequisites of a creation (the SQL ones, capacity, the name) are checked when
the deployment does not exist yet; once it does, green's validation watches.
"""

from __future__ import annotations

from typing import Any

from aurora_bg.params import UpgradeParameters
from tasks.aws import client
from tasks.password import held_password_exists
from tasks.preflight.aws_checks import password_check, password_mode, source_checks
from tasks.preflight.database_checks import look_inside_blue
from tasks.preflight.model import (
    AFTER_SWITCHOVER,
    BEFORE_SWITCHOVER,
    FRESH,
    Preflight,
    PreflightCheck,
)
from tasks.preflight.parameters import (
    UNLOGGED_TABLES_REPLICATED,
    is_on,
    logical_replication_check,
    read_group_values,
    writer_in_sync_check,
)
from tasks.preflight.topology import topology_checks
from tasks.rds_state import (
    TAG_UPGRADED_BY,
    deployment_named,
    describe_cluster,
    member_ids,
    retired_clusters,
    tags_of,
)


def _situation(params: UpgradeParameters, cluster: dict[str, Any], rds: Any, sm: Any) -> str:
    ours = deployment_named(params.effective_deployment_name, rds)
    if ours is not None:
        return AFTER_SWITCHOVER if ours["Status"] == "SWITCHOVER_COMPLETED" else BEFORE_SWITCHOVER
    on_target = cluster["EngineVersion"] == params.target_engine_version
    if on_target and (
        tags_of(cluster).get(TAG_UPGRADED_BY) == params.effective_deployment_name
        or retired_clusters(params.cluster_identifier, rds)
        or held_password_exists(params.cluster_identifier, sm)
    ):
        return AFTER_SWITCHOVER
    return FRESH


def run_preflight(params: UpgradeParameters, rds: Any = None, sm: Any = None) -> Preflight:
    """Run every read-only check; never changes anything.

    Facts for the later phases: blue as it is now (what the way out restores),
    how its password is managed, its databases, and every warning.
    """
    rds, sm = rds or client("rds"), sm or client("secretsmanager")
    cluster_id = params.cluster_identifier
    cluster = describe_cluster(cluster_id, rds)
    if cluster is None:
        return Preflight(
            FRESH,
            [
                PreflightCheck(
                    "cluster exists",
                    False,
                    f"no DB cluster named {cluster_id} in this account and region",
                    "check cluster_identifier, AWS_REGION and the credentials in use",
                )
            ],
        )
    situation = _situation(params, cluster, rds, sm)
    mode = password_mode(cluster, params, sm)
    facts: dict[str, Any] = {
        "cluster_arn": cluster["DBClusterArn"],
        "engine_version": cluster["EngineVersion"],
        "cluster_parameter_group": cluster.get("DBClusterParameterGroup"),
        "instances": member_ids(cluster),
        "secret_arn": (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
        "password_mode": mode,
        "credentials_secret_arn": params.credentials_secret_arn,
        "deletion_protection": bool(cluster.get("DeletionProtection")),
        "associated_roles": [r.get("RoleArn") for r in cluster.get("AssociatedRoles", [])],
    }
    checks = [
        PreflightCheck(
            "cluster available",
            cluster["Status"] == "available",
            f"{cluster_id} is {cluster['Status']}",
            "wait until the cluster is available, then rerun",
        )
    ]
    if situation == AFTER_SWITCHOVER:
        return Preflight(situation, checks, facts)
    group = cluster.get("DBClusterParameterGroup", "")
    values = read_group_values(group, rds)
    checks += source_checks(params, cluster, rds)
    checks += [
        logical_replication_check(group, values),
        writer_in_sync_check(cluster),
        password_check(mode, params),
    ]
    checks += topology_checks(cluster, params.effective_deployment_name, rds)
    inside = look_inside_blue(
        params,
        cluster,
        sm,
        unlogged_replicated=is_on(values, UNLOGGED_TABLES_REPLICATED),
        prerequisites=situation == FRESH,
    )
    checks += inside.checks
    preflight = Preflight(situation, checks, {**facts, **inside.facts})
    preflight.facts["warnings"] = preflight.recorded_warnings()
    return preflight
