"""A creation AWS accepts and fails later: the deployment ends INVALID_CONFIGURATION
after provisioning, the run takes the way out, and the report and the failure line say
why in AWS's words, read from the deployment's RDS events (RDS-EVENT-0245)."""

from __future__ import annotations

import time

from lab.harness import RunningLab, wait_for
from tests.support.flowtools import (
    CLUSTER_ID,
    artifacts_of,
    assert_blue_as_before,
    calls_named,
    flow_in_thread,
    lab_parameters,
    table_rows,
)

AWS_REASON = (
    "Creation of blue/green deployment failed because the source DB cluster has incompatible "
    "parameters: synchronous_commit is off; it must be on."
)


def test_a_creation_aws_fails_later_takes_the_way_out_and_the_report_quotes_aws_reason(
    lab: RunningLab,
) -> None:
    started = time.time()
    # Preflight finds blue fit. The creation is throttled once through botocore's tries, so
    # a task retry makes it a moment later: meanwhile synchronous_commit goes off (dynamic,
    # applied at once), as a parameter change made while the upgrade runs would.
    lab.arm_fault("CreateBlueGreenDeployment", "throttle", count=5)
    with flow_in_thread(lab_parameters(lab, terraform={"enabled": False})) as run:
        wait_for(
            lambda: calls_named(lab, "CreateBlueGreenDeployment", since=started),
            120,
            interval=0.05,
            what="the first, throttled, CreateBlueGreenDeployment",
        )
        lab.set_cluster_parameters({"synchronous_commit": "off"}, apply_method="immediate")
        state = run.finish()

    assert state.is_failed()
    message = state.message or ""
    assert "\n" not in message
    assert "INVALID_CONFIGURATION" in message and AWS_REASON in message
    created = calls_named(lab, "CreateBlueGreenDeployment", since=started)
    assert [c.get("error") for c in created][-1] is None  # accepted at last, then failed
    # the run read the deployment's events, from its own start on
    read = calls_named(lab, "DescribeEvents", since=started)
    assert {c["params"]["SourceType"] for c in read} == {"blue-green-deployment", "db-cluster"}
    artifacts = artifacts_of(run.id)
    events = table_rows(artifacts[f"{CLUSTER_ID}-rds-events"])
    failed = [e for e in events if e["message"] == AWS_REASON]
    assert len(failed) == 1 and failed[0]["source"].startswith("blue-green-deployment bgd-")
    assert failed[0]["categories"] == "failure"
    report = artifacts[f"{CLUSTER_ID}-report"].data
    assert f"Took the way out: Blue/Green deployment {failed[0]['source'].split()[-1]}" in report
    assert AWS_REASON in report
    assert "read AWS's events" in report  # a row of the timeline
    assert_blue_as_before(lab)  # the way out: no deployment, nor green, nor held password
