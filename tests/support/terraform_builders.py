"""Named builders for the Terraform tests: the lab, its switchover, the shim."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from lab.terraform_dir import write_terraform_dir
from lab.topology import PARAMETER_GROUPS, TARGET_VERSION, create_topology

TERRAFORM_SHIM = Path(__file__).resolve().parents[1] / "tools" / "terraform"
FIXTURES = Path(__file__).resolve().parents[1] / "terraform" / "fixtures"


def terraform(terraform_bin: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the shim the way an operator runs terraform."""
    return subprocess.run(
        [terraform_bin, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def state_list(terraform_bin: str, directory: Path) -> list[str]:
    result = terraform(terraform_bin, directory, "state", "list")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (Terraform's data dir aside), for before/after checks."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and ".terraform" not in p.relative_to(directory).parts
    }


def build_lab(aws: dict[str, Any], directory: Path, instances: int = 1, **options: Any) -> Path:
    """docs/runbook.md's topology in moto and its Terraform directory with the lab's ids."""
    create_topology(aws["rds"], aws["ec2"], aws["ssm"], instances=instances)
    return write_terraform_dir(directory, aws["rds"], aws["ssm"], aws["ec2"], **options)


def simulate_switchover(rds: Any) -> None:
    """What AWS reports after the switchover: 16.2 on the 16 parameter groups.

    The lab's real switchover (renames, new resource ids) is exercised by the
    lab's own tests; here moto's cluster is only modified in place, which is all
    the Terraform phase reads.
    """
    cluster_group, instance_group = PARAMETER_GROUPS[16]
    rds.modify_db_cluster(
        DBClusterIdentifier="provisioning-rds",
        EngineVersion=TARGET_VERSION,
        DBClusterParameterGroupName=cluster_group,
        AllowMajorVersionUpgrade=True,
        ApplyImmediately=True,
    )
    members = rds.describe_db_clusters(DBClusterIdentifier="provisioning-rds")["DBClusters"][0][
        "DBClusterMembers"
    ]
    for member in members:
        rds.modify_db_instance(
            DBInstanceIdentifier=member["DBInstanceIdentifier"],
            DBParameterGroupName=instance_group,
            ApplyImmediately=True,
        )
