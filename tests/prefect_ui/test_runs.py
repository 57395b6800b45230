"""Runs of the `upgrade` deployment created through the API with form-shaped parameters,
executed by a real process worker against a lab, paused and resumed through the API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prefect.client.schemas.objects import StateType

from aurora_bg.params import WEEKDAYS, UpgradeParameters
from lab.harness import CLUSTER_ID, SOURCE_VERSION, TARGET_VERSION, RunningLab, wait_for
from tasks import blue_green, password
from tests.support.operate import (
    Webhook,
    Worker,
    answer,
    artifact_text,
    form,
    lab_parameter_data,
    pause_description,
    start_run,
    wait_ended,
    wait_for_log,
    wait_paused,
)


def actions(lab: RunningLab, since: float = 0.0) -> list[str]:
    return [call["action"] for call in lab.calls(since)]


def description(run_id, pause: int) -> str:
    text = pause_description(run_id, pause)
    return json.loads(text) if text.startswith('"') else text


def assert_blue_as_it_was(lab: RunningLab) -> None:
    cluster = lab.cluster()
    assert cluster["EngineVersion"] == SOURCE_VERSION
    assert cluster.get("MasterUserSecret"), "the password is back in Secrets Manager"
    assert lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []


def closed_window(**fields: str) -> dict:
    """A one-hour window three days from today (UTC): closed now, and for days."""
    day = WEEKDAYS[(datetime.now(UTC).weekday() + 3) % 7]
    return {"days": [day], "start": "02:00", "end": "03:00", "timezone": "UTC", **fields}


def test_a_run_from_the_deployment_pauses_twice_is_resumed_through_the_api_and_completes(
    start_operated_lab: Callable[[], tuple[RunningLab, Worker]],
    paused_run_notifications: Webhook,
):
    lab, worker = start_operated_lab()
    run_id = start_run("upgrade", form())

    wait_paused(run_id, 1, worker)
    assert "**Green validated**" in description(run_id, 1)
    answer(run_id, "approve", "green looks right")

    wait_paused(run_id, 2, worker)
    second = description(run_id, 2)
    assert "**Approve the switchover**" in second
    assert "No switchover window is set: approving starts the switchover at once." in second
    answer(run_id, "approve", "go")

    run = wait_ended(run_id, worker)
    assert run.state.type == StateType.COMPLETED, run.state.message
    assert lab.cluster()["EngineVersion"] == TARGET_VERSION
    assert actions(lab).count("SwitchoverBlueGreenDeployment") == 1
    logs = wait_for_log(run_id, "Approved: green validated (green looks right)")
    assert "Approved: green validated (green looks right)" in logs
    assert f"Upgraded {CLUSTER_ID} to {TARGET_VERSION}." in artifact_text(
        f"{CLUSTER_ID}-report", run_id
    )

    # The optional automation told someone at each pause, with the way to answer.
    def notified() -> list[str]:
        return [text for text in paused_run_notifications.received if str(run_id) in text]

    messages = wait_for(lambda: len(notified()) >= 2 and notified(), 30, what="two notifications")
    assert all(f"Approval needed: {run.name}" in text for text in messages)


def test_an_approval_outside_the_switchover_window_takes_the_way_out_without_a_switchover(
    start_operated_lab: Callable[[], tuple[RunningLab, Worker]],
):
    lab, worker = start_operated_lab()
    window = closed_window()
    run_id = start_run("upgrade", form(switchover_window=window, outside_window="way-out"))

    wait_paused(run_id, 1, worker)
    answer(run_id, "approve")
    wait_paused(run_id, 2, worker)
    second = description(run_id, 2)
    day = window["days"][0]
    assert f"The switchover window ({day} 02:00–03:00 UTC) is closed now; it opens" in second
    assert "an approval outside it takes the way out" in second
    answer(run_id, "approve", "approved on a weekday afternoon")

    run = wait_ended(run_id, worker)
    assert run.state.type == StateType.FAILED
    assert "outside the switchover window" in run.state.message
    assert "SwitchoverBlueGreenDeployment" not in actions(lab)
    assert_blue_as_it_was(lab)
    report = artifact_text(f"{CLUSTER_ID}-report", run_id)
    assert "Took the way out: approved outside the switchover window" in report
    assert "Next: start a new run whose approval falls inside the window" in report


def test_a_run_on_green_prepared_days_ahead_goes_straight_to_validation(
    start_operated_lab: Callable[[], tuple[RunningLab, Worker]],
    aws_env_of: Callable[[RunningLab], None],
):
    lab, worker = start_operated_lab()
    params = UpgradeParameters.model_validate(lab_parameter_data())
    aws_env_of(lab)
    # Days ago: the password moved out and green was built, then nobody went on.
    password.move_password_out(CLUSTER_ID)
    created = blue_green.create_deployment(
        params.effective_deployment_name,
        lab.cluster()["DBClusterArn"],
        params.target_engine_version,
        params.target_cluster_parameter_group,
        params.target_instance_parameter_group,
        "prepared-ahead",
    )
    lab.wait_for_deployment(created.facts["deployment_id"], "AVAILABLE")
    since = time.time()

    run_id = start_run("upgrade", form())
    wait_paused(run_id, 1, worker)

    assert "CreateBlueGreenDeployment" not in actions(lab, since)
    text = artifact_text(f"{CLUSTER_ID}-blue-green", run_id)
    assert "exists already (AVAILABLE): resuming it" in text
    assert "is AVAILABLE after 0 s and 1 polls" in text
    answer(run_id, "reject", "only checking the prepared green")
    assert wait_ended(run_id, worker).state.type == StateType.FAILED
    assert_blue_as_it_was(lab)


def test_cancelling_a_paused_deployment_run_takes_the_way_out_under_the_worker(
    start_operated_lab: Callable[[], tuple[RunningLab, Worker]],
):
    """A worker answers the cancel by stopping the run's process (SIGTERM, then SIGKILL
    after its grace); the flow sees the cancel first and takes the way out."""
    from prefect.client.orchestration import get_client
    from prefect.states import State

    lab, worker = start_operated_lab()
    run_id = start_run("upgrade", form())
    wait_paused(run_id, 1, worker)

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, State(type=StateType.CANCELLING))
    run = wait_ended(run_id, worker)

    assert run.state.type == StateType.CANCELLED, (run.state, worker.log_tail())
    assert_blue_as_it_was(lab)
    assert not password.held_password_exists(CLUSTER_ID, lab.sm)
    report = artifact_text(f"{CLUSTER_ID}-report", run_id)
    assert "Took the way out: the run" in report and "cancel" in report, report[:300]
