"""Throttling and 5xx answers along the way are retried; the run still completes."""

from __future__ import annotations

import time

from lab.harness import TARGET_VERSION, RunningLab
from tests.support.flowtools import CLUSTER_ID, HELD_SECRET, lab_parameters, run_flow, secret_exists

FLAKY_ACTIONS = ("DescribeDBClusters", "DescribeBlueGreenDeployments", "ModifyDBCluster")


def test_a_run_among_throttling_and_server_errors_still_completes(lab: RunningLab) -> None:
    # The first call of each action is throttled, its retry fails with a 500; after
    # that about one call in five fails, a throttle or a 500. (botocore tries each call
    # five times: at one in five, a call fails for good once in ~3,000, which keeps
    # this test steady; at three in ten it would be once in ~400.)
    for action in FLAKY_ACTIONS:
        lab.arm_fault(action, "throttle", count=1)
        lab.arm_fault(action, "500", count=1)
        lab.arm_fault(action, "throttle", count=1000, probability=0.1)
        lab.arm_fault(action, "500", count=1000, probability=0.11)
    started = time.time()

    run = run_flow(lab_parameters(lab), "approve", "approve")

    lab.clear_faults()  # what follows looks at the result, through clients of our own
    assert run.state.is_completed(), run.state.message
    cluster = lab.cluster()
    assert cluster["EngineVersion"] == TARGET_VERSION
    assert cluster["MasterUserSecret"]["SecretStatus"] == "active"
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert not secret_exists(lab, HELD_SECRET)
    injected = {
        (c["action"], c["status"]) for c in lab.calls(started) if "injected" in c.get("error", "")
    }
    for action in FLAKY_ACTIONS:
        assert {(action, 400), (action, 500)} <= injected
