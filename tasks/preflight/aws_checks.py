"""What AWS says about the cluster and the upgrade asked of it: engine, versions,
parameter groups, other deployments, and how the master password is managed."""

from __future__ import annotations

from typing import Any

from aurora_bg.params import UpgradeParameters
from tasks.aws import call, classify, is_not_found
from tasks.password import (
    NAME_THE_SECRET,
    PASSWORD_HELD,
    PASSWORD_MANAGED,
    PASSWORD_SELF_MANAGED,
    PASSWORD_UNREADABLE,
    held_password_exists,
    held_secret_name,
)
from tasks.preflight.model import PreflightCheck
from tasks.rds_state import deployments_of_source, is_password_managed


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def family(major: int) -> str:
    return f"aurora-postgresql{major}"


def password_mode(cluster: dict[str, Any], params: UpgradeParameters, sm: Any) -> str:
    if is_password_managed(cluster):
        return PASSWORD_MANAGED
    if held_password_exists(params.cluster_identifier, sm):
        return PASSWORD_HELD
    return PASSWORD_SELF_MANAGED if params.credentials_secret_arn else PASSWORD_UNREADABLE


def password_check(mode: str, params: UpgradeParameters) -> PreflightCheck:
    """A managed password is moved out and back; an owner's self-managed one is accepted
    with the secret that holds it, and left as it is."""
    detail = {
        PASSWORD_MANAGED: "managed by Secrets Manager: self-managed with the same value for the "
        "deployment, managed again after"
        + ("; credentials_secret_arn is not needed" if params.credentials_secret_arn else ""),
        PASSWORD_HELD: f"self-managed by an earlier attempt, held in "
        f"{held_secret_name(params.cluster_identifier)}",
        PASSWORD_SELF_MANAGED: f"already self-managed: left as it is, read from "
        f"{params.credentials_secret_arn}",
        PASSWORD_UNREADABLE: "self-managed, and no secret holding it is named",
    }[mode]
    return PreflightCheck("master password", mode != PASSWORD_UNREADABLE, detail, NAME_THE_SECRET)


def source_checks(
    params: UpgradeParameters, cluster: dict[str, Any], rds: Any
) -> list[PreflightCheck]:
    """Engine, target version, target parameter groups and other deployments."""
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
            version_key(target) > version_key(current),
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
    checks += _target_group_checks(params, rds)
    others = [
        d["BlueGreenDeploymentName"]
        for d in deployments_of_source(cluster["DBClusterArn"], rds)
        if d["BlueGreenDeploymentName"] != params.effective_deployment_name
    ]
    checks.append(
        PreflightCheck(
            "no other deployment",
            not others,
            f"other deployments on {cluster['DBClusterIdentifier']}: {', '.join(others)}"
            if others
            else "none",
            "delete the other Blue/Green deployment or pass its name as deployment_name",
        )
    )
    return checks


def _target_group_checks(params: UpgradeParameters, rds: Any) -> list[PreflightCheck]:
    expected = family(params.target_major)
    checks = []
    for kind, name in (
        ("cluster", params.target_cluster_parameter_group),
        ("instance", params.target_instance_parameter_group),
    ):
        found = _group_family(kind, name, rds)
        checks.append(
            PreflightCheck(
                f"target {kind} parameter group",
                found == expected,
                f"{name}: " + (f"family {found}" if found else "does not exist"),
                f"create {name} with family {expected} (with rds.logical_replication = 1 "
                "for the cluster group)"
                if found is None
                else f"use {'an' if kind == 'instance' else 'a'} {kind} parameter group of "
                f"family {expected}",
            )
        )
    return checks


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
