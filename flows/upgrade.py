"""aurora-blue-green-upgrade: RUNBOOK.md as one flow, top to bottom.

No boto3 or SQL here: each phase is a task from `tasks/`. Before the
switchover starts, every way out (reject, timeout, error, cancel) ends with
blue as it was. After it completes there is no automatic way back; the
report says exactly where things stand.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import Artifact
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from aurora_bg.errors import (
    AuroraBGError,
    InvalidState,
    PreconditionFailed,
    RunCancelled,
    SwitchoverFailed,
)
from aurora_bg.params import UpgradeParameters, parameters_from
from aurora_bg.results import StepResult
from aurora_bg.window import approval_note, hold_until_open, state_sentence, utc_now
from flows.approval import ask
from flows.cancellation import raise_if_cancelled, watching_for_cancel
from flows.timeline import Timeline
from tasks import blue_green, cleanup, password, preflight, way_out
from tasks.artifacts import Progress, artifact_key, bullet_list, publish_markdown, publish_table
from tasks.aws import client as aws_client
from tasks.aws import task_options
from tasks.rds_state import (
    deployment_named,
    describe_cluster,
    is_password_managed,
    retired_clusters,
)
from tasks.run_lock import one_run_per_cluster
from tasks.terraform.phase import reconcile_terraform_task
from tasks.validation import phases as green_checks

# --- thin task wrappers -----------------------------------------------------

run_preflight = task(name="preflight", **task_options())(preflight.run_preflight)
move_password_out = task(name="password-out", **task_options())(password.move_password_out)
put_password_back = task(name="password-back", **task_options())(password.put_password_back)
forget_held_password = task(name="forget-held-password", **task_options())(
    password.forget_held_password
)
create_deployment = task(name="create-deployment", **task_options())(blue_green.create_deployment)
start_switchover = task(name="switchover", **task_options())(blue_green.start_switchover)
wait_for_switchover = task(name="wait-switchover", **task_options())(blue_green.wait_for_switchover)
delete_deployment = task(name="delete-deployment", **task_options())(blue_green.delete_deployment)
validate_green = task(name="validate-green", **task_options())(green_checks.validate_green_side)
pre_switchover_checks = task(name="pre-switchover-checks", **task_options())(
    green_checks.pre_switchover_checks
)
post_switchover_checks = task(name="post-switchover-checks", **task_options())(
    green_checks.post_switchover_checks
)
advance_sequences = task(name="advance-sequences", **task_options())(
    green_checks.advance_sequences_after_switchover
)
prove_managed_password = task(name="prove-password", **task_options())(
    green_checks.prove_managed_password
)
tag_old_blue = task(name="tag-old-blue", **task_options())(cleanup.tag_old_blue)
delete_old_blue = task(name="delete-old-blue", **task_options())(cleanup.delete_old_blue)
take_the_way_out = task(name="way-out", **task_options())(way_out.take_the_way_out)


@task(name="wait-for-green", **task_options())
def wait_for_green(cluster_id: str, deployment_id: str, timeout: float) -> StepResult:
    progress = Progress(f"Green of {cluster_id} provisioning ({deployment_id})")

    def on_poll(deployment: dict[str, Any]) -> None:
        raise_if_cancelled(f"while green of {cluster_id} was provisioning")
        done, total = blue_green.task_progress(deployment)
        progress.update(100.0 * done / total if total else 0.0)

    result = blue_green.wait_until_available(deployment_id, timeout, on_poll)
    progress.update(100.0)
    return result


# --- the flow ---------------------------------------------------------------


class Upgrade:
    """One run of the upgrade: the parameters, the timeline, what was learned."""

    def __init__(self, params: UpgradeParameters) -> None:
        self.params = params
        self.cluster = params.cluster_identifier
        self.timeline = Timeline()
        self.original: dict[str, Any] = {}
        self.deployment_id: str | None = None
        self.logger = get_run_logger()
        # A cancel stops the run at the next phase, except on the way out: that one
        # must finish, whoever asked for it.
        self.stops_on_cancel = True

    def phase(self, name: str, step: Any, *args: Any, **kwargs: Any) -> Any:
        if self.stops_on_cancel:
            raise_if_cancelled(f"before {name}")
        record = self.timeline.start(name)
        try:
            result = step(*args, **kwargs)
        except Exception as error:
            self.timeline.finish(record, _sentence(error), "failed")
            raise
        if isinstance(result, StepResult):
            self.logger.info("%s: %s", name, result.reason)
            self.timeline.finish(record, result)
        else:
            self.timeline.finish(record, getattr(result, "summary", lambda: "done")())
        return result

    def markdown(self, kind: str, text: str, description: str) -> None:
        self.timeline.keep(publish_markdown(self.cluster, kind, text, description))

    def table(self, kind: str, rows: list[dict[str, Any]], description: str) -> None:
        self.timeline.keep(publish_table(self.cluster, kind, rows, description))


def _sentence(error: BaseException) -> str:
    if isinstance(error, TerminationSignal):  # a worker stopping the run's process
        return "the run's process was told to stop (a cancel from Prefect, or its worker stopping)"
    return str(error) if isinstance(error, AuroraBGError) else f"{type(error).__name__}: {error}"


def before_switchover(run: Upgrade) -> dict[str, Any]:
    """Phases 2–7. Returns the original endpoint, recorded before the switchover."""
    p = run.params
    result = run.phase("password out of Secrets Manager", move_password_out, run.cluster)
    run.markdown("password-mode", f"# Master password\n\n{result.reason}\n", result.reason)

    result = run.phase(
        "create Blue/Green deployment",
        create_deployment,
        p.effective_deployment_name,
        run.original["cluster_arn"],
        p.target_engine_version,
        p.target_cluster_parameter_group,
        p.target_instance_parameter_group,
        f"flow-run-{flow_run.get_id() or 'local'}",
    )
    run.deployment_id = result.facts["deployment_id"]
    waited = run.phase(
        "wait for green",
        wait_for_green,
        run.cluster,
        run.deployment_id,
        p.provisioning_timeout_seconds,
    )
    run.markdown(
        "blue-green",
        f"# Blue/Green deployment\n\n{result.reason}\n\n{waited.reason}\n\n"
        + bullet_list([f"{s} → {t}: {st}" for s, t, st in waited.facts["members"]]),
        waited.reason,
    )

    report = run.phase("validate green (read-only)", validate_green, p, run.deployment_id)
    run.table("green-validation", report.table(), report.summary())
    run.markdown("green-validation-summary", report.markdown(), report.summary())
    green_checks.stop_on_blockers("green validation", report)
    ask(
        1,
        "green validated",
        f"**Green validated** for `{run.cluster}`.\n\n{green_checks.pause_note(report)}\n\n"
        "Test your applications against the green endpoints now, read-only: writes on green "
        "conflict with replication from blue. Approve to continue to the pre-switchover checks, "
        "reject to delete green and put everything back.",
        p.approval_timeout_seconds,
    )

    checks = run.phase("pre-switchover checks", pre_switchover_checks, p, run.deployment_id)
    run.table("pre-switchover", checks.table(), checks.summary())
    run.markdown("pre-switchover-summary", checks.markdown(), checks.summary())
    green_checks.stop_on_blockers("pre-switchover checks", checks)
    cluster = describe_cluster(run.cluster)
    original_endpoint = {"host": cluster["Endpoint"], "port": cluster["Port"]}
    ask(
        2,
        "approve switchover",
        f"**Approve the switchover** of `{run.cluster}` to {p.target_engine_version}.\n\n"
        f"{green_checks.pause_note(checks)}\n\nThe switchover drops connections once; it "
        f"times out after {p.switchover_timeout_seconds} s, in which case AWS rolls back. "
        "After it completes there is no automatic way back.\n\n"
        + approval_note(
            p.switchover_window, p.outside_window, p.approval_timeout_seconds, utc_now()
        ),
        p.approval_timeout_seconds,
    )
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
    """Phase 8. `resumed`: a switchover already under way (an earlier run died in it) is
    only waited for: it is AWS's now, its window was the earlier run's."""
    if not resumed:
        inside_switchover_window(run)
    p = run.params
    started = run.phase(
        "switchover", start_switchover, run.deployment_id, p.switchover_timeout_seconds
    )
    # Once asked, AWS switches over whatever we do: a cancel now is answered after it ends.
    run.stops_on_cancel = False
    done = run.phase(
        "wait for switchover",
        wait_for_switchover,
        run.deployment_id,
        p.switchover_timeout_seconds + 600,
    )
    run.stops_on_cancel = True
    run.markdown("switchover", f"# Switchover\n\n{started.reason}\n\n{done.reason}\n", done.reason)


def after_switchover(run: Upgrade, original_endpoint: dict[str, Any] | None) -> None:
    """Phases 9–11."""
    p = run.params
    cluster = describe_cluster(run.cluster)
    endpoint = original_endpoint or {"host": cluster["Endpoint"], "port": cluster["Port"]}
    checks = run.phase(
        "post-switchover checks",
        post_switchover_checks,
        p,
        green_checks.Endpoint(endpoint["host"], int(endpoint["port"])),
        cluster["MasterUsername"],
    )
    run.table("post-switchover", checks.table(), checks.summary())
    advanced = run.phase(
        "advance sequences",
        advance_sequences,
        p,
        green_checks.Endpoint(endpoint["host"], int(endpoint["port"])),
        cluster["MasterUsername"],
    )
    rows = advanced.facts.get("rows") or [{"sequence": "-", "action": advanced.reason}]
    run.table("sequences", rows, advanced.reason)

    back = run.phase("password back into Secrets Manager", put_password_back, run.cluster)
    version = run.phase(
        "prove the new secret", prove_managed_password, run.cluster, p.validation.database
    )
    forgot = run.phase("forget the held password", forget_held_password, run.cluster)
    run.markdown(
        "password-mode",
        f"# Master password\n\n{back.reason}\n\nLogged in with the new secret's value "
        f"(server {version}). {forgot.reason}\n\n**Warning:** anything that referenced the old "
        "secret ARN must be updated to the new one.",
        back.reason,
    )

    lines = []
    deployment = deployment_named(p.effective_deployment_name)
    if deployment is not None:
        lines.append(run.phase("tag old blue", tag_old_blue, deployment, run.cluster).reason)
        lines.append(
            run.phase(
                "delete deployment",
                delete_deployment,
                deployment["BlueGreenDeploymentIdentifier"],
                False,
            ).reason
        )
    if p.delete_old_blue:
        lines.append(
            run.phase("delete old blue", delete_old_blue, run.cluster, p.final_snapshot).reason
        )
    else:
        lines.append("The old blue was kept (delete_old_blue is off).")
    run.markdown("cleanup", "# Clean-up\n\n" + bullet_list(lines), lines[-1])


def terraform_phase(run: Upgrade) -> None:
    """Phase 12: Terraform back in line with the new cluster (plan only unless terraform.apply).

    The report is the `<cluster>-terraform-plan` artifact and its sentence the
    timeline's reason. Outcomes that leave exact commands to run (the provider
    cannot be installed here, or plan only) complete the run; a blocked or failed
    one fails it, after the switchover, once the report is published.
    """
    settings = run.params.terraform
    record = run.timeline.start("terraform")
    if not settings.enabled:
        reason = "Terraform reconciliation is not part of this run (terraform.enabled is off)."
        run.timeline.finish(record, StepResult("skipped", reason))
        run.markdown("terraform-plan", f"# Terraform\n\n{reason}\n", reason)
        return
    key = run.timeline.keep(artifact_key(run.cluster, "terraform-plan"))
    try:
        report = reconcile_terraform_task(
            str(settings.working_dir),
            run.cluster,
            aws_client("rds"),
            terraform_bin=settings.terraform_bin,
            plan_only=not settings.apply,
            allow_newer_cli=settings.allow_newer_cli,
        )
    except Exception as error:
        reason = _sentence(error)
        run.timeline.finish(record, reason, "failed")
        published = Artifact.get(key)  # the task publishes its report before refusing
        if published is None or str(published.flow_run_id) != str(flow_run.get_id()):
            run.markdown("terraform-plan", f"# Terraform\n\n**failed**: {reason}\n", reason)
        raise
    run.timeline.finish(record, StepResult(report.status, report.message))
    run.logger.info("terraform: %s: %s", report.status, report.message)
    for command in report.commands_left:
        run.logger.warning("terraform: left to run: %s", command)
    completes_the_run = {
        "applied",
        "nothing-to-do",
        "planned",
        "state-rm-pending",
        "provider-unavailable",
    }
    if report.status not in completes_the_run:  # init-failed: the task raised for the others
        raise InvalidState(report.message)


def finish(run: Upgrade, status: str) -> dict[str, Any]:
    """Phase 13: the report, and the run's small summary."""
    key = publish_markdown(
        run.cluster, "report", run.timeline.markdown(f"Upgrade of {run.cluster}", status), status
    )
    run.timeline.keep(key)
    try:
        cluster = describe_cluster(run.cluster) or {}
    except AuroraBGError:  # the report is out; an unreadable cluster must not hide why
        cluster = {}
    return {
        "status": status,
        "cluster": run.cluster,
        "engine_version": cluster.get("EngineVersion"),
        "secret_arn": (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
        "artifacts": run.timeline.artifacts,
    }


def way_out(run: Upgrade, reason: str) -> None:
    results = run.phase(
        "way out",
        lambda: take_the_way_out(
            run.cluster, run.params.effective_deployment_name, run.original, reason
        ),
    )
    run.markdown(
        "way-out",
        "# The way out\n\n" + bullet_list([r.reason for r in results]),
        results[-1].reason,
    )


# The flow checks its own parameters: wrong ones end the run with one line (BadInput).
@flow(name="aurora-blue-green-upgrade", persist_result=False, validate_parameters=False)
def aurora_blue_green_upgrade(parameters: UpgradeParameters) -> dict[str, Any] | State:
    """Upgrade an Aurora PostgreSQL cluster through an RDS Blue/Green deployment."""
    run = Upgrade(parameters_from(parameters))
    run_id = flow_run.get_id()
    with (
        one_run_per_cluster(run.cluster, run_id, flow_run.get_name() or ""),
        watching_for_cancel(run_id),
    ):
        return upgrade(run)


def upgrade(run: Upgrade) -> dict[str, Any] | State:
    """The phases, once this run is the only one on the cluster."""
    checks = run.phase("preflight", run_preflight, run.params)
    run.table("preflight", checks.rows(), checks.summary())
    if not checks.passed:
        finish(run, f"Stopped before any change: {checks.summary()}")
        raise PreconditionFailed(checks.refusal())
    run.original = checks.facts
    original_endpoint = None
    if checks.situation != preflight.AFTER_SWITCHOVER:
        try:
            resumed = _switchover_started(run)
            if resumed:
                # Green is production in all but name: validating or pausing again would
                # judge the new primary by green's rules. Wait for the switchover instead.
                run.deployment_id = _deployment_id(run)
            else:
                original_endpoint = before_switchover(run)
            switch_over(run, resumed)
        except SwitchoverFailed as error:
            finish(run, f"Switchover failed, AWS rolled back; the deployment is left: {error}")
            raise
        except green_checks.SwitchoverBlocked as error:
            finish(run, f"Stopped before the switchover; the deployment is left: {error}")
            raise
        except BaseException as error:
            run.stops_on_cancel = False
            reason = _sentence(error)
            try:
                started = _switchover_started(run)
                if not started:
                    way_out(run, reason)
            except Exception as stuck:
                # AWS cannot be read (an outage) or the way out failed too: report the error
                # that stopped the run and what could not be done, never only the second.
                return _stopped(
                    run,
                    f"Stopped: {reason.rstrip('.')}. The way out was not taken: {_sentence(stuck)}",
                    error,
                )
            if started:
                return _stopped(run, f"Stopped after the switchover started: {reason}", error)
            return _stopped(run, f"Took the way out: {reason}", error)
    try:
        after_switchover(run, original_endpoint)
        terraform_phase(run)
    except BaseException as error:
        run.stops_on_cancel = False
        return _stopped(run, f"Switched over; then stopped: {_sentence(error)}", error)
    return finish(run, f"Upgraded {run.cluster} to {run.params.target_engine_version}.")


def _stopped(run: Upgrade, status: str, error: BaseException) -> State:
    """Report where things stand; end Cancelled when a person cancelled, else re-raise."""
    if not status.startswith("Took the way out"):
        status = f"{status} {where_things_stand(run)}"
    finish(run, status)
    if isinstance(error, RunCancelled):
        return Cancelled(message=status)
    raise error


def where_things_stand(run: Upgrade) -> str:
    """One sentence on the cluster as AWS shows it now, for a run that stops half-way."""
    try:
        cluster = describe_cluster(run.cluster) or {}
        deployment = deployment_named(run.params.effective_deployment_name)
        held = password.held_password_exists(run.cluster)
        old = [c["DBClusterIdentifier"] for c in retired_clusters(run.cluster)]
    except Exception as error:
        return f"Where things stand could not be read ({_sentence(error)}); rerun to continue."
    parts = [
        f"Now: {run.cluster} runs {cluster.get('EngineVersion', 'unknown')}",
        "password managed by Secrets Manager"
        if is_password_managed(cluster)
        else "password self-managed" + (" (held in our secret)" if held else ""),
        f"deployment {deployment['Status']}" if deployment else "no deployment",
        f"old blue kept: {', '.join(old)}" if old else "no old blue tagged",
    ]
    return "; ".join(parts) + ". Rerun with the same parameters to finish."


def _deployment_id(run: Upgrade) -> str:
    return deployment_named(run.params.effective_deployment_name)["BlueGreenDeploymentIdentifier"]


def _switchover_started(run: Upgrade) -> bool:
    deployment = deployment_named(run.params.effective_deployment_name)
    return deployment is not None and deployment["Status"] in (
        "SWITCHOVER_IN_PROGRESS",
        "SWITCHOVER_COMPLETED",
    )
