"""Every way out before the switchover ends with blue exactly as it was."""

from __future__ import annotations

from lab.harness import RunningLab
from tests.support.flowtools import (
    CLUSTER_ID,
    artifacts_of,
    assert_blue_as_before,
    flow_in_thread,
    lab_parameters,
    run_flow,
)


def assert_failed_with_one_line(state: object, *words: str) -> None:
    assert state.is_failed(), state
    assert "\n" not in state.message
    for word in words:
        assert word in state.message


def test_rejecting_green_deletes_it_and_puts_blue_back_as_it_was(lab: RunningLab) -> None:
    run = run_flow(lab_parameters(lab), "reject")

    assert_failed_with_one_line(run.state, "Rejected", "'green validated' was rejected")
    assert_blue_as_before(lab)
    assert f"{CLUSTER_ID}-way-out" in artifacts_of(run.id)


def test_rejecting_the_switchover_deletes_green_and_puts_blue_back_as_it_was(
    lab: RunningLab,
) -> None:
    run = run_flow(lab_parameters(lab), "approve", "reject")

    assert_failed_with_one_line(run.state, "Rejected", "'approve switchover' was rejected")
    assert_blue_as_before(lab)
    keys = artifacts_of(run.id)
    assert f"{CLUSTER_ID}-way-out" in keys
    assert f"{CLUSTER_ID}-switchover" not in keys


def test_nobody_answering_in_time_takes_the_way_out(lab: RunningLab) -> None:
    """The form refuses an approval timeout under 60 s; a run that long would dominate
    the suite, so the validated parameters are copied with a 3 s timeout. The flow
    accepts the instance as it is: pydantic does not revalidate a model instance."""
    params = lab_parameters(lab).model_copy(update={"approval_timeout_seconds": 3})

    with flow_in_thread(params) as run:
        run.wait_paused()
        state = run.finish()

    assert_failed_with_one_line(state, "nobody answered 'green validated' within 3 s")
    assert_blue_as_before(lab)
    assert f"{CLUSTER_ID}-way-out" in artifacts_of(run.id)
