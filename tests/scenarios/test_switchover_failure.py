"""A switchover AWS rolls back: the run fails and says so in AWS's words (its RDS events),
blue keeps serving writes."""

from __future__ import annotations

import json

from lab.harness import SOURCE_VERSION, RunningLab
from tests.support.flowtools import (
    CLUSTER_ID,
    HELD_SECRET,
    artifacts_of,
    calls_named,
    can_write,
    deployments,
    flow_in_thread,
    lab_parameters,
    table_rows,
)

# RDS-EVENT-0261: the cluster's switchover canceled, with AWS's reason
AWS_REASON = "was canceled due to green not catching up with blue within 30 seconds"


def test_a_switchover_blocked_by_an_open_write_fails_the_run_and_leaves_blue_serving_writes(
    lab: RunningLab,
) -> None:
    with flow_in_thread(lab_parameters(lab, switchover_timeout_seconds=30)) as run:
        run.answer("approve", "green looks right")
        run.wait_paused()
        # The password is self-managed while the deployment exists; the run holds it here.
        held = json.loads(lab.sm.get_secret_value(SecretId=HELD_SECRET)["SecretString"])
        cluster = lab.cluster()
        writer = lab.connect(
            cluster["Endpoint"], cluster["Port"], held["password"], autocommit=False
        )
        try:
            writer.execute("INSERT INTO audit_log (actor, action) VALUES ('tests', 'open write')")
            run.answer("approve", "switch over")
            state = run.finish()
            writer.rollback()
        finally:
            writer.close()

    assert state.is_failed(), state
    assert "\n" not in state.message
    assert "switchover" in state.message and "failed" in state.message
    assert "rolled" in state.message and "back" in state.message
    assert "AWS's events: Switchover canceled on blue/green deployment." in state.message
    assert AWS_REASON in state.message
    read = calls_named(lab, "DescribeEvents")
    assert {c["params"]["SourceType"] for c in read} == {"blue-green-deployment", "db-cluster"}
    artifacts = artifacts_of(run.id)
    assert AWS_REASON in artifacts[f"{CLUSTER_ID}-report"].data
    events = [e["message"] for e in table_rows(artifacts[f"{CLUSTER_ID}-rds-events"])]
    assert any(AWS_REASON in message for message in events)
    assert can_write(lab, held["password"])
    assert lab.cluster()["EngineVersion"] == SOURCE_VERSION
    assert not any(name.endswith("-old1") for name in lab.cluster_ids() | lab.instance_ids())
    (deployment,) = deployments(lab)
    assert deployment["Status"] == "SWITCHOVER_FAILED"
    assert CLUSTER_ID in deployment["Source"]
