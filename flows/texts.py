"""What the upgrade says to people: the two pauses' texts, the artifacts' prose, and the
one sentence it gives for an error or for where things stand.

Tests and docs quote these words: change them here, knowingly.
"""

from __future__ import annotations

from datetime import datetime

from prefect.exceptions import TerminationSignal

from aurora_bg.errors import AuroraBGError
from aurora_bg.params import UpgradeParameters
from aurora_bg.results import StepResult
from aurora_bg.window import approval_note
from tasks.artifacts import bullet_list
from tasks.steps import Standing
from tasks.validation.model import ValidationReport
from tasks.validation.phases import pause_note

# The pauses' titles: the form's title in the UI, and the fleet's name for each gate.
GREEN_VALIDATED = "green validated"
APPROVE_SWITCHOVER = "approve switchover"


def sentence_of(error: BaseException) -> str:
    """The error as one line for the timeline and the report: our own errors say it all."""
    if isinstance(error, TerminationSignal):  # a worker stopping the run's process
        return "the run's process was told to stop (a cancel from Prefect, or its worker stopping)"
    return str(error) if isinstance(error, AuroraBGError) else f"{type(error).__name__}: {error}"


def with_aws_reason(sentence: str, reasons: list[str]) -> str:
    """`sentence`, then each reason from AWS's events that it does not already say."""
    new = [reason for reason in reasons if reason not in sentence]
    if not new:
        return sentence
    return f"{sentence.rstrip('.')}. AWS's events: {' | '.join(new)}"


# --- the pauses ----------------------------------------------------------------------


def green_validated_pause(cluster: str, report: ValidationReport) -> str:
    return (
        f"**Green validated** for `{cluster}`.\n\n{pause_note(report)}\n\n"
        "Test your applications against the green endpoints now, read-only: writes on green "
        "conflict with replication from blue. Approve to continue to the pre-switchover checks, "
        "reject to delete green and put everything back."
    )


def approve_switchover_pause(
    cluster: str, params: UpgradeParameters, checks: ValidationReport, now: datetime
) -> str:
    return (
        f"**Approve the switchover** of `{cluster}` to {params.target_engine_version}.\n\n"
        f"{pause_note(checks)}\n\nThe switchover drops connections once; it "
        f"times out after {params.switchover_timeout_seconds} s, in which case AWS rolls back. "
        "After it completes there is no automatic way back.\n\n"
        + approval_note(
            params.switchover_window, params.outside_window, params.approval_timeout_seconds, now
        )
    )


def batch_pause(title: str, clusters: list[str]) -> str:
    """The fleet's one pause for every cluster waiting at the gate `title`."""
    return (
        f"**{title.capitalize()}** for {len(clusters)} clusters of this fleet: "
        + ", ".join(f"`{c}`" for c in clusters)
        + ".\n\nEach cluster's own run holds its details (its artifacts and its "
        "pause). Approve to resume them all; reject to send them all their way out."
    )


# --- the artifacts -------------------------------------------------------------------


def password_out(moved: StepResult) -> str:
    return f"# Master password\n\n{moved.reason}\n"


def blue_green(created: StepResult, waited: StepResult) -> str:
    return f"# Blue/Green deployment\n\n{created.reason}\n\n{waited.reason}\n\n" + bullet_list(
        [f"{s} → {t}: {st}" for s, t, st in waited.facts["members"]]
    )


def switchover(started: StepResult, done: StepResult) -> str:
    return f"# Switchover\n\n{started.reason}\n\n{done.reason}\n"


def password_back(back: StepResult, server_version: str, forgot: StepResult) -> str:
    if back.action == "already-self-managed":  # its owner's password: no new secret
        return (
            f"# Master password\n\n{back.reason}\n\nLogged in with it "
            f"(server {server_version}). {forgot.reason}\n"
        )
    return (
        f"# Master password\n\n{back.reason}\n\nLogged in with the new secret's value "
        f"(server {server_version}). {forgot.reason}\n\n**Warning:** anything that referenced "
        "the old secret ARN must be updated to the new one."
    )


OLD_BLUE_KEPT = "The old blue was kept (delete_old_blue is off)."


def cleanup(lines: list[str]) -> str:
    return "# Clean-up\n\n" + bullet_list(lines)


TERRAFORM_OFF = "Terraform reconciliation is not part of this run (terraform.enabled is off)."


def terraform_skipped(reason: str) -> str:
    return f"# Terraform\n\n{reason}\n"


def terraform_failed(reason: str) -> str:
    return f"# Terraform\n\n**failed**: {reason}\n"


def way_out(results: list[StepResult]) -> str:
    return "# The way out\n\n" + bullet_list([r.reason for r in results])


# --- where things stand, for a run that stops half-way -------------------------------


def standing(cluster: str, now: Standing) -> str:
    parts = [
        f"Now: {cluster} runs {now.engine_version or 'unknown'}",
        "password managed by Secrets Manager"
        if now.password_managed
        else "password self-managed" + (" (held in our secret)" if now.password_held else ""),
        f"deployment {now.deployment_status}" if now.deployment_status else "no deployment",
        f"old blue kept: {', '.join(now.old_blue)}" if now.old_blue else "no old blue tagged",
    ]
    return "; ".join(parts) + ". Rerun with the same parameters to finish."


def standing_unknown(error: BaseException) -> str:
    return f"Where things stand could not be read ({sentence_of(error)}); rerun to continue."
