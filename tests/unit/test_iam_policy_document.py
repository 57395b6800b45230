"""deployments/iam-policy.json as a document: its placeholders all filled for the lab, its
resource scoping as AWS evaluates it (which the lab's moto does not), and an AccessDenied
turned into a business error naming the permission. The policy at work in whole runs is
tests/scenarios/test_iam_policy.py."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from aurora_bg.errors import BusinessError
from lab.fidelity import iam
from lab.fidelity.iam_scope import denied_resources
from lab.fidelity.world import LAB_ACCOUNT
from lab.harness import CLUSTER_ID
from tasks.aws import classify

POLICY = iam.shipped_policy()


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/u is not authorized to perform: "
            "secretsmanager:GetSecretValue on resource: x because no identity-based policy",
            "secretsmanager:GetSecretValue",
        ),
        ("AccessDenied", "Access Denied", "rds:ModifyDBCluster"),
    ],
)
def test_access_denied_is_a_business_error_naming_the_permission(
    code: str, message: str, expected: str
) -> None:
    error = ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "ModifyDBCluster",
    )

    classified = classify(error, "changing the cluster", "rds")

    assert type(classified) is BusinessError
    assert f"changing the cluster: missing permission {expected} (AccessDenied)" in str(classified)


def test_policy_placeholders_are_all_filled_for_the_lab() -> None:
    filled = iam.fill_placeholders(POLICY, {name: name.lower() for name in iam.PLACEHOLDERS})

    text = str(filled)
    assert not [name for name in iam.PLACEHOLDERS if name in text]
    assert "arn:aws:rds:region:account:cluster:cluster" in text
    assert "cluster-pg:target_cluster_parameter_group" in text


def lab_call(service: str, action: str, **params: Any) -> dict[str, Any]:
    return {"service": service, "action": action, "params": params}


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        (lab_call("rds", "DeleteDBCluster", DBClusterIdentifier="provisioning-rds-old1"), True),
        (lab_call("rds", "DeleteDBCluster", DBClusterIdentifier=CLUSTER_ID), False),
        (lab_call("rds", "ModifyDBCluster", DBClusterIdentifier=CLUSTER_ID), True),
        (lab_call("secretsmanager", "GetSecretValue", SecretId="payments/api-key"), False),
        (
            lab_call(
                "secretsmanager",
                "CreateSecret",
                Name=f"aurora-bg/{CLUSTER_ID}/master-password",
                Tags=[{"Key": "aurora-bg:cluster", "Value": CLUSTER_ID}],
            ),
            True,
        ),
        (
            lab_call(
                "secretsmanager", "CreateSecret", Name=f"aurora-bg/{CLUSTER_ID}/master-password"
            ),
            False,
        ),
        (
            lab_call(
                "secretsmanager", "DeleteSecret", SecretId="aurora-bg/other-db/master-password"
            ),
            False,
        ),
    ],
    ids=[
        "deletes-the-old-blue",
        "never-deletes-the-production-cluster",
        "changes-the-password-mode",
        "reads-no-other-secret",
        "creates-the-held-secret-tagged",
        "creates-no-untagged-secret",
        "deletes-no-other-clusters-held-secret",
    ],
)
def test_the_policy_scopes_resources_as_aws_evaluates_them(
    call: dict[str, Any], allowed: bool
) -> None:
    filled = iam.fill_placeholders(
        POLICY,
        iam.lab_placeholders(
            {"region": "ap-northeast-1", "topology": {"cluster_identifier": CLUSTER_ID}}
        ),
    )

    assert (denied_resources(filled, call, "ap-northeast-1", LAB_ACCOUNT) == []) is allowed
