"""Pure parts of the lab's fidelity layer: the engine catalogue, redaction, faults."""

from __future__ import annotations

import json

from lab.fidelity import engine_versions
from lab.fidelity.call_log import REDACTED, describe_request, is_mutating, redact
from lab.fidelity.faults import FaultPlan, error_response


def test_15_4_may_go_to_16_2_as_a_major_upgrade():
    targets = {t["EngineVersion"]: t for t in engine_versions.upgrade_targets("15.4")}
    assert targets["16.2"]["IsMajorVersionUpgrade"] is True
    assert targets["15.5"]["IsMajorVersionUpgrade"] is False
    assert "15.4" not in targets and "15.3" not in targets


def test_no_upgrade_goes_backwards_or_skips_a_major():
    assert not engine_versions.is_valid_upgrade("16.2", "15.4")
    assert not engine_versions.is_valid_upgrade("15.4", "15.4")
    assert all(
        engine_versions.major(t["EngineVersion"]) <= 16
        for t in engine_versions.upgrade_targets("15.2")
    )


def test_catalogue_filters_by_family():
    entries = engine_versions.describe("aurora-postgresql", None, "aurora-postgresql16")
    assert entries and all(e["EngineVersion"].startswith("16.") for e in entries)
    assert engine_versions.describe("mysql", None, None) == []


def test_redaction_removes_every_password_field_at_any_depth():
    params = {
        "MasterUserPassword": "hunter2hunter2",
        "Nested": [{"SecretString": "x", "Name": "keep"}],
        "DBClusterIdentifier": "provisioning-rds",
    }
    cleaned = redact(params)
    assert cleaned["MasterUserPassword"] == REDACTED
    assert cleaned["Nested"][0]["SecretString"] == REDACTED
    assert cleaned["Nested"][0]["Name"] == "keep"
    assert "hunter2" not in json.dumps(cleaned)


def test_redaction_keeps_the_flag_that_says_whether_the_password_is_managed():
    cleaned = redact({"ManageMasterUserPassword": "false", "MasterUserPassword": "hunter2"})
    assert cleaned == {"ManageMasterUserPassword": "false", "MasterUserPassword": REDACTED}


def test_query_protocol_request_is_described_without_the_password():
    body = (
        b"Action=ModifyDBCluster&Version=2014-10-31"
        b"&DBClusterIdentifier=c&MasterUserPassword=s3cretvalue"
    )
    environ = {
        "HTTP_AUTHORIZATION": (
            "AWS4-HMAC-SHA256 Credential=lab/20261127/ap-northeast-1/rds/aws4_request"
        ),
        "QUERY_STRING": "",
    }
    call = describe_request(environ, body)
    assert call["service"] == "rds" and call["action"] == "ModifyDBCluster"
    assert "s3cretvalue" not in json.dumps(call)


def test_json_protocol_request_takes_its_action_from_the_target_header():
    environ = {"HTTP_X_AMZ_TARGET": "secretsmanager.CreateSecret", "HTTP_AUTHORIZATION": ""}
    call = describe_request(environ, json.dumps({"Name": "n", "SecretString": "pw"}).encode())
    assert call["action"] == "CreateSecret"
    assert call["params"] == {"Name": "n", "SecretString": REDACTED}


def test_describe_and_get_calls_are_not_mutations():
    assert not is_mutating("DescribeDBClusters")
    assert not is_mutating("GetSecretValue")
    assert is_mutating("ModifyDBCluster")
    assert is_mutating("SwitchoverBlueGreenDeployment")


def test_armed_faults_hit_exactly_count_calls_of_their_action():
    plan = FaultPlan(seed=1)
    plan.arm("DescribeDBClusters", "throttle", count=2)
    kinds = [plan.take("DescribeDBClusters") for _ in range(3)]
    assert kinds == ["throttle", "throttle", None]
    assert plan.take("ModifyDBCluster") is None


def test_error_bodies_carry_the_aws_codes_botocore_retries():
    status, _, body = error_response("throttle", json_protocol=False)
    assert status.startswith("400") and b"<Code>Throttling</Code>" in body
    status, _, body = error_response("500", json_protocol=True)
    assert status.startswith("500") and json.loads(body)["__type"] == "InternalFailure"
