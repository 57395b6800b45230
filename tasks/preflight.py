"""Phase 1: everything that can be checked read-only, before anything changes.

Every check is run (not just until the first failure) so the operator gets
the whole list with a fix for each. Preflight also tells where an earlier
attempt left off: a rerun resumes from what AWS shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aurora_bg.errors import AuroraBGError
from aurora_bg.params import UpgradeParameters
from tasks.aws import call, classify, client, is_not_found
from tasks.password import current_password, held_password_exists, held_secret_name
from tasks.rds_state import (
    TAG_UPGRADED_BY,
    deployment_named,
    deployments_of_source,
    describe_cluster,
    is_password_managed,
    member_ids,
    retired_clusters,
    tags_of,
)
from tasks.validation.custom import problems_with_checks_file
from tasks.validation.session import Endpoint

FRESH = "fresh"
BEFORE_SWITCHOVER = "resume-before-switchover"
AFTER_SWITCHOVER = "resume-after-switchover"


@dataclass(frozen=True)
class PreflightCheck:
    """One preflight finding: its name, whether it passed, what was seen and the fix."""

    name: str
    passed: bool
    detail: str
    fix: str = ""


@dataclass
class Preflight:
    """Every preflight check of one run, and where an earlier attempt left off (`situation`)."""

    situation: str
    checks: list[PreflightCheck]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[PreflightCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        if self.passed:
            return f"All {len(self.checks)} preflight checks passed ({self.situation})."
        names = ", ".join(c.name for c in self.failed)
        return f"{len(self.failed)} of {len(self.checks)} preflight checks failed: {names}."

    def refusal(self) -> str:
        """One line: which checks failed, what each found and its fix."""
        found = "; ".join(f"{c.name} ({c.detail}): {c.fix}" for c in self.failed)
        counted = f"{len(self.failed)} of {len(self.checks)} preflight checks failed"
        return " ".join(f"{counted}: {found}".split())

    def rows(self) -> list[dict[str, str]]:
        return [
            {
                "check": c.name,
                "result": "pass" if c.passed else "FAIL",
                "detail": c.detail,
                "fix": c.fix,
            }
            for c in self.checks
        ]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _family(major: int) -> str:
    return f"aurora-postgresql{major}"


def _group_family(kind: str, name: str, rds: Any) -> str | None:
    """The group's family; None when it does not exist (a NotFound fault or, as moto
    answers for instance groups, an empty list)."""
    try:
        if kind == "cluster":
            groups = rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=name)
            found = groups["DBClusterParameterGroups"]
        else:
            found = rds.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"]
    except Exception as error:
        if is_not_found(error):
            return None
        raise classify(error, f"reading parameter group {name}", "rds") from None
    return found[0]["DBParameterGroupFamily"] if found else None


def _logical_replication_on(group: str, rds: Any) -> bool:
    pages = rds.get_paginator("describe_db_cluster_parameters").paginate(
        DBClusterParameterGroupName=group
    )
    try:
        for page in pages:
            for parameter in page["Parameters"]:
                if parameter["ParameterName"] == "rds.logical_replication":
                    return parameter.get("ParameterValue") == "1"
    except Exception as error:
        raise classify(error, f"reading the parameters of {group}", "rds") from None
    return False


def _valid_targets(engine: str, version: str, rds: Any) -> list[str] | None:
    """AWS's valid upgrade targets for `version`, or None when AWS does not say."""
    versions = call(
        "reading engine versions",
        rds.describe_db_engine_versions,
        Engine=engine,
        EngineVersion=version,
    )["DBEngineVersions"]
    if not versions:
        return None
    return [t["EngineVersion"] for t in versions[0].get("ValidUpgradeTarget", [])]


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
    """Run every read-only check; never changes anything."""
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
    facts = {
        "cluster_arn": cluster["DBClusterArn"],
        "engine_version": cluster["EngineVersion"],
        "cluster_parameter_group": cluster.get("DBClusterParameterGroup"),
        "instances": member_ids(cluster),
        "secret_arn": (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
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
    checks += _source_checks(params, cluster, rds, sm)
    checks += _checks_file_check(params, cluster, rds, sm)
    return Preflight(situation, checks, facts)


def _checks_file_check(
    params: UpgradeParameters, cluster: dict[str, Any], rds: Any, sm: Any
) -> list[PreflightCheck]:
    """The operator's checks file parses, has known keys only, and each query plans on
    blue (EXPLAIN in a read-only session, never run) without writing."""
    path = params.validation.checks_file
    if path is None:
        return []
    try:
        password = current_password(params.cluster_identifier, rds, sm)
    except AuroraBGError as error:
        problems = [f"the master password to try its SQL with cannot be read: {error}"]
    else:
        problems = problems_with_checks_file(
            path,
            Endpoint(cluster["Endpoint"], int(cluster["Port"])),
            cluster["MasterUsername"],
            password,
            params.validation.database,
        )
    return [
        PreflightCheck(
            "validation checks file",
            not problems,
            "; ".join(problems) or f"{path}: every check plans on blue, read-only",
            "correct the checks file (see deployments/checks.example.yaml), then rerun",
        )
    ]


def _source_checks(
    params: UpgradeParameters, cluster: dict[str, Any], rds: Any, sm: Any
) -> list[PreflightCheck]:
    cluster_id = params.cluster_identifier
    current, target = cluster["EngineVersion"], params.target_engine_version
    checks = [
        PreflightCheck(
            "engine is aurora-postgresql",
            cluster["Engine"] == "aurora-postgresql",
            f"engine is {cluster['Engine']}",
            "this tool upgrades Aurora PostgreSQL clusters only",
        ),
        PreflightCheck(
            "target version is newer",
            _version_key(target) > _version_key(current),
            f"current {current}, target {target}",
            "choose a target_engine_version newer than the current one",
        ),
    ]
    valid = _valid_targets(cluster["Engine"], current, rds)
    if valid is not None:
        checks.append(
            PreflightCheck(
                "target is a valid upgrade",
                target in valid,
                f"AWS lists {', '.join(valid) or 'no targets'} as upgrades from {current}",
                "choose one of the versions AWS lists as a valid upgrade target",
            )
        )
    group = cluster.get("DBClusterParameterGroup", "")
    checks.append(
        PreflightCheck(
            "logical replication on",
            _logical_replication_on(group, rds),
            f"rds.logical_replication in {group}",
            f"set rds.logical_replication = 1 in {group} and reboot the writer",
        )
    )
    expected_family = _family(params.target_major)
    for kind, name in (
        ("cluster", params.target_cluster_parameter_group),
        ("instance", params.target_instance_parameter_group),
    ):
        family = _group_family(kind, name, rds)
        checks.append(
            PreflightCheck(
                f"target {kind} parameter group",
                family == expected_family,
                f"{name}: " + (f"family {family}" if family else "does not exist"),
                f"create {name} with family {expected_family} (with rds.logical_replication = 1 "
                "for the cluster group)"
                if family is None
                else f"use {'an' if kind == 'instance' else 'a'} {kind} parameter group of "
                f"family {expected_family}",
            )
        )
    others = [
        d["BlueGreenDeploymentName"]
        for d in deployments_of_source(cluster["DBClusterArn"], rds)
        if d["BlueGreenDeploymentName"] != params.effective_deployment_name
    ]
    checks.append(
        PreflightCheck(
            "no other deployment",
            not others,
            f"other deployments on {cluster_id}: {', '.join(others)}" if others else "none",
            "delete the other Blue/Green deployment or pass its name as deployment_name",
        )
    )
    managed = is_password_managed(cluster)
    held = (not managed) and held_password_exists(cluster_id, sm)
    checks.append(
        PreflightCheck(
            "master password managed",
            managed or held,
            "managed by Secrets Manager"
            if managed
            else ("self-managed by an earlier attempt" if held else "self-managed"),
            f"turn ManageMasterUserPassword on for {cluster_id} "
            f"(or restore {held_secret_name(cluster_id)})",
        )
    )
    return checks
