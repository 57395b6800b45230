"""The Blue/Green deployment: create it, wait for it, switch over, delete it.

botocore has no waiter for Blue/Green deployments (its `DBClusterAvailable`
polls every 30 s); every wait here goes through `poll_until`. The wait for
green forecasts the end from the deployment's `CreateTime` and `Tasks`, so it
notices AVAILABLE within seconds for about as many calls as a 30-s poll.
Each function observes the deployment first and does nothing when its goal
already holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypedDict

from aurora_bg.errors import BusinessError, InvalidState, SwitchoverFailed
from aurora_bg.polling import Window, poll_until
from aurora_bg.results import StepResult
from tasks.aws import call, client
from tasks.rds_state import (
    deployment_named,
    describe_deployment,
    identifier_from_arn,
    wait_until_gone,
)

TAG_CREATED_BY = "aurora-bg:created-by"


class PollIntervals(TypedDict):
    """Interval settings of one `poll_until` call, passed as `**intervals`."""

    first_interval: float
    max_interval: float
    hurry_interval: float


# Green takes tens of minutes on AWS: never slower than botocore's 30-s waiter, and
# a ramp from 4 s for the labs and retries that find it nearly ready
GREEN_SCHEDULE: PollIntervals = {"first_interval": 4.0, "max_interval": 30.0, "hurry_interval": 2.0}


def task_progress(deployment: dict[str, Any]) -> tuple[int, int]:
    """(completed tasks, all tasks) from the deployment's `Tasks`."""
    tasks = deployment.get("Tasks", [])
    return sum(1 for t in tasks if t.get("Status") == "COMPLETED"), len(tasks)


def last_task_running(deployment: dict[str, Any]) -> bool:
    done, total = task_progress(deployment)
    return total > 0 and done >= total - 1


class ProvisioningForecast:
    """When green should be AVAILABLE, if the deployment's tasks take about equally long.

    Each poll bounds a task's duration d: `c` tasks completed `t` seconds after
    CreateTime means c·d <= t < (c+1)·d. All polls together place the end
    (n·d) in a window that narrows as the wait goes on. When the bounds
    contradict each other (the tasks are far from equal) there is no forecast
    and the wait falls back to backing off and hurrying on the last task.
    """

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.low = 0.0
        self.high = math.inf

    def __call__(self, deployment: dict[str, Any]) -> Window | None:
        created = deployment.get("CreateTime")
        done, total = task_progress(deployment)
        if created is None or total == 0:
            return None
        since = self.now() - created.timestamp()
        self.low = max(self.low, since / (done + 1))
        if done:
            self.high = min(self.high, since / done)
        if math.isinf(self.high) or self.low > self.high:
            return None
        return total * self.low - since, total * self.high - since


def members(deployment: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source id, target id, status) per SwitchoverDetails pair."""
    return [
        (
            identifier_from_arn(d.get("SourceMember", "")),
            identifier_from_arn(d.get("TargetMember", "")),
            d.get("Status", ""),
        )
        for d in deployment.get("SwitchoverDetails", [])
    ]


def create_deployment(
    name: str,
    source_arn: str,
    target_version: str,
    cluster_group: str,
    instance_group: str,
    run_label: str,
    rds: Any = None,
) -> StepResult:
    """Create the deployment unless ours (same name) exists already."""
    rds = rds or client("rds")
    existing = deployment_named(name, rds)
    if existing is not None:
        return StepResult(
            "already-done",
            f"Blue/Green deployment {name} exists already ({existing['Status']}): resuming it.",
            {"deployment_id": existing["BlueGreenDeploymentIdentifier"]},
        )
    created = call(
        f"creating Blue/Green deployment {name}",
        rds.create_blue_green_deployment,
        BlueGreenDeploymentName=name,
        Source=source_arn,
        TargetEngineVersion=target_version,
        TargetDBClusterParameterGroupName=cluster_group,
        TargetDBParameterGroupName=instance_group,
        Tags=[{"Key": TAG_CREATED_BY, "Value": run_label}],
    )["BlueGreenDeployment"]
    deployment_id = created["BlueGreenDeploymentIdentifier"]
    return StepResult(
        "created",
        f"Created Blue/Green deployment {name} ({deployment_id}) to {target_version} "
        f"with {cluster_group} and {instance_group}.",
        {"deployment_id": deployment_id, "target": identifier_from_arn(created.get("Target", ""))},
    )


def wait_until_available(
    deployment_id: str,
    timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    rds: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """Wait until AVAILABLE; INVALID_CONFIGURATION fails at once with AWS's reason.

    Green takes tens of minutes on AWS: intervals grow from 4 s to 30 s (about
    the calls of botocore's 30-s waiter) and shrink around the forecast end.
    """
    rds = rds or client("rds")

    def probe() -> dict[str, Any]:
        deployment = describe_deployment(deployment_id, rds)
        if deployment is None:
            raise InvalidState(
                f"Blue/Green deployment {deployment_id} disappeared while provisioning"
            )
        if deployment["Status"] in ("INVALID_CONFIGURATION", "PROVISIONING_FAILED"):
            raise BusinessError(
                f"Blue/Green deployment {deployment_id} is {deployment['Status']}: "
                f"{deployment.get('StatusDetails', 'no details')}"
            )
        return deployment

    def done(deployment: dict[str, Any]) -> bool:
        return deployment["Status"] != "PROVISIONING"

    stats = poll_until(
        probe,
        done,
        timeout=timeout,
        what=f"Blue/Green deployment {deployment_id} to become AVAILABLE",
        hurry=last_task_running,
        forecast=ProvisioningForecast(),
        on_poll=on_progress,
        sleep=sleep,
        **GREEN_SCHEDULE,
    )
    deployment = stats.last
    return StepResult(
        "available" if stats.polls > 1 else "already-done",
        f"Blue/Green deployment {deployment_id} is {deployment['Status']} "
        f"after {stats.waited:.0f} s and {stats.polls} polls.",
        {"status": deployment["Status"], "polls": stats.polls, "members": members(deployment)},
    )


def start_switchover(deployment_id: str, timeout_seconds: int, rds: Any = None) -> StepResult:
    """Start the switchover unless it has started or completed already."""
    rds = rds or client("rds")
    deployment = describe_deployment(deployment_id, rds)
    if deployment is None:
        raise InvalidState(f"Blue/Green deployment {deployment_id} does not exist")
    status = deployment["Status"]
    if status in ("SWITCHOVER_IN_PROGRESS", "SWITCHOVER_COMPLETED"):
        return StepResult("already-done", f"Switchover of {deployment_id} is {status} already.")
    if status != "AVAILABLE":
        raise InvalidState(f"Blue/Green deployment {deployment_id} is {status}, not AVAILABLE")
    call(
        f"switching over {deployment_id}",
        rds.switchover_blue_green_deployment,
        BlueGreenDeploymentIdentifier=deployment_id,
        SwitchoverTimeout=timeout_seconds,
    )
    return StepResult(
        "started", f"Switchover of {deployment_id} started with a {timeout_seconds} s timeout."
    )


def wait_for_switchover(deployment_id: str, timeout: float, rds: Any = None) -> StepResult:
    """Wait for SWITCHOVER_COMPLETED; SWITCHOVER_FAILED raises SwitchoverFailed."""
    rds = rds or client("rds")

    def probe() -> dict[str, Any]:
        deployment = describe_deployment(deployment_id, rds)
        if deployment is None:
            raise InvalidState(f"Blue/Green deployment {deployment_id} disappeared")
        return deployment

    stats = poll_until(
        probe,
        lambda d: d["Status"] != "SWITCHOVER_IN_PROGRESS",
        timeout=timeout,
        what=f"switchover of {deployment_id}",
        # a switchover takes seconds to a few minutes: poll at 1 s for the first 10 s
        first_interval=1.0,
        settle=10.0,
        max_interval=5.0,
    )
    deployment = stats.last
    if deployment["Status"] == "SWITCHOVER_FAILED":
        raise SwitchoverFailed(
            f"switchover of {deployment_id} failed and AWS rolled it back, blue and green are "
            f"unchanged: {deployment.get('StatusDetails', 'no details')}"
        )
    if deployment["Status"] != "SWITCHOVER_COMPLETED":
        raise InvalidState(f"Blue/Green deployment {deployment_id} is {deployment['Status']}")
    return StepResult(
        "switched-over",
        f"Switchover of {deployment_id} completed in {stats.waited:.0f} s: the original "
        "endpoints now reach green.",
        {"members": members(deployment)},
    )


def delete_deployment(
    deployment_id: str, delete_target: bool, rds: Any = None, timeout: float = 1800
) -> StepResult:
    """Delete the deployment (with its green target when asked) and wait until gone."""
    rds = rds or client("rds")
    deployment = describe_deployment(deployment_id, rds)
    if deployment is None:
        return StepResult("already-done", f"Blue/Green deployment {deployment_id} is gone already.")
    target = identifier_from_arn(deployment.get("Target", ""))
    if deployment["Status"] != "DELETING":
        call(
            f"deleting Blue/Green deployment {deployment_id}",
            rds.delete_blue_green_deployment,
            BlueGreenDeploymentIdentifier=deployment_id,
            DeleteTarget=delete_target,
        )
    wait_until_gone(describe_deployment, deployment_id, "Blue/Green deployment", rds, timeout)
    with_target = f" with its green cluster {target}" if delete_target else ""
    return StepResult(
        "deleted",
        f"Deleted Blue/Green deployment {deployment_id}{with_target}.",
        {"target": target},
    )
