"""Preflight's pure rules: AWS's limits on names and versions, the capacity formula, the
writer's parameter group status, what AWS supports around a cluster, and how a preflight
reads (blockers refuse, warnings are reported and recorded). The same rules caused for
real on the lab: tests/scenarios/test_preflight.py."""

from __future__ import annotations

from typing import Any

import pytest

from aurora_bg.errors import BadInput
from aurora_bg.params import parameters_from
from tasks.password import (
    PASSWORD_HELD,
    PASSWORD_MANAGED,
    PASSWORD_SELF_MANAGED,
    PASSWORD_UNREADABLE,
)
from tasks.preflight.aws_checks import password_check
from tasks.preflight.model import FRESH, Preflight, PreflightCheck, warning
from tasks.preflight.parameters import (
    capacity_checks,
    synchronous_commit_check,
    writer_in_sync_check,
)
from tasks.preflight.topology import (
    cloudformation_check,
    cross_region_replicas_check,
    deletion_protection_check,
    deployment_name_check,
    global_database_check,
    iam_roles_check,
    serverless_v1_check,
    source_version_check,
)
from tasks.validation.prerequisites import Capacity

ARN = "arn:aws:rds:ap-northeast-1:123456789012:cluster:prod"
SECRET = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:prod/db/master-AbCdEf"
BASE = {
    "cluster_identifier": "prod",
    "target_engine_version": "16.2",
    "target_cluster_parameter_group": "pg16-cluster",
    "target_instance_parameter_group": "pg16-instance",
}


def capacity(**overrides: Any) -> Capacity:
    values: dict[str, Any] = {
        "max_replication_slots": 10,
        "max_wal_senders": 10,
        "max_logical_replication_workers": 4,
        "max_worker_processes": 8,
        "slots_in_use": 0,
        "senders_in_use": 0,
        "synchronous_commit": "on",
    }
    return Capacity(**{**values, **overrides})


def by_name(checks: list[PreflightCheck]) -> dict[str, PreflightCheck]:
    return {c.name: c for c in checks}


# --- names and versions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("aurora-bg-prod-16-2", True),
        ("a" * 60, True),
        ("a" * 61, False),
        ("upgrade-" + "x" * 53, False),
        ("1st-upgrade", False),
        ("upgrade--to-16", False),
        ("upgrade-", False),
        ("upgrade_to_16", False),
        ("", False),
    ],
)
def test_a_deployment_name_is_1_to_60_characters_of_aws_pattern(name: str, valid: bool) -> None:
    check = deployment_name_check(name)

    assert check.passed is valid
    assert check.severity == "blocker"
    if len(name) > 60:
        assert f"{len(name)} characters (1–60 allowed)" in check.detail


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("15.4", True),
        ("15.3", False),
        ("11.21", True),
        ("11.20", False),
        ("12.15", False),
        ("13.12", True),
        ("14.8", False),
        ("16.1", True),
        ("10.21", False),
    ],
)
def test_only_source_versions_in_awss_blue_green_list_pass(version: str, supported: bool) -> None:
    check = source_version_check(version)

    assert check.passed is supported
    assert check.severity == "blocker"
    assert "15.4+" in check.detail


def test_a_source_major_newer_than_the_list_is_a_warning_not_a_pass() -> None:
    check = source_version_check("17.4")

    assert (check.passed, check.severity, check.result) == (False, "warning", "WARN")


# --- parameters ---------------------------------------------------------------------------


def test_the_capacity_formula_names_its_numbers() -> None:
    checks = by_name(
        capacity_checks(
            capacity(max_logical_replication_workers=2, slots_in_use=1, max_replication_slots=4),
            4,
            "prod-pg15",
        )
    )

    workers = checks["max_logical_replication_workers"]
    assert not workers.passed
    assert workers.detail == "4 databases need max_logical_replication_workers >= 4; blue has 2"
    assert "at least 4 in prod-pg15" in workers.fix
    slots = checks["max_replication_slots"]
    assert not slots.passed
    assert (
        slots.detail == "4 databases and 1 slot in use need max_replication_slots >= 5; blue has 4"
    )
    assert checks["max_worker_processes"].passed  # 8 >= 4 + 1
    assert checks["max_wal_senders"].passed


def test_worker_processes_count_the_launcher() -> None:
    checks = by_name(capacity_checks(capacity(max_worker_processes=4), 4, "g"))

    assert not checks["max_worker_processes"].passed
    assert "need max_worker_processes >= 5" in checks["max_worker_processes"].detail


def test_one_database_reads_in_the_singular() -> None:
    checks = by_name(capacity_checks(capacity(), 1, "g"))

    assert checks["max_wal_senders"].detail == "1 database needs max_wal_senders >= 1; blue has 10"


@pytest.mark.parametrize(("value", "passed"), [("on", True), ("off", False), ("local", False)])
def test_synchronous_commit_must_be_on(value: str, passed: bool) -> None:
    assert synchronous_commit_check(capacity(synchronous_commit=value), "g").passed is passed


def cluster(**overrides: Any) -> dict[str, Any]:
    return {
        "DBClusterIdentifier": "prod",
        "DBClusterArn": ARN,
        "DBClusterParameterGroup": "prod-pg15",
        "DBClusterMembers": [
            {"DBInstanceIdentifier": "prod-2", "IsClusterWriter": False},
            {
                "DBInstanceIdentifier": "prod-1",
                "IsClusterWriter": True,
                "DBClusterParameterGroupStatus": "in-sync",
            },
        ],
        **overrides,
    }


def test_a_writer_pending_reboot_is_a_blocker_naming_the_writer() -> None:
    members = cluster()["DBClusterMembers"]
    members[1]["DBClusterParameterGroupStatus"] = "pending-reboot"

    check = writer_in_sync_check(cluster(DBClusterMembers=members))

    assert not check.passed
    assert check.detail == "writer prod-1 is pending-reboot with prod-pg15"
    assert check.fix.startswith("reboot the writer prod-1")
    assert writer_in_sync_check(cluster()).passed


# --- around the cluster ---------------------------------------------------------------


def test_serverless_v1_and_cross_region_replicas_are_refused() -> None:
    assert not serverless_v1_check(cluster(EngineMode="serverless")).passed
    assert serverless_v1_check(cluster(EngineMode="provisioned")).passed
    other_region = "arn:aws:rds:us-east-1:123456789012:cluster:prod-replica"
    same_region = "arn:aws:rds:ap-northeast-1:123456789012:cluster:prod-local"
    refused = cross_region_replicas_check(cluster(ReadReplicaIdentifiers=[other_region]))
    assert not refused.passed and other_region in refused.detail
    assert cross_region_replicas_check(cluster(ReadReplicaIdentifiers=[same_region])).passed
    assert not cross_region_replicas_check(cluster(ReplicationSourceIdentifier=other_region)).passed


def test_roles_protection_and_cloudformation_are_warnings() -> None:
    role = "arn:aws:iam::123456789012:role/s3-import"
    checks = [
        iam_roles_check(cluster(AssociatedRoles=[{"RoleArn": role}])),
        deletion_protection_check(cluster(DeletionProtection=True)),
        cloudformation_check(
            cluster(TagList=[{"Key": "aws:cloudformation:stack-name", "Value": "db"}])
        ),
    ]

    assert [(c.passed, c.severity) for c in checks] == [(False, "warning")] * 3
    assert role in checks[0].detail and "iam:PassRole" in checks[0].fix
    assert all(c.passed for c in (iam_roles_check(cluster()), deletion_protection_check(cluster())))


# --- the password ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "passed"),
    [
        (PASSWORD_MANAGED, True),
        (PASSWORD_HELD, True),
        (PASSWORD_SELF_MANAGED, True),
        (PASSWORD_UNREADABLE, False),
    ],
)
def test_a_self_managed_password_passes_only_with_its_secret_named(mode: str, passed: bool) -> None:
    params = parameters_from({**BASE, "credentials_secret_arn": SECRET})

    check = password_check(mode, params)

    assert check.passed is passed
    assert "credentials_secret_arn" in check.fix
    assert "ManageMasterUserPassword" not in check.fix  # never a change to the password


def test_credentials_secret_arn_refuses_anything_but_an_arn_without_repeating_it() -> None:
    pasted = "Sup3r-Secret-Passw0rd"

    with pytest.raises(BadInput) as refused:
        parameters_from({**BASE, "credentials_secret_arn": pasted})

    assert "credentials_secret_arn" in str(refused.value)
    assert pasted not in str(refused.value)
    assert parameters_from({**BASE, "credentials_secret_arn": SECRET}).credentials_secret_arn


# --- how a preflight reads --------------------------------------------------------------


def test_warnings_are_reported_and_recorded_but_only_blockers_refuse() -> None:
    preflight = Preflight(
        FRESH,
        [
            PreflightCheck("cluster available", True, "available"),
            PreflightCheck("tables have primary keys", False, "app.public.t (~3 rows)", "add"),
            PreflightCheck("synchronous_commit on", False, "off", "set it on"),
            warning("no materialized views", False, "app.public.mv", "refresh after"),
        ],
    )

    assert not preflight.passed
    assert [c.name for c in preflight.failed] == [
        "tables have primary keys",
        "synchronous_commit on",
    ]
    assert preflight.refusal() == (
        "2 of 4 preflight checks failed: tables have primary keys (app.public.t (~3 rows)): "
        "add; synchronous_commit on (off): set it on"
    )
    assert "also 1 warning: no materialized views" in preflight.summary()
    assert [r["result"] for r in preflight.rows()] == ["pass", "FAIL", "FAIL", "WARN"]
    assert preflight.recorded_warnings() == [
        {"check": "no materialized views", "detail": "app.public.mv", "fix": "refresh after"}
    ]


def test_a_preflight_with_warnings_only_passes() -> None:
    preflight = Preflight(FRESH, [warning("no DB proxies", False, "proxy p", "check it")])

    assert preflight.passed
    assert preflight.summary() == "No preflight check failed (fresh); 1 warning: no DB proxies."


def rds_answering_global_clusters(members: list[dict[str, Any]]) -> Any:
    """A boto3 RDS client whose DescribeGlobalClusters answers one global cluster.

    A fake, because the lab cannot reach this: its moto refuses CreateGlobalCluster for
    the lab's cluster, so no Global Database can exist there. botocore's Stubber checks
    the answer against the API's own shapes."""
    import boto3
    from botocore.stub import Stubber

    rds = boto3.session.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="ap-northeast-1"
    ).client("rds")
    stubber = Stubber(rds)
    answer = {"GlobalClusterIdentifier": "payments", "GlobalClusterMembers": members}
    stubber.add_response("describe_global_clusters", {"GlobalClusters": [answer]})
    stubber.activate()
    return rds


@pytest.mark.parametrize(
    ("is_writer", "result", "said"),
    [
        (True, "WARN", "the primary cluster of Global Database payments"),
        (False, "FAIL", "a secondary cluster of Global Database payments"),
    ],
)
def test_a_global_database_primary_is_warned_and_a_secondary_refused(
    is_writer: bool, result: str, said: str
) -> None:
    rds = rds_answering_global_clusters([{"DBClusterArn": ARN, "IsWriter": is_writer}])

    check = global_database_check(cluster(), rds)

    assert (check.result, check.detail) == (result, said)


def test_a_cluster_outside_any_global_database_passes() -> None:
    other = "arn:aws:rds:us-east-1:123456789012:cluster:elsewhere"
    rds = rds_answering_global_clusters([{"DBClusterArn": other, "IsWriter": True}])

    assert global_database_check(cluster(), rds).passed
