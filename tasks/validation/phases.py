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
from tasks.password import master_credentials, read_managed_password, read_secret_credentials
from tasks.rds_state import (
    deployment_named,
    describe_cluster,
    describe_deployment,
    existing_cluster,
    existing_deployment,
    identifier_from_arn,
    retired_clusters,
)
from tasks.validation.databases import database_sessions, list_databases
from tasks.validation.deployment import (
    check_available,
    check_members,
    check_replication_not_degraded,
)
from tasks.validation.model import markdown_item, open_session
from tasks.validation.sequences import advance_every_database
from tasks.validation.session import Endpoint, connect, fetch_value
from tasks.validation.suites import ValidationReport, check_after_switchover, validate_green


class SwitchoverBlocked(PreconditionFailed):
    """Validation found blockers: stop before the next pause, change nothing, undo nothing."""


def endpoint_of(cluster: dict[str, Any]) -> Endpoint:
    return Endpoint(cluster["Endpoint"], int(cluster["Port"]))


def validate_green_side(
    params: UpgradeParameters, deployment_id: str, guardrails_block: bool = False
) -> ValidationReport:
    """Compare green with blue through read-only sessions, every database of
    `validation.databases` (empty: all), after the deployment's own word on its
    replication (phase 4; phase 6 with the switchover guardrails blocking)."""
    settings = params.validation
    deployment = existing_deployment(deployment_id)
    blue_id = params.cluster_identifier
    green_id = deployment["Target"].rsplit(":", 1)[-1]
    blue, green = existing_cluster(blue_id), existing_cluster(green_id)
    user, password = master_credentials(blue, params)
    report = validate_green(
        endpoint_of(green),
        endpoint_of(blue),
        user,
        password,
        settings.database,
        target_major=params.target_major,
        databases=settings.databases,
        schemas=settings.schemas,
        tables=settings.tables or None,
        exact_count_limit=settings.exact_count_limit,
        lag_grace_s=settings.lag_grace_seconds,
        checks_file=settings.checks_file,
        long_transaction_s=settings.long_transaction_seconds,
        guardrails_block=guardrails_block,
        statement_timeout_ms=settings.statement_timeout_ms,
    )
    return ValidationReport([check_replication_not_degraded(deployment), *report.checks])


def pre_switchover_checks(params: UpgradeParameters, deployment_id: str) -> ValidationReport:
    """Deployment AVAILABLE and not degraded, every green member available, then green
    validated again with the switchover guardrails blocking (phase 6)."""
    deployment = describe_deployment(deployment_id) or {}
    checks = [check_available(deployment), *check_members(deployment)]
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
    _, password = master_credentials(existing_cluster(params.cluster_identifier), params)
    return check_after_switchover(
        original,
        user,
        password,
        params.validation.database,
        target_major=params.target_major,
    )


def advance_sequences_after_switchover(
    params: UpgradeParameters, new: Endpoint, user: str
) -> StepResult:
    """Move the new cluster's sequences to at least the old blue's last values, in every
    database of `validation.databases` (empty: every database of the old blue).

    The old blue is found through the deployment's SwitchoverDetails (or, once the
    deployment is gone, by the retired-from tag) and read with the held password,
    read-only; the new cluster is written with the current one. One session per
    database on each side.
    """
    cluster_id = params.cluster_identifier
    old = _old_blue(params)
    if old is None:
        return StepResult(
            "skipped", f"The old blue of {cluster_id} is gone: no sequence values to read."
        )
    old_id = old["DBClusterIdentifier"]
    try:
        _, old_password = master_credentials(old, params)
    except PreconditionFailed:
        return StepResult(
            "skipped",
            f"The password of the old blue {old_id} is no longer held: this step ran before "
            "the password went back into Secrets Manager.",
        )
    _, new_password = master_credentials(existing_cluster(cluster_id), params)
    settings = params.validation
    timeout = settings.statement_timeout_ms
    with open_session(
        "blue",
        endpoint_of(old),
        user,
        old_password,
        settings.database,
        read_only=True,
        statement_timeout_ms=timeout,
    ) as first:
        databases = list(settings.databases) or list_databases(first)
    with (
        database_sessions(
            "blue", endpoint_of(old), user, old_password, databases, statement_timeout_ms=timeout
        ) as old_blue,
        database_sessions(
            "green",
            new,
            user,
            new_password,
            databases,
            read_only=False,
            statement_timeout_ms=timeout,
        ) as new_cluster,
    ):
        return advance_every_database([(old_blue[name], new_cluster[name]) for name in databases])


def _old_blue(params: UpgradeParameters) -> dict[str, Any] | None:
    deployment = deployment_named(params.effective_deployment_name)
    if deployment is not None and deployment.get("Status") == "SWITCHOVER_COMPLETED":
        for detail in deployment.get("SwitchoverDetails", []):
            if ":cluster:" in detail.get("SourceMember", ""):
                return describe_cluster(identifier_from_arn(detail["SourceMember"]))
    retired = retired_clusters(params.cluster_identifier)
    return retired[0] if retired else None


def prove_managed_password(
    cluster_id: str, dbname: str, credentials_secret_arn: str | None = None
) -> str:
    """Log in with the new managed secret's value (for a password its owner self-manages,
    with `credentials_secret_arn`'s); returns the server version seen."""
    cluster = existing_cluster(cluster_id)
    user = cluster["MasterUsername"]
    if cluster.get("MasterUserSecret") or not credentials_secret_arn:
        password = read_managed_password(cluster)
    else:
        named_user, password = read_secret_credentials(credentials_secret_arn)
        user = named_user or user
    endpoint = endpoint_of(cluster)
    with connect(endpoint, user, password, dbname) as conn:
        version = fetch_value(
            conn,
            "SHOW server_version",
            endpoint=endpoint,
            dbname=dbname,
            doing="reading the version",
        )
    return str(version)
