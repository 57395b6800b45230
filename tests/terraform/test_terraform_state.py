"""The lab's Terraform directory and the state steps, against real Terraform core."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from python_terraform import Terraform

from aurora_bg.errors import BadInput, PreconditionFailed
from lab.topology import CLUSTER_ID
from tasks.terraform.state import (
    backup_state,
    find_cluster_addresses,
    pull_state,
    read_cluster_facts,
    state_addresses,
)
from tasks.terraform.version import check_cli_version, read_state_version
from tests.support.terraform_builders import build_lab, state_list, terraform

RUNBOOK_ADDRESSES = [
    "aws_db_parameter_group.test15",
    "aws_db_parameter_group.test16",
    "aws_db_subnet_group.test",
    "aws_rds_cluster.test",
    "aws_rds_cluster_instance.test",
    "aws_rds_cluster_parameter_group.test15",
    "aws_rds_cluster_parameter_group.test16",
    "aws_ssm_parameter.db_endpoint",
    "aws_ssm_parameter.reference_test",
]


def read_state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "terraform.tfstate").read_text())


def test_lab_directory_lists_runbook_addresses(lab_dir: Path, terraform_bin: str):
    assert state_list(terraform_bin, lab_dir) == RUNBOOK_ADDRESSES


def test_lab_directory_with_three_instances_uses_count(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str
):
    directory = build_lab(aws, tmp_path / "terraform", instances=3)

    listed = state_list(terraform_bin, directory)

    assert [a for a in listed if a.startswith("aws_rds_cluster_instance")] == [
        "aws_rds_cluster_instance.test[0]",
        "aws_rds_cluster_instance.test[1]",
        "aws_rds_cluster_instance.test[2]",
    ]
    assert "count = 3" in (directory / "main.tf").read_text()
    assert terraform(terraform_bin, directory, "fmt", "-check").returncode == 0


def test_lab_state_carries_the_ids_aws_reports(
    aws: dict[str, Any], tmp_path: Path, cli_version: str
):
    directory = build_lab(aws, tmp_path / "terraform")
    cluster = aws["rds"].describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)["DBClusters"][0]
    instance = aws["rds"].describe_db_instances(DBInstanceIdentifier="rds-1")["DBInstances"][0]
    state = read_state(directory)
    by_address = {a.address: a.attributes for a in state_addresses(state)}

    assert state["version"] == 4 and state["terraform_version"] == cli_version
    assert (
        by_address["aws_rds_cluster.test"]["cluster_resource_id"] == cluster["DbClusterResourceId"]
    )
    assert by_address["aws_rds_cluster.test"]["arn"] == cluster["DBClusterArn"]
    assert by_address["aws_rds_cluster.test"]["endpoint"] == cluster["Endpoint"]
    assert (
        by_address["aws_rds_cluster.test"]["master_user_secret"][0]["secret_arn"]
        == (cluster["MasterUserSecret"]["SecretArn"])
    )
    assert by_address["aws_rds_cluster.test"]["master_password"] is None
    assert (
        by_address["aws_rds_cluster_instance.test"]["dbi_resource_id"] == instance["DbiResourceId"]
    )
    assert by_address["aws_ssm_parameter.db_endpoint"]["value"] == cluster["Endpoint"]
    subnets = {
        s["SubnetIdentifier"]
        for s in aws["rds"].describe_db_subnet_groups()["DBSubnetGroups"][0]["Subnets"]
    }
    assert set(by_address["aws_db_subnet_group.test"]["subnet_ids"]) == subnets


def test_lab_directory_holds_no_password(aws: dict[str, Any], tmp_path: Path):
    directory = build_lab(aws, tmp_path / "terraform")
    cluster = aws["rds"].describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)["DBClusters"][0]
    secret = aws["secretsmanager"].get_secret_value(
        SecretId=cluster["MasterUserSecret"]["SecretArn"]
    )["SecretString"]
    password = json.loads(secret)["password"]

    for path in directory.iterdir():
        assert password not in path.read_text(), path.name


def test_real_terraform_can_remove_lab_addresses(lab_dir: Path, terraform_bin: str):
    removed = terraform(
        terraform_bin,
        lab_dir,
        "state",
        "rm",
        "aws_rds_cluster.test",
        "aws_rds_cluster_instance.test",
    )

    assert removed.returncode == 0, removed.stderr
    assert state_list(terraform_bin, lab_dir) == [
        a
        for a in RUNBOOK_ADDRESSES
        if a not in ("aws_rds_cluster.test", "aws_rds_cluster_instance.test")
    ]


def test_addresses_are_found_by_cluster_identifier_whatever_their_names(
    tmp_path: Path, terraform_bin: str
):
    """for_each keys and odd names: the addresses match what `terraform state list` prints."""
    state = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": 1,
        "lineage": "0f6f2d4e-8a59-4a83-9f0c-1d3c0c6f3e11",
        "outputs": {},
        "resources": [
            _resource("aws_rds_cluster", "orders", [(None, {"cluster_identifier": CLUSTER_ID})]),
            _resource("aws_rds_cluster", "other", [(None, {"cluster_identifier": "other"})]),
            _resource(
                "aws_rds_cluster_instance",
                "members",
                [
                    ("rds-1", {"identifier": "rds-1", "cluster_identifier": CLUSTER_ID}),
                    ("rds-2", {"identifier": "rds-2", "cluster_identifier": CLUSTER_ID}),
                ],
                each="map",
            ),
            _resource(
                "aws_rds_cluster_instance",
                "elsewhere",
                [
                    (0, {"identifier": "x-1", "cluster_identifier": "other"}),
                ],
                each="list",
            ),
        ],
    }
    (tmp_path / "terraform.tfstate").write_text(json.dumps(state))
    (tmp_path / "main.tf").write_text("")

    found = find_cluster_addresses(state, CLUSTER_ID)

    assert found.all == [
        "aws_rds_cluster.orders",
        'aws_rds_cluster_instance.members["rds-1"]',
        'aws_rds_cluster_instance.members["rds-2"]',
    ]
    assert sorted(a.address for a in state_addresses(state)) == state_list(terraform_bin, tmp_path)


def test_two_clusters_with_one_identifier_are_refused():
    state = {
        "resources": [
            _resource("aws_rds_cluster", "a", [(None, {"cluster_identifier": CLUSTER_ID})]),
            _resource("aws_rds_cluster", "b", [(None, {"cluster_identifier": CLUSTER_ID})]),
        ]
    }

    with pytest.raises(BadInput, match="2 state entries claim cluster provisioning-rds"):
        find_cluster_addresses(state, CLUSTER_ID)


def test_cluster_absent_from_state_is_none():
    assert find_cluster_addresses({"resources": []}, CLUSTER_ID) is None


@pytest.mark.parametrize(
    ("cli", "state", "allowed", "outcome"),
    [
        ("1.9.3", "1.9.3", False, "checked"),
        ("1.15.5", "1.9.3", True, "allowed"),
        ("1.15.5", "1.9.3", False, "newer than the state's 1.9.3"),
        ("1.9.3", "1.15.5", True, "older than the state's 1.15.5"),
        ("1.10.0", "1.9.3", False, "newer"),  # numeric, not string, comparison
    ],
)
def test_cli_version_guard(cli: str, state: str, allowed: bool, outcome: str):
    if outcome in ("checked", "allowed"):
        assert check_cli_version(cli, state, allowed).action == outcome
        return
    with pytest.raises(PreconditionFailed, match=outcome) as stopped:
        check_cli_version(cli, state, allowed)
    assert "\n" not in str(stopped.value)


def test_state_version_is_read_from_the_file_not_from_state_pull(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str, cli_version: str
):
    directory = build_lab(aws, tmp_path / "terraform", terraform_version="1.9.3")
    tf = Terraform(working_dir=str(directory), terraform_bin_path=terraform_bin)

    pulled, _ = pull_state(tf, directory)

    assert pulled["terraform_version"] == cli_version  # `state pull` stamps the CLI's version
    assert read_state_version(tf, directory, pulled) == "1.9.3"


def test_backup_is_a_timestamped_byte_copy_next_to_the_state(lab_dir: Path, terraform_bin: str):
    tf = Terraform(working_dir=str(lab_dir), terraform_bin_path=terraform_bin)
    state, text = pull_state(tf, lab_dir)

    result = backup_state(
        lab_dir,
        state,
        text,
        lab_dir / "unused",
        now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )

    backup = lab_dir / "terraform.tfstate.backup-20260102T030405Z"
    assert result.facts["backup"] == str(backup)
    assert backup.read_bytes() == (lab_dir / "terraform.tfstate").read_bytes()


def test_remote_state_backup_goes_to_the_backup_directory(tmp_path: Path):
    state = {"lineage": "remote", "serial": 7}

    result = backup_state(tmp_path, state, '{"remote": true}', tmp_path / "backups")

    assert Path(result.facts["backup"]).parent == tmp_path / "backups"
    assert Path(result.facts["backup"]).read_text() == '{"remote": true}'


def test_directory_without_state_is_bad_input(tmp_path: Path, terraform_bin: str):
    (tmp_path / "main.tf").write_text("locals {\n  a = 1\n}\n")
    tf = Terraform(working_dir=str(tmp_path), terraform_bin_path=terraform_bin)

    with pytest.raises(BadInput, match="no Terraform state in"):
        pull_state(tf, tmp_path)


def test_cluster_facts_after_the_switchover(lab_dir: Path, aws: dict[str, Any]):
    facts = read_cluster_facts(aws["rds"], CLUSTER_ID)

    assert facts.engine_version == "16.2"
    assert facts.cluster_parameter_group == "test-aurora-postgresql16-cluster"
    assert facts.instance_parameter_groups == {"rds-1": "test-aurora-postgresql16-instance"}


def test_missing_cluster_facts_are_a_precondition(aws: dict[str, Any]):
    with pytest.raises(PreconditionFailed, match="does not exist"):
        read_cluster_facts(aws["rds"], "nope")


def _resource(type_: str, name: str, instances: list, each: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "mode": "managed",
        "type": type_,
        "name": name,
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [],
    }
    if each:
        resource["each"] = each
    for key, attributes in instances:
        instance = {"schema_version": 0, "attributes": {"id": name, **attributes}}
        if key is not None:
            instance["index_key"] = key
        resource["instances"].append(instance)
    return resource
