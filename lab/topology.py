"""The starting point of RUNBOOK.md, created through the AWS API.

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
    """`rds-1`, `rds-2`, …: the RUNBOOK's naming for cluster members."""
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
    """Both generations exist before the upgrade, as in RUNBOOK.md."""
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


def create_topology(rds: Any, ec2: Any, ssm: Any, instances: int = 1) -> Topology:
    """Create RUNBOOK.md's cluster, its instances, groups and SSM parameters."""
    vpc_id, subnet_ids, sg_ids = create_network(ec2)
    rds.create_db_subnet_group(
        DBSubnetGroupName=SUBNET_GROUP,
        DBSubnetGroupDescription="Aurora test subnet group",
        SubnetIds=subnet_ids,
    )
    groups = create_parameter_groups(rds)
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=CLUSTER_ID,
        Engine="aurora-postgresql",
        EngineVersion=SOURCE_VERSION,
        EngineMode="provisioned",
        MasterUsername=MASTER_USERNAME,
        ManageMasterUserPassword=True,
        EnableHttpEndpoint=True,
        NetworkType="IPV4",
        DBSubnetGroupName=SUBNET_GROUP,
        VpcSecurityGroupIds=sg_ids,
        DBClusterParameterGroupName=groups["cluster15"],
        ServerlessV2ScalingConfiguration={"MinCapacity": 2, "MaxCapacity": 16},
    )["DBCluster"]
    instance_ids = [instance_identifier(i) for i in range(instances)]
    for instance_id in instance_ids:
        rds.create_db_instance(
            DBInstanceIdentifier=instance_id,
            DBClusterIdentifier=CLUSTER_ID,
            DBInstanceClass="db.serverless",
            Engine="aurora-postgresql",
            EngineVersion=SOURCE_VERSION,
            DBParameterGroupName=groups["instance15"],
        )
    cluster = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)["DBClusters"][0]
    ssm.put_parameter(Name=SSM_ENDPOINT_PARAMETER, Value=cluster["Endpoint"], Type="String")
    ssm.put_parameter(Name=SSM_REFERENCE_PARAMETER, Value=cluster["Endpoint"], Type="String")
    return Topology(
        cluster_identifier=CLUSTER_ID,
        instance_identifiers=instance_ids,
        cluster_arn=cluster["DBClusterArn"],
        cluster_resource_id=cluster["DbClusterResourceId"],
        secret_arn=cluster["MasterUserSecret"]["SecretArn"],
        subnet_group=SUBNET_GROUP,
        subnet_ids=subnet_ids,
        security_group_ids=sg_ids,
        vpc_id=vpc_id,
        parameter_groups=groups,
    )
