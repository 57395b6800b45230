"""Every Prefect task the flows run, in one table: the name the Prefect UI shows, and the
function of `tasks/` it runs.

Each task runs its function as it is, with the options every task shares
(`tasks.aws.task_options`: retries for transient errors only, no result persisted
or cached). The flows call these, never the functions underneath, so that every
step, AWS reads included, is retried the same way and shows in the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from prefect import Task

from aurora_bg.results import StepResult
from tasks import (
    blue_green,
    cleanup,
    fleet_limits,
    password,
    preflight,
    rds_events,
    rds_state,
    way_out,
)
from tasks.artifacts import Progress
from tasks.aws import task_options
from tasks.terraform.phase import reconcile_terraform_task
from tasks.validation import phases as green_checks

P = ParamSpec("P")
R = TypeVar("R")


def _step(name: str, function: Callable[P, R]) -> Task[P, R]:
    return Task(fn=function, name=name, **task_options())


# --- what two of the tasks run, beyond one function of tasks/ --------------------------


def wait_until_green_available(
    cluster_id: str,
    deployment_id: str,
    timeout: float,
    stop_if_cancelled: Callable[[str], None],
) -> StepResult:
    """Wait until the deployment is AVAILABLE, feeding a progress artifact.

    `stop_if_cancelled(where)` runs at every poll; it raises to end the wait (the
    flow passes its cancel check: tasks cannot see the flow's cancel watch).
    Raises WaitTimedOut after `timeout` seconds, as `blue_green.wait_until_available`.
    """
    progress = Progress(f"Green of {cluster_id} provisioning ({deployment_id})")

    def on_poll(deployment: dict[str, Any]) -> None:
        stop_if_cancelled(f"while green of {cluster_id} was provisioning")
        done, total = blue_green.task_progress(deployment)
        progress.update(100.0 * done / total if total else 0.0)

    result = blue_green.wait_until_available(deployment_id, timeout, on_poll)
    progress.update(100.0)
    return result


@dataclass(frozen=True)
class Standing:
    """Where things stand for a cluster, as AWS shows them now."""

    engine_version: str | None  # None: the cluster could not be found
    password_managed: bool
    password_held: bool  # the password sits in this tool's own secret meanwhile
    deployment_status: str | None  # None: no deployment of that name
    old_blue: list[str]  # clusters tagged as retired from this one


def read_standing(cluster_id: str, deployment_name: str) -> Standing:
    """Read-only: the cluster, the deployment, the held password and any old blue."""
    cluster = rds_state.describe_cluster(cluster_id) or {}
    deployment = rds_state.deployment_named(deployment_name)
    held = password.held_password_exists(cluster_id)
    old = [c["DBClusterIdentifier"] for c in rds_state.retired_clusters(cluster_id)]
    return Standing(
        engine_version=cluster.get("EngineVersion"),
        password_managed=rds_state.is_password_managed(cluster),
        password_held=held,
        deployment_status=deployment["Status"] if deployment else None,
        old_blue=old,
    )


# --- the upgrade, in the runbook's order ---------------------------------------------

run_preflight = _step("preflight", preflight.run_preflight)
move_password_out = _step("password-out", password.move_password_out)
create_deployment = _step("create-deployment", blue_green.create_deployment)
wait_for_green = _step("wait-for-green", wait_until_green_available)
validate_green = _step("validate-green", green_checks.validate_green_side)
pre_switchover_checks = _step("pre-switchover-checks", green_checks.pre_switchover_checks)
start_switchover = _step("switchover", blue_green.start_switchover)
wait_for_switchover = _step("wait-switchover", blue_green.wait_for_switchover)
post_switchover_checks = _step("post-switchover-checks", green_checks.post_switchover_checks)
advance_sequences = _step("advance-sequences", green_checks.advance_sequences_after_switchover)
put_password_back = _step("password-back", password.put_password_back)
prove_managed_password = _step("prove-password", green_checks.prove_managed_password)
forget_held_password = _step("forget-held-password", password.forget_held_password)
tag_old_blue = _step("tag-old-blue", cleanup.tag_old_blue)
delete_deployment = _step("delete-deployment", blue_green.delete_deployment)
delete_old_blue = _step("delete-old-blue", cleanup.delete_old_blue)
# "reconcile-terraform" is declared with its module: never retried (Terraform's
# refusals are business errors), and it publishes its own report.
reconcile_terraform = reconcile_terraform_task
take_the_way_out = _step("way-out", way_out.take_the_way_out)

# --- what the upgrade reads between its steps ----------------------------------------

describe_cluster = _step("describe-cluster", rds_state.describe_cluster)
find_deployment = _step("find-deployment", rds_state.deployment_named)
where_things_stand = _step("where-things-stand", read_standing)
read_rds_events = _step("read-rds-events", rds_events.explain_failure)

# --- the fleet -----------------------------------------------------------------------

discover_clusters = _step("discover-clusters", fleet_limits.clusters_tagged)
prepare_fleet_limits = _step("prepare-limits", fleet_limits.prepare_limits)
