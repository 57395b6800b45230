"""The whole upgrade, both pauses answered through the Prefect API with the approval form."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.harness import (
    TARGET_CLUSTER_PARAMETER_GROUP,
    TARGET_INSTANCE_PARAMETER_GROUP,
    TARGET_VERSION,
    RunningLab,
)
from tests.support.flowtools import (
    ARTIFACT_KINDS_OF_A_FULL_RUN,
    CLUSTER_ID,
    HELD_SECRET,
    artifacts_of,
    calls_named,
    deployments,
    instance_group,
    lab_parameters,
    run_flow,
    secret_exists,
)


def assert_upgraded(lab: RunningLab, members: set[str], original_secret_arn: str) -> None:
    cluster = lab.cluster()
    assert cluster["EngineVersion"] == TARGET_VERSION
    assert cluster["DBClusterParameterGroup"] == TARGET_CLUSTER_PARAMETER_GROUP
    assert lab.member_ids(CLUSTER_ID) == members
    for instance_id in members:
        assert lab.instance(instance_id)["EngineVersion"] == TARGET_VERSION
        assert instance_group(lab, instance_id) == TARGET_INSTANCE_PARAMETER_GROUP
    secret_arn = cluster["MasterUserSecret"]["SecretArn"]
    assert secret_arn != original_secret_arn
    with lab.connect_cluster(CLUSTER_ID, lab.master_password()) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
    assert deployments(lab) == []
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert lab.instance_ids() == members
    assert not secret_exists(lab, HELD_SECRET)


# The one whole-flow scenario of the fast tier (`pytest -m "unit or smoke"`): the plainest
# path from a fresh lab to an upgraded cluster.
@pytest.mark.smoke
def test_approved_run_leaves_the_cluster_on_16_with_a_new_managed_secret_and_nothing_else(
    lab: RunningLab,
) -> None:
    original_secret_arn = lab.cluster()["MasterUserSecret"]["SecretArn"]

    run = run_flow(lab_parameters(lab), "approve", "approve")

    assert run.state.is_completed(), run.state.message
    assert_upgraded(lab, {"rds-1"}, original_secret_arn)
    snapshots = lab.rds.describe_db_cluster_snapshots()["DBClusterSnapshots"]
    assert [
        s["DBClusterIdentifier"] for s in snapshots if "-final-" in s["DBClusterSnapshotIdentifier"]
    ] == [f"{CLUSTER_ID}-old1"]
    keys = set(artifacts_of(run.id))
    assert {f"{CLUSTER_ID}-{kind}" for kind in ARTIFACT_KINDS_OF_A_FULL_RUN} <= keys
    switchover = calls_named(lab, "SwitchoverBlueGreenDeployment")
    assert len(switchover) == 1
    latency = switchover[0]["time"] - run.resumed_at[1]
    print(f"approval → SwitchoverBlueGreenDeployment: {latency:.2f} s")
    assert 0 < latency < 10


def test_approved_run_of_a_two_instance_cluster_replaces_both_instances(
    start_lab_with_aws_env: Callable[..., RunningLab],
) -> None:
    lab = start_lab_with_aws_env(instances=2)
    original_secret_arn = lab.cluster()["MasterUserSecret"]["SecretArn"]

    run = run_flow(lab_parameters(lab), "approve", "approve")

    assert run.state.is_completed(), run.state.message
    assert_upgraded(lab, {"rds-1", "rds-2"}, original_secret_arn)
    deleted = {
        c["params"].get("DBInstanceIdentifier") for c in calls_named(lab, "DeleteDBInstance")
    }
    assert deleted == {"rds-1-old1", "rds-2-old1"}
