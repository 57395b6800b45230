"""What AWS supports around the cluster, before a Blue/Green deployment (AWS-FACTS.md).

Each rule is refused, warned or recorded as AWS documents it:
- the source version must be in AWS's Blue/Green list (S11): refused;
- the deployment name: 1–60 characters, `[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*` (S13):
  refused;
- Aurora Serverless v1 and cross-Region read replicas are not supported (S1): refused;
- a Global Database is supported from its primary Region only, with extra rules
  (S1, S6): a secondary is refused, a primary warned;
- RDS Proxy: the limitations page lists it, the newest overview supports it (S1, S6):
  warned;
- zero-ETL integrations must be deleted before the switchover (S1): warned;
- associated IAM roles are not copied to the new production cluster (S1, S3),
  CloudFormation-managed clusters are not supported (S1), and green copies
  deletion protection, which deleting green needs off (S5): warned, so the operator
  knows the run will turn it off on green and on the old blue (never on production).
Warnings are recorded in preflight's facts for the phases that follow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from tasks.aws import classify
from tasks.preflight.model import PreflightCheck, warning

# The lowest minor version of each major that AWS supports as a Blue/Green source (S11).
BLUE_GREEN_SOURCES: Final = {11: 21, 12: 16, 13: 12, 14: 9, 15: 4, 16: 1}
DEPLOYMENT_NAME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*$")
DEPLOYMENT_NAME_MAX: Final = 60
CLOUDFORMATION_TAG: Final = "aws:cloudformation:stack-name"


def supported_sources() -> str:
    return ", ".join(f"{major}.{minor}+" for major, minor in BLUE_GREEN_SOURCES.items())


def source_version_check(version: str) -> PreflightCheck:
    """AWS supports Blue/Green from `version` (S11); unknown newer majors are warned."""
    major, _, minor = version.partition(".")
    lowest = BLUE_GREEN_SOURCES.get(int(major)) if major.isdigit() else None
    name = "source version supports Blue/Green"
    fix = f"upgrade blue to a supported minor version first ({supported_sources()})"
    if lowest is None and major.isdigit() and int(major) > max(BLUE_GREEN_SOURCES):
        return warning(
            name,
            False,
            f"{version} is newer than the versions this tool knows ({supported_sources()})",
            "check AWS's list of versions that support Blue/Green deployments",
        )
    supported = lowest is not None and minor.isdigit() and int(minor) >= lowest
    return PreflightCheck(
        name, supported, f"blue runs {version}; AWS supports {supported_sources()}", fix
    )


def deployment_name_check(name: str) -> PreflightCheck:
    """1–60 characters, a letter first, letters and digits in hyphen-separated words."""
    problems = []
    if not 1 <= len(name) <= DEPLOYMENT_NAME_MAX:
        problems.append(f"{len(name)} characters (1–{DEPLOYMENT_NAME_MAX} allowed)")
    if not DEPLOYMENT_NAME.match(name):
        problems.append("not a letter followed by letters, digits and single hyphens")
    return PreflightCheck(
        "deployment name valid",
        not problems,
        f"{name!r}: {'; '.join(problems)}" if problems else f"{name!r} is a valid name",
        f"choose a deployment_name of 1–{DEPLOYMENT_NAME_MAX} letters, digits and single "
        "hyphens, starting with a letter (the default is aurora-bg-<cluster>-<version>)",
    )


def serverless_v1_check(cluster: dict[str, Any]) -> PreflightCheck:
    mode = cluster.get("EngineMode", "provisioned")
    return PreflightCheck(
        "not Serverless v1",
        mode != "serverless",
        f"engine mode {mode}",
        "AWS does not support Blue/Green for Aurora Serverless v1: move the cluster to "
        "provisioned or Serverless v2 capacity first",
    )


def cross_region_replicas_check(cluster: dict[str, Any]) -> PreflightCheck:
    region = _region(cluster["DBClusterArn"])
    replicas = [a for a in cluster.get("ReadReplicaIdentifiers", []) if _region(a) != region]
    source = cluster.get("ReplicationSourceIdentifier") or ""
    found = replicas + ([f"source {source}"] if source and _region(source) != region else [])
    return PreflightCheck(
        "no cross-Region replicas",
        not found,
        f"cross-Region replication: {', '.join(found)}" if found else "none",
        "AWS does not support Blue/Green with cross-Region read replicas: remove them "
        "(or promote this cluster) before the upgrade",
    )


def global_database_check(cluster: dict[str, Any], rds: Any) -> PreflightCheck:
    arn = cluster["DBClusterArn"]
    name = "Global Database role"
    for page in _pages(rds, "describe_global_clusters", "reading Global Databases"):
        for global_cluster in page.get("GlobalClusters", []):
            for member in global_cluster.get("GlobalClusterMembers", []):
                if member.get("DBClusterArn") != arn:
                    continue
                identifier = global_cluster.get("GlobalClusterIdentifier", "?")
                if not member.get("IsWriter"):
                    return PreflightCheck(
                        name,
                        False,
                        f"a secondary cluster of Global Database {identifier}",
                        "run the upgrade against the primary cluster, from the primary Region",
                    )
                return warning(
                    name,
                    False,
                    f"the primary cluster of Global Database {identifier}",
                    "create the target parameter groups with the same names in every "
                    "secondary Region, and grant rds:CreateGlobalCluster, ModifyGlobalCluster "
                    "and DeleteGlobalCluster (docs/iam.md)",
                )
    return PreflightCheck(name, True, "not a member of a Global Database")


def proxies_check(cluster: dict[str, Any], rds: Any) -> PreflightCheck:
    """RDS Proxy targets of the cluster or its instances (warned: AWS's pages disagree)."""
    ours = {cluster["DBClusterIdentifier"]} | {
        m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])
    }
    found = []
    for page in _pages(rds, "describe_db_proxies", "listing RDS proxies"):
        for proxy in page.get("DBProxies", []):
            if proxy.get("EngineFamily", "POSTGRESQL") != "POSTGRESQL":
                continue
            name = proxy["DBProxyName"]
            doing = f"reading the targets of RDS proxy {name}"
            for targets in _pages(rds, "describe_db_proxy_targets", doing, DBProxyName=name):
                if any(t.get("RdsResourceId") in ours for t in targets.get("Targets", [])):
                    found.append(name)
                    break
    return warning(
        "no DB proxies",
        not found,
        f"RDS proxies targeting it: {', '.join(found)}" if found else "no RDS proxy targets it",
        "AWS's limitations page lists RDS Proxy as unsupported, its newest overview as "
        "supported: after the switchover, check that each proxy reaches the new cluster",
    )


def integrations_check(cluster: dict[str, Any], rds: Any) -> PreflightCheck:
    arn = cluster["DBClusterArn"]
    found = [
        integration.get("IntegrationName") or integration.get("IntegrationArn", "?")
        for page in _pages(rds, "describe_integrations", "listing zero-ETL integrations")
        for integration in page.get("Integrations", [])
        if integration.get("SourceArn") == arn
    ]
    return warning(
        "no zero-ETL integrations",
        not found,
        f"zero-ETL integrations from it: {', '.join(found)}" if found else "none",
        "delete them before the switchover (AWS requires it) and create them again from "
        "the new cluster after it",
    )


def iam_roles_check(cluster: dict[str, Any]) -> PreflightCheck:
    roles = [r.get("RoleArn", "?") for r in cluster.get("AssociatedRoles", [])]
    return warning(
        "no associated IAM roles",
        not roles,
        f"associated roles: {', '.join(roles)}" if roles else "none",
        "AWS does not carry them to the new production cluster: associate them with it "
        "after the switchover; creating the deployment needs iam:PassRole on them "
        "(docs/iam.md)",
    )


def deletion_protection_check(cluster: dict[str, Any]) -> PreflightCheck:
    protected = bool(cluster.get("DeletionProtection"))
    return warning(
        "deletion protection",
        not protected,
        "on: green copies it" if protected else "off",
        "nothing to do: AWS deletes green (the way out) and the old blue (clean-up) only "
        "with their protection off, so the run turns it off on the deployment's own green "
        "and on the proven old blue, never on production",
    )


def cloudformation_check(cluster: dict[str, Any]) -> PreflightCheck:
    tags = {t["Key"]: t["Value"] for t in cluster.get("TagList", [])}
    stack = tags.get(CLOUDFORMATION_TAG)
    return warning(
        "not managed by CloudFormation",
        stack is None,
        f"managed by stack {stack}" if stack else "no CloudFormation stack tag",
        "AWS does not support Blue/Green for CloudFormation-managed clusters: the "
        "switchover renames resources the stack owns; bring the stack in line after it",
    )


def topology_checks(
    cluster: dict[str, Any], deployment_name: str, rds: Any
) -> list[PreflightCheck]:
    """Every topology rule for `cluster` and the deployment name the run would use."""
    return [
        source_version_check(cluster["EngineVersion"]),
        deployment_name_check(deployment_name),
        serverless_v1_check(cluster),
        cross_region_replicas_check(cluster),
        global_database_check(cluster, rds),
        proxies_check(cluster, rds),
        integrations_check(cluster, rds),
        iam_roles_check(cluster),
        deletion_protection_check(cluster),
        cloudformation_check(cluster),
    ]


def _region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _pages(rds: Any, operation: str, doing: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Describe operation, failures classified (AccessDenied names the
    permission)."""
    marker: str | None = None
    function = getattr(rds, operation)
    while True:
        try:
            page = function(**kwargs, **({"Marker": marker} if marker else {}))
        except Exception as error:
            raise classify(error, doing, "rds") from None
        yield page
        marker = page.get("Marker")
        if not marker:
            return
