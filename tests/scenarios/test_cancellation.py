"""Cancelling a run from Prefect, as the UI's button does (the run turns Cancelling).

Before the switchover the run takes the way out and ends Cancelled with blue as it
was; after the switchover it ends Cancelled with a report of where things stand,
and a rerun finishes the job.
"""

from __future__ import annotations

import time
import uuid

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import State

from lab.harness import TARGET_VERSION, RunningLab, wait_for
from tests.support.flowtools import (
    FlowInThread,
    artifacts_of,
    assert_blue_as_before,
    calls_named,
    deployments,
    flow_in_thread,
    lab_parameters,
    run_flow,
)


def cancel(run_id: uuid.UUID) -> None:
    """What the UI's Cancel button (and `prefect flow-run cancel`) does."""
    with get_client(sync_client=True) as client:
        result = client.set_flow_run_state(run_id, State(type=StateType.CANCELLING))
    assert result.status.value == "ACCEPT", result.details


def assert_cancelled_after_the_way_out(lab: RunningLab, run: FlowInThread) -> None:
    state = run.finish()
    assert state.type == StateType.CANCELLED, state
    assert "Took the way out: the run was cancelled from Prefect" in state.message
    assert "way-out" in "".join(artifacts_of(run.id))
    assert_blue_as_before(lab)


def test_cancelling_a_paused_run_takes_the_way_out(lab: RunningLab) -> None:
    with flow_in_thread(lab_parameters(lab)) as run:
        run.wait_paused()
        cancel(run.id)
        assert_cancelled_after_the_way_out(lab, run)
    assert "while paused at 'green validated'" in run.state.message


def test_cancelling_while_green_provisions_takes_the_way_out(lab: RunningLab) -> None:
    lab.set_provisioning_delay(30)
    started = time.time()
    with flow_in_thread(lab_parameters(lab)) as run:
        wait_for(
            lambda: calls_named(lab, "CreateBlueGreenDeployment", started),
            120,
            what="the deployment's creation",
        )
        cancel(run.id)
        assert_cancelled_after_the_way_out(lab, run)
    assert "provisioning" in run.state.message
    assert len(calls_named(lab, "CreateBlueGreenDeployment")) == 1


def test_cancelling_after_the_switchover_reports_where_things_stand_and_a_rerun_finishes(
    lab: RunningLab,
) -> None:
    started = time.time()
    with flow_in_thread(lab_parameters(lab)) as run:
        run.answer("approve")
        run.answer("approve")
        wait_for(
            lambda: calls_named(lab, "SwitchoverBlueGreenDeployment", started),
            120,
            what="the switchover call",
        )
        cancel(run.id)
        state = run.finish()
    assert state.type == StateType.CANCELLED, state
    assert "the run was cancelled from Prefect" in state.message
    assert f"Now: provisioning-rds runs {TARGET_VERSION}" in state.message
    assert "Rerun with the same parameters to finish." in state.message
    assert "report" in "".join(artifacts_of(run.id))
    assert lab.cluster()["EngineVersion"] == TARGET_VERSION

    rerun = run_flow(lab_parameters(lab))
    assert rerun.state.is_completed(), rerun.state.message
    assert deployments(lab) == []
    assert lab.cluster()["MasterUserSecret"]["SecretStatus"] == "active"
    assert len(calls_named(lab, "SwitchoverBlueGreenDeployment")) == 1
