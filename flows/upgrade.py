"""aurora-blue-green-upgrade: docs/runbook.md as one flow, top to bottom.

No boto3 or SQL here: every step, and every read of AWS between steps, is a
task of `tasks/steps.py`. Before the switchover starts, every way out (reject,
timeout, error, cancel) ends with blue as it was. After it completes there is no
automatic way back; the report says exactly where things stand (flows/outcome.py).
"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.artifacts import Artifact
from prefect.client.schemas.objects import Artifact as ArtifactRecord
from prefect.runtime import flow_run
from prefect.states import State

from aurora_bg.errors import (
    AuroraBGError,
    BusinessError,
    InvalidState,
    PreconditionFailed,
    RunCancelled,
    SwitchoverFailed,
)
from aurora_bg.params import UpgradeParameters, parameters_from
from aurora_bg.results import StepResult
from aurora_bg.window import hold_until_open, state_sentence, utc_now
from flows import texts
from flows.approval import ask
from flows.cancellation import raise_if_cancelled, watching_for_cancel
from flows.outcome import Ending, conclude
from flows.texts import sentence_of
from flows.upgrade_run import Upgrade
from tasks import preflight, steps
from tasks.artifacts import artifact_key
from tasks.aws import client as aws_client
from tasks.run_lock import one_run_per_cluster
from tasks.terraform.report import TerraformStatus
from tasks.validation import phases as green_checks

SWITCHOVER_UNDER_WAY = ("SWITCHOVER_IN_PROGRESS", "SWITCHOVER_COMPLETED")


# The flow checks its own parameters: wrong ones end the run with one line (BadInput).
@flow(name="aurora-blue-green-upgrade", persist_result=False, validate_parameters=False)
def aurora_blue_green_upgrade(parameters: UpgradeParameters) -> dict[str, Any] | State:
    """Upgrade an Aurora PostgreSQL cluster through an RDS Blue/Green deployment."""
    run = Upgrade(parameters_from(parameters))
    with (
        one_run_per_cluster(run.cluster, run.run_id, flow_run.get_name() or ""),
        watching_for_cancel(run.run_id),
    ):
        return upgrade(run)


def upgrade(run: Upgrade) -> dict[str, Any] | State:
    """The phases, once this run is the only one on the cluster; then its ending."""
    checks = run.phase("preflight", steps.run_preflight, run.params)
    run.table("preflight", checks.rows(), checks.summary())
    if not checks.passed:
        refusal = PreconditionFailed(checks.refusal())
        return conclude(run, Ending.STOPPED_BEFORE_ANY_CHANGE, refusal, why=checks.summary())
    run.original = checks.facts
    original_endpoint = None
    if checks.situation != preflight.AFTER_SWITCHOVER:
        try:
            original_endpoint = up_to_the_switchover(run)
        except SwitchoverFailed as failed:
            error = with_aws_reason(run, failed)
            return conclude(run, Ending.SWITCHOVER_FAILED, error, why=str(error))
        except green_checks.SwitchoverBlocked as error:
            return conclude(run, Ending.STOPPED_BEFORE_THE_SWITCHOVER, error, why=str(error))
        except BaseException as error:
            return stop_before_the_switchover(run, error)
    try:
        after_switchover(run, original_endpoint)
        terraform_phase(run)
    except BaseException as error:
        run.stops_on_cancel = False
        return conclude(run, Ending.SWITCHED_OVER_THEN_STOPPED, error, why=sentence_of(error))
    return conclude(run, Ending.UPGRADED)


def up_to_the_switchover(run: Upgrade) -> dict[str, Any] | None:
    """Phases 2–8. Returns the original endpoint, recorded before the switchover; None
    when an earlier run died in the switchover and this one only waits for it."""
    deployment = steps.find_deployment(run.params.effective_deployment_name)
    if deployment is not None and deployment["Status"] in SWITCHOVER_UNDER_WAY:
        # Green is production in all but name: validating or pausing again would
        # judge the new primary by green's rules. Wait for the switchover instead.
        run.deployment_id = deployment["BlueGreenDeploymentIdentifier"]
        switch_over(run, resumed=True)
        return None
    original_endpoint = before_switchover(run)
    switch_over(run)
    return original_endpoint


def stop_before_the_switchover(run: Upgrade, error: BaseException) -> dict[str, Any] | State:
    """Anything else stopped the run before the switchover: take the way out, unless the
    switchover has started meanwhile or AWS cannot be read."""
    run.stops_on_cancel = False
    reason = sentence_of(error)
    try:
        started = switchover_started(run)
        if not started:
            way_out_phase(run, reason)
    except Exception as stuck:
        # AWS cannot be read (an outage) or the way out failed too: report the error
        # that stopped the run and what could not be done, never only the second.
        why, stuck_why = reason.rstrip("."), sentence_of(stuck)
        return conclude(run, Ending.WAY_OUT_NOT_TAKEN, error, why=why, stuck=stuck_why)
    if started:
        return conclude(run, Ending.STOPPED_AFTER_THE_SWITCHOVER_STARTED, error, why=reason)
    return conclude(run, Ending.TOOK_THE_WAY_OUT, error, why=reason)


# --- the phases, in the runbook's order ------------------------------------------------


def before_switchover(run: Upgrade) -> dict[str, Any]:
    """Phases 2–7 (docs/runbook.md, steps 1–3). Returns the original endpoint, recorded
    before the switchover."""
    p = run.params
    moved = run.phase(
        "password out of Secrets Manager",
        steps.move_password_out,
        run.cluster,
        credentials_secret_arn=p.credentials_secret_arn,
    )
    run.markdown("password-mode", texts.password_out(moved), moved.reason)

    created = run.phase(
        "create Blue/Green deployment",
        steps.create_deployment,
        p.effective_deployment_name,
        run.original["cluster_arn"],
        p.target_engine_version,
        p.target_cluster_parameter_group,
        p.target_instance_parameter_group,
        f"flow-run-{run.run_id}",
    )
    deployment_id: str = created.facts["deployment_id"]
    run.deployment_id = deployment_id
    try:
        waited = run.phase(
            "wait for green",
            steps.wait_for_green,
            run.cluster,
            deployment_id,
            p.provisioning_timeout_seconds,
            raise_if_cancelled,
        )
    except BusinessError as failed:  # INVALID_CONFIGURATION: AWS says why in its events
        raise with_aws_reason(run, failed) from None
    run.markdown("blue-green", texts.blue_green(created, waited), waited.reason)

    report = run.phase("validate green (read-only)", steps.validate_green, p, deployment_id)
    run.table("green-validation", report.table(), report.summary())
    run.markdown("green-validation-summary", report.markdown(), report.summary())
    green_checks.stop_on_blockers("green validation", report)
    pause = texts.green_validated_pause(run.cluster, report)
    ask(1, texts.GREEN_VALIDATED, pause, p.approval_timeout_seconds)

    checks = run.phase("pre-switchover checks", steps.pre_switchover_checks, p, deployment_id)
    run.table("pre-switchover", checks.table(), checks.summary())
    run.markdown("pre-switchover-summary", checks.markdown(), checks.summary())
    green_checks.stop_on_blockers("pre-switchover checks", checks)
    cluster = run.cluster_now()
    original_endpoint = {"host": cluster["Endpoint"], "port": cluster["Port"]}
    pause = texts.approve_switchover_pause(run.cluster, p, checks, utc_now())
    ask(2, texts.APPROVE_SWITCHOVER, pause, p.approval_timeout_seconds)
    return original_endpoint


def inside_switchover_window(run: Upgrade) -> None:
    """The switchover never starts outside its window: wait for it, or raise Rejected."""
    p = run.params
    if p.switchover_window is not None:
        run.logger.info("%s", state_sentence(p.switchover_window, utc_now()))
        run.phase(
            "switchover window",
            hold_until_open,
            p.switchover_window,
            p.outside_window,
            p.approval_timeout_seconds,
        )


def switch_over(run: Upgrade, resumed: bool = False) -> None:
    """Phase 8 (docs/runbook.md, step 4). `resumed`: a switchover already under way (an
    earlier run died in it) is only waited for: it is AWS's now, its window was the
    earlier run's."""
    if not resumed:
        inside_switchover_window(run)
    p = run.params
    deployment_id = run.deployment_id
    if deployment_id is None:
        raise InvalidState("no Blue/Green deployment to switch over")
    started = run.phase(
        "switchover", steps.start_switchover, deployment_id, p.switchover_timeout_seconds
    )
    # Once asked, AWS switches over whatever we do: a cancel now is answered after it ends.
    run.stops_on_cancel = False
    done = run.phase(
        "wait for switchover",
        steps.wait_for_switchover,
        deployment_id,
        p.switchover_timeout_seconds + 600,
    )
    run.stops_on_cancel = True
    run.markdown("switchover", texts.switchover(started, done), done.reason)


def after_switchover(run: Upgrade, original_endpoint: dict[str, Any] | None) -> None:
    """Phases 9–11."""
    check_new_primary(run, original_endpoint)
    password_back(run)
    clean_up(run)


def check_new_primary(run: Upgrade, original_endpoint: dict[str, Any] | None) -> None:
    """Phase 9: the post-switchover checks through the original endpoint (the cluster's
    own when this run did not see it before the switchover), then the sequences."""
    p = run.params
    cluster = run.cluster_now()
    endpoint = original_endpoint or {"host": cluster["Endpoint"], "port": cluster["Port"]}
    checks = run.phase(
        "post-switchover checks",
        steps.post_switchover_checks,
        p,
        green_checks.Endpoint(endpoint["host"], int(endpoint["port"])),
        cluster["MasterUsername"],
    )
    run.table("post-switchover", checks.table(), checks.summary())
    advanced = run.phase(
        "advance sequences",
        steps.advance_sequences,
        p,
        green_checks.Endpoint(endpoint["host"], int(endpoint["port"])),
        cluster["MasterUsername"],
    )
    rows = advanced.facts.get("rows") or [{"sequence": "-", "action": advanced.reason}]
    run.table("sequences", rows, advanced.reason)


def password_back(run: Upgrade) -> None:
    """Phase 10 (docs/runbook.md, step 5): the password back under Secrets Manager, proven
    by logging in with it."""
    credentials = run.params.credentials_secret_arn
    back = run.phase(
        "password back into Secrets Manager",
        steps.put_password_back,
        run.cluster,
        credentials_secret_arn=credentials,
    )
    version = run.phase(
        "prove the new secret",
        steps.prove_managed_password,
        run.cluster,
        run.params.validation.database,
        credentials_secret_arn=credentials,
    )
    forgot = run.phase("forget the held password", steps.forget_held_password, run.cluster)
    run.markdown("password-mode", texts.password_back(back, version, forgot), back.reason)


def clean_up(run: Upgrade) -> None:
    """Phase 11 (docs/runbook.md, step 6): tag the old blue, delete the deployment, and
    the old blue if asked."""
    p = run.params
    lines = []
    deployment = steps.find_deployment(p.effective_deployment_name)
    if deployment is not None:
        lines.append(run.phase("tag old blue", steps.tag_old_blue, deployment, run.cluster).reason)
        lines.append(
            run.phase(
                "delete deployment",
                steps.delete_deployment,
                deployment["BlueGreenDeploymentIdentifier"],
                False,
            ).reason
        )
    if p.delete_old_blue:
        lines.append(
            run.phase(
                "delete old blue", steps.delete_old_blue, run.cluster, p.final_snapshot
            ).reason
        )
    else:
        lines.append(texts.OLD_BLUE_KEPT)
    run.markdown("cleanup", texts.cleanup(lines), lines[-1])


# Terraform in line with AWS, or the exact commands left to run: the run completes. The
# task itself raises for the other outcomes but init-failed, whose report it returns.
TERRAFORM_COMPLETES_THE_RUN = {
    TerraformStatus.APPLIED,
    TerraformStatus.NOTHING_TO_DO,
    TerraformStatus.PLANNED,
    TerraformStatus.STATE_RM_PENDING,
    TerraformStatus.PROVIDER_UNAVAILABLE,
}


def terraform_phase(run: Upgrade) -> None:
    """Phase 12 (docs/runbook.md, step 7): Terraform back in line with the new cluster
    (plan only unless terraform.apply).

    The report is the `<cluster>-terraform-plan` artifact and its sentence the
    timeline's reason. Outcomes that leave exact commands to run (the provider
    cannot be installed here, or plan only) complete the run; a blocked or failed
    one fails it, after the switchover, once the report is published.
    """
    settings = run.params.terraform
    record = run.timeline.start("terraform")
    if not settings.enabled:
        reason = texts.TERRAFORM_OFF
        run.timeline.finish(record, StepResult("skipped", reason))
        run.markdown("terraform-plan", texts.terraform_skipped(reason), reason)
        return
    key = run.timeline.keep(artifact_key(run.cluster, "terraform-plan"))
    try:
        report = steps.reconcile_terraform(
            str(settings.working_dir),
            run.cluster,
            aws_client("rds"),
            terraform_bin=settings.terraform_bin,
            plan_only=not settings.apply,
            allow_newer_cli=settings.allow_newer_cli,
        )
    except Exception as error:
        reason = sentence_of(error)
        run.timeline.finish(record, reason, "failed")
        if not published_by_this_run(key, run.run_id):  # the task publishes before refusing
            run.markdown("terraform-plan", texts.terraform_failed(reason), reason)
        raise
    run.timeline.finish(record, StepResult(report.status, report.message))
    run.logger.info("terraform: %s: %s", report.status, report.message)
    for command in report.commands_left:
        run.logger.warning("terraform: left to run: %s", command)
    if report.status not in TERRAFORM_COMPLETES_THE_RUN:
        raise InvalidState(report.message)


def way_out_phase(run: Upgrade, reason: str) -> None:
    """The way out before a switchover (tasks/way_out.py), with its artifact."""
    results = run.phase(
        "way out",
        steps.take_the_way_out,
        run.cluster,
        run.params.effective_deployment_name,
        run.original,
        reason,
    )
    run.markdown("way-out", texts.way_out(results), results[-1].reason)


# --- what the flow reads to choose its way, or to say why ------------------------------


def with_aws_reason(run: Upgrade, error: AuroraBGError) -> AuroraBGError:
    """`error` again, its message followed by what AWS's RDS events say about the
    deployment and its clusters (tasks/rds_events.py), published as the `rds-events`
    table too. `error` unchanged when it is a cancel, when there is no deployment, or
    when the events cannot be read (their timeline row says why) or add nothing; a
    cancel asked for meanwhile is returned instead, so that the run still ends
    Cancelled."""
    if isinstance(error, RunCancelled) or run.deployment_id is None:
        return error
    try:
        told = run.phase(
            "read AWS's events",
            steps.read_rds_events,
            run.deployment_id,
            run.cluster,
            run.started_at,
        )
    except RunCancelled as cancel:
        return cancel
    except Exception:  # the first error stays the run's reason
        return error
    if told.facts["rows"]:
        run.table("rds-events", told.facts["rows"], told.reason)
    message = texts.with_aws_reason(str(error), told.facts["reasons"])
    return error if message == str(error) else type(error)(message)


def switchover_started(run: Upgrade) -> bool:
    deployment = steps.find_deployment(run.params.effective_deployment_name)
    return deployment is not None and deployment["Status"] in SWITCHOVER_UNDER_WAY


def published_by_this_run(key: str, run_id: str) -> bool:
    # In a sync flow Prefect's dispatching `get` returns the artifact itself; its
    # annotation also admits the coroutine an async caller would get.
    published = cast(ArtifactRecord | None, Artifact.get(key))
    return published is not None and str(published.flow_run_id) == run_id
