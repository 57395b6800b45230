"""Deletion protection as AWS enforces it (AWS-FACTS S5), seen through boto3 only: a
protected cluster cannot be deleted, and a deployment cannot be deleted with a protected
green target — green copies blue's protection."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from lab.harness import CLUSTER_ID, RunningLab


def test_deleting_a_protected_cluster_is_refused(start_lab: Callable[..., RunningLab]) -> None:
    lab = start_lab()
    lab.protect()

    with pytest.raises(ClientError) as refused:
        lab.rds.delete_db_cluster(DBClusterIdentifier=CLUSTER_ID, SkipFinalSnapshot=True)

    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "Cannot delete protected Cluster" in refused.value.response["Error"]["Message"]
    assert lab.is_protected()


def test_deleting_a_deployment_with_its_protected_green_is_refused_until_green_is_unprotected(
    start_lab: Callable[..., RunningLab],
) -> None:
    lab = start_lab()
    lab.protect()
    lab.unmanage_password()
    deployment_id = lab.create_deployment()
    deployment = lab.wait_for_deployment(deployment_id, "AVAILABLE")
    green_id = deployment["Target"].rsplit(":", 1)[-1]
    assert lab.is_protected(green_id)
    green_members = lab.member_ids(green_id)

    with pytest.raises(ClientError) as refused:
        lab.rds.delete_blue_green_deployment(
            BlueGreenDeploymentIdentifier=deployment_id, DeleteTarget=True
        )

    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "deletion protection" in refused.value.response["Error"]["Message"]
    assert lab.deployment(deployment_id)["Status"] == "AVAILABLE"
    assert green_id in lab.cluster_ids()

    lab.protect(False, cluster=green_id)
    lab.rds.delete_blue_green_deployment(
        BlueGreenDeploymentIdentifier=deployment_id, DeleteTarget=True
    )

    assert lab.cluster_ids() == {CLUSTER_ID}
    assert not green_members & lab.instance_ids()
    assert lab.is_protected()
