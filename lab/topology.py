"""The starting point of docs/runbook.md, created through the AWS API.

Everything here goes through boto3 clients handed in by the caller, so the
same builder serves the lab and any test that wants the topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLUSTER_ID = "provisioning-rds"
FIRST_INSTANCE_ID = "rds-1"
SUBNET_GROUP = "test_db_group"
MASTER_USERNAME = "postgres"
SOURCE_VERSION = "15.4"
TARGET_VERSION = "16.2"
PARAMETER_GROUPS = {
    15: ("test-aurora-postgresql15-cluster", "test-aurora-postgresql15-instance"),
    16: ("test-aurora-postgresql16-cluster", "test-aurora-postgresql16-instance"),
}
SSM_ENDPOINT_PARAMETER = "jdbc_url"
SSM_REFERENCE_PARAMETER = "reference"
FLEET_TAG = ("fleet", "lab")  # key, value carried by every cluster of a lab of several


@dataclass
class Topology:
    """Identifiers of what `create_topology` made, as AWS reports them."""

    cluster_identifier: str
    instance_identifiers: list[str]
    cluster_arn: str
    cluster_resource_id: str
    secret_arn: str
    subnet_group: str
    subnet_ids: list[str]
    security_group_ids: list[str]
    vpc_id: str
    parameter_groups: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def instance_identifier(index: int) -> str:
    """`rds-1`, `rds-2`, …: the runbook's naming for cluster members."""
    return f"rds-{index + 1}"


def create_network(ec2: Any) -> tuple[str, list[str], list[str]]:
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        for cidr, az in (("10.20.1.0/24", "ap-northeast-1a"), ("10.20.2.0/24", "ap-northeast-1c"))
    ]
    sg = ec2.create_security_group(
        GroupName="aurora-test", Description="Aurora PostgreSQL test cluster", VpcId=vpc_id
    )["GroupId"]
    return vpc_id, subnets, [sg]


def create_parameter_groups(rds: Any) -> dict[str, str]:
    """Both generations exist before the upgrade, as in docs/runbook.md."""
    created = {}
    for major, (cluster_group, instance_group) in PARAMETER_GROUPS.items():
        family = f"aurora-postgresql{major}"
        rds.create_db_cluster_parameter_group(
            DBClusterParameterGroupName=cluster_group,
            DBParameterGroupFamily=family,
            Description=f"Aurora PostgreSQL {major} cluster parameters",
        )
        # Logical replication is a Blue/Green prerequisite on Aurora PostgreSQL.
        rds.modify_db_cluster_parameter_group(
            DBClusterParameterGroupName=cluster_group,
            Parameters=[
                {
                    "ParameterName": "rds.logical_replication",
                    "ParameterValue": "1",
                    "ApplyMethod": "pending-reboot",
                }
            ],
        )
        rds.create_db_parameter_group(
            DBParameterGroupName=instance_group,
            DBParameterGroupFamily=family,
            Description=f"Aurora PostgreSQL {major} instance parameters",
        )
        created[f"cluster{major}"] = cluster_group
        created[f"instance{major}"] = instance_group
    return created


def cluster_identifier(index: int) -> str:
    """`provisioning-rds`, then `provisioning-rds-2`, `-3`, …: the clusters of a lab."""
    return CLUSTER_ID if index == 0 else f"{CLUSTER_ID}-{index + 1}"


def member_identifier(cluster_index: int, index: int) -> str:
    """The runbook's `rds-1`, `rds-2` for the first cluster; `rds2-1`, … for the others
    (instance identifiers are unique per region, not per cluster)."""
    if cluster_index == 0:
        return instance_identifier(index)
    return f"rds{cluster_index + 1}-{index + 1}"


def server_names(cluster_index: int) -> tuple[str, str]:
    """The lab's PostgreSQL servers playing a cluster's blue and green sides."""
    if cluster_index == 0:
        return "blue", "green"
    return f"blue-{cluster_index + 1}", f"green-{cluster_index + 1}"


def server_pair(cluster_index: int) -> dict[str, str]:
    """What lab.json records for the AWS API process: a cluster and its two servers."""
    blue, green = server_names(cluster_index)
    return {"cluster": cluster_identifier(cluster_index), "blue": blue, "green": green}


def ssm_names(cluster_index: int) -> tuple[str, str]:
    suffix = "" if cluster_index == 0 else f"-{cluster_index + 1}"
    return SSM_ENDPOINT_PARAMETER + suffix, SSM_REFERENCE_PARAMETER + suffix


def create_topology(rds: Any, ec2: Any, ssm: Any, instances: int = 1) -> Topology:
    """Create docs/runbook.md's cluster, its instances, groups and SSM parameters."""
    return create_clusters(rds, ec2, ssm, instances, clusters=1)[0]


def create_clusters(
    rds: Any, ec2: Any, ssm: Any, instances: int = 1, clusters: int = 1
) -> list[Topology]:
    """docs/runbook.md's topology `clusters` times: one network, subnet group and set of
    parameter groups shared by all (as one account would share them), and per cluster
    its own cluster, instances, managed secret and SSM parameters."""
    vpc_id, subnet_ids, sg_ids = create_network(ec2)
    rds.create_db_subnet_group(
        DBSubnetGroupName=SUBNET_GROUP,
        DBSubnetGroupDescription="Aurora test subnet group",
        SubnetIds=subnet_ids,
    )
    groups = create_parameter_groups(rds)
    shared = {
        "subnet_ids": subnet_ids,
        "security_group_ids": sg_ids,
        "vpc_id": vpc_id,
        "parameter_groups": groups,
        # A fleet lab tags its clusters, so a fleet can find them by tag; a lab of one
        # cluster stays exactly the runbook's, untagged.
        "tags": [{"Key": FLEET_TAG[0], "Value": FLEET_TAG[1]}] if clusters > 1 else [],
    }
    return [create_cluster(rds, ssm, index, instances, shared) for index in range(clusters)]


def create_cluster(
    rds: Any, ssm: Any, index: int, instances: int, shared: dict[str, Any]
) -> Topology:
    """One cluster of docs/runbook.md with its instances and SSM parameters."""
    cluster_id = cluster_identifier(index)
    groups = shared["parameter_groups"]
    rds.create_db_cluster(
        DBClusterIdentifier=cluster_id,
        Engine="aurora-postgresql",
        EngineVersion=SOURCE_VERSION,
        EngineMode="provisioned",
        MasterUsername=MASTER_USERNAME,
        ManageMasterUserPassword=True,
        EnableHttpEndpoint=True,
        NetworkType="IPV4",
        DBSubnetGroupName=SUBNET_GROUP,
        VpcSecurityGroupIds=shared["security_group_ids"],
        DBClusterParameterGroupName=groups["cluster15"],
        ServerlessV2ScalingConfiguration={"MinCapacity": 2, "MaxCapacity": 16},
        Tags=shared["tags"],
    )
    instance_ids = [member_identifier(index, i) for i in range(instances)]
    for instance_id in instance_ids:
        rds.create_db_instance(
            DBInstanceIdentifier=instance_id,
            DBClusterIdentifier=cluster_id,
            DBInstanceClass="db.serverless",
            Engine="aurora-postgresql",
            EngineVersion=SOURCE_VERSION,
            DBParameterGroupName=groups["instance15"],
        )
    cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    for name in ssm_names(index):
        ssm.put_parameter(Name=name, Value=cluster["Endpoint"], Type="String")
    return Topology(
        cluster_identifier=cluster_id,
        instance_identifiers=instance_ids,
        cluster_arn=cluster["DBClusterArn"],
        cluster_resource_id=cluster["DbClusterResourceId"],
        secret_arn=cluster["MasterUserSecret"]["SecretArn"],
        subnet_group=SUBNET_GROUP,
        subnet_ids=shared["subnet_ids"],
        security_group_ids=shared["security_group_ids"],
        vpc_id=shared["vpc_id"],
        parameter_groups=groups,
    )
