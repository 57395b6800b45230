"""Phases 4, 6 and 9: look at green (read-only) and at the switched cluster, and move
the new cluster's sequences past the old blue's right after the switchover.

The password is read from Secrets Manager inside each task and lives only in
a local variable for the duration of the checks.

A validation with blockers stops the run with `SwitchoverBlocked`: nothing is
switched and nothing is undone, the deployment stays for a rerun once the
blockers are fixed (or for a person to reject at the next pause, which takes
the way out).
"""

from __future__ import annotations

from typing import Any

from aurora_bg.errors import PreconditionFailed
from aurora_bg.params import UpgradeParameters
from aurora_bg.results import StepResult
from tasks.blue_green import members
from tasks.password import (
    current_password,
    held_password_exists,
    read_held_password,
    read_managed_password,
)
from tasks.rds_state import (
    deployment_named,
    describe_cluster,
    describe_deployment,
    describe_instance,
    existing_cluster,
    existing_deployment,
    identifier_from_arn,
    retired_clusters,
)
from tasks.validation.model import markdown_item, open_session
from tasks.validation.sequences import advance_sequences
from tasks.validation.session import Endpoint, connect, fetch_value
from tasks.validation.suites import Check, ValidationReport, check_after_switchover, validate_green


class SwitchoverBlocked(PreconditionFailed):
    """Validation found blockers: stop before the next pause, change nothing, undo nothing."""


def endpoint_of(cluster: dict[str, Any]) -> Endpoint:
    return Endpoint(cluster["Endpoint"], int(cluster["Port"]))


def validate_green_side(
    params: UpgradeParameters, deployment_id: str, guardrails_block: bool = False
) -> ValidationReport:
    """Compare green with blue through read-only sessions (phase 4; phase 6 with the
    switchover guardrails blocking)."""
    settings = params.validation
    deployment = existing_deployment(deployment_id)
    blue_id = params.cluster_identifier
    green_id = deployment["Target"].rsplit(":", 1)[-1]
    blue, green = existing_cluster(blue_id), existing_cluster(green_id)
    password = current_password(blue_id)
    return validate_green(
        endpoint_of(green),
        endpoint_of(blue),
        blue["MasterUsername"],
        password,
        settings.database,
        target_major=params.target_major,
        schemas=settings.schemas,
        tables=settings.tables or None,
        exact_count_limit=settings.exact_count_limit,
        lag_grace_s=settings.lag_grace_seconds,
        checks_file=settings.checks_file,
        long_transaction_s=settings.long_transaction_seconds,
        guardrails_block=guardrails_block,
        statement_timeout_ms=settings.statement_timeout_ms,
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
    replication = validate_green_side(params, deployment_id, guardrails_block=True)
    return ValidationReport(checks + replication.checks)


def pause_note(report: ValidationReport) -> str:
    """What a person reads in a pause: the summary, then each warning with why and fix."""
    lines = [f"Validation: {report.summary()}"]
    if report.warnings:
        lines += ["", "**Warnings** (they do not block; look at them before approving):", ""]
        lines += [markdown_item(c) for c in report.warnings]
    return "\n".join(lines)


def stop_on_blockers(stage: str, report: ValidationReport) -> None:
    """Raise SwitchoverBlocked naming every blocker and its fix, when there is one."""
    if not report.passed:
        raise SwitchoverBlocked(f"{stage}: {report.blocking_message()}")


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


def advance_sequences_after_switchover(
    params: UpgradeParameters, new: Endpoint, user: str
) -> StepResult:
    """Move the new cluster's sequences to at least the old blue's last values.

    The old blue is found through the deployment's SwitchoverDetails (or, once the
    deployment is gone, by the retired-from tag) and read with the held password,
    read-only; the new cluster is written with the current one.
    """
    cluster_id = params.cluster_identifier
    old = _old_blue(params)
    if old is None:
        return StepResult(
            "skipped", f"The old blue of {cluster_id} is gone: no sequence values to read."
        )
    old_id = old["DBClusterIdentifier"]
    if not held_password_exists(cluster_id):
        return StepResult(
            "skipped",
            f"The password of the old blue {old_id} is no longer held: this step ran before "
            "the password went back into Secrets Manager.",
        )
    settings = params.validation
    with (
        open_session(
            "blue",
            endpoint_of(old),
            user,
            read_held_password(cluster_id),
            settings.database,
            read_only=True,
            statement_timeout_ms=settings.statement_timeout_ms,
        ) as old_blue,
        open_session(
            "green",
            new,
            user,
            current_password(cluster_id),
            settings.database,
            read_only=False,
            statement_timeout_ms=settings.statement_timeout_ms,
        ) as new_cluster,
    ):
        return advance_sequences(old_blue, new_cluster)


def _old_blue(params: UpgradeParameters) -> dict[str, Any] | None:
    deployment = deployment_named(params.effective_deployment_name)
    if deployment is not None and deployment.get("Status") == "SWITCHOVER_COMPLETED":
        for detail in deployment.get("SwitchoverDetails", []):
            if ":cluster:" in detail.get("SourceMember", ""):
                return describe_cluster(identifier_from_arn(detail["SourceMember"]))
    retired = retired_clusters(params.cluster_identifier)
    return retired[0] if retired else None


def prove_managed_password(cluster_id: str, dbname: str) -> str:
    """Log in with the new managed secret's value; returns the server version seen."""
    cluster = existing_cluster(cluster_id)
    password = read_managed_password(cluster)
    endpoint = endpoint_of(cluster)
    with connect(endpoint, cluster["MasterUsername"], password, dbname) as conn:
        version = fetch_value(
            conn,
            "SHOW server_version",
            endpoint=endpoint,
            dbname=dbname,
            doing="reading the version",
        )
    return str(version)
