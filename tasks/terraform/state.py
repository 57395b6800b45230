"""Terraform state: find the cluster's addresses, back the state up, remove them.

The state is read with `terraform state pull` through the team's own CLI
(`tasks.terraform.cli`), which needs no provider, unlike `show -json`, and
works the same for local and remote backends. Addresses are found by the
`cluster_identifier` attribute, never assumed from resource names.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_terraform import Terraform

from aurora_bg.errors import BadInput, InvalidState, PreconditionFailed
from aurora_bg.results import StepResult
from tasks.terraform.cli import first_line_of_error, run_terraform, state_not_json

CLUSTER_TYPE = "aws_rds_cluster"
INSTANCE_TYPE = "aws_rds_cluster_instance"


@dataclass(frozen=True)
class ClusterFacts:
    """What AWS reports about the production cluster now (after the switchover)."""

    cluster_identifier: str
    engine_version: str
    cluster_resource_id: str
    cluster_parameter_group: str
    # instance identifier -> its DB parameter group name
    instance_parameter_groups: dict[str, str]

    @property
    def instance_identifiers(self) -> list[str]:
        return sorted(self.instance_parameter_groups)


def read_cluster_facts(rds: Any, cluster_identifier: str) -> ClusterFacts:
    """Describe the cluster and its members through `rds` (lab or AWS alike).

    Raises PreconditionFailed when the cluster does not exist.
    """
    try:
        clusters = rds.describe_db_clusters(DBClusterIdentifier=cluster_identifier)["DBClusters"]
    except rds.exceptions.DBClusterNotFoundFault as exc:
        raise PreconditionFailed(
            f"cluster {cluster_identifier} does not exist in AWS: check the cluster identifier, "
            "AWS_REGION and the credentials in use"
        ) from exc
    cluster = clusters[0]
    groups = {}
    for member in cluster.get("DBClusterMembers", []):
        identifier = member["DBInstanceIdentifier"]
        instance = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        groups[identifier] = instance["DBParameterGroups"][0]["DBParameterGroupName"]
    return ClusterFacts(
        cluster_identifier=cluster_identifier,
        engine_version=cluster["EngineVersion"],
        cluster_resource_id=cluster["DbClusterResourceId"],
        cluster_parameter_group=cluster["DBClusterParameterGroup"],
        instance_parameter_groups=groups,
    )


# --- reading the state -------------------------------------------------------------


def pull_state(tf: Terraform, terraform_dir: Path) -> tuple[dict[str, Any], str]:
    """The current state as a dict and as the exact text Terraform returned.

    Raises BadInput when the directory is not a Terraform directory with a state.
    """
    if not Path(terraform_dir).is_dir():
        raise BadInput(
            f"{terraform_dir} is not a directory: give the directory that holds the "
            "configuration managing the cluster"
        )
    if not any(Path(terraform_dir).glob("*.tf")):
        raise BadInput(
            f"{terraform_dir} holds no Terraform configuration (*.tf): give the directory "
            "where terraform plan runs for the cluster"
        )
    code, out, err = run_terraform(tf, "state pull")
    if code != 0:
        raise BadInput(
            f"terraform state pull failed in {terraform_dir}: {first_line_of_error(err)}"
        )
    if not out.strip():
        raise BadInput(
            f"no Terraform state in {terraform_dir}: give the directory whose terraform state "
            "pull shows the cluster (run terraform init there first for a remote backend)"
        )
    try:
        return json.loads(out), out
    except json.JSONDecodeError as exc:
        raise state_not_json(terraform_dir, exc) from None


@dataclass(frozen=True)
class StateAddress:
    """One resource instance in the state: its address and its attributes."""

    address: str
    resource_type: str
    module: str
    attributes: dict[str, Any] = field(repr=False)

    @property
    def identifier(self) -> str:
        return self.attributes.get("identifier") or self.attributes.get("id") or ""


def state_addresses(state: dict[str, Any]) -> list[StateAddress]:
    """Every managed resource instance, addressed as `terraform state list` prints it."""
    found = []
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        module = resource.get("module", "")
        base = f"{resource['type']}.{resource['name']}"
        if module:
            base = f"{module}.{base}"
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            address = base + ("" if key is None else f"[{json.dumps(key)}]")
            found.append(StateAddress(address, resource["type"], module, instance["attributes"]))
    return found


@dataclass(frozen=True)
class ClusterAddresses:
    """The cluster's address and its instances' addresses with their identifiers."""

    cluster: StateAddress
    instances: tuple[StateAddress, ...]

    @property
    def all(self) -> list[str]:
        return [self.cluster.address, *(i.address for i in self.instances)]


def find_cluster_addresses(
    state: dict[str, Any], cluster_identifier: str
) -> ClusterAddresses | None:
    """The state's `aws_rds_cluster` for the cluster and the instances that name it.

    Returns None when no cluster in the state has that identifier. Raises
    BadInput when more than one does: removing either would be a guess.
    """
    addresses = state_addresses(state)
    clusters = [
        a
        for a in addresses
        if a.resource_type == CLUSTER_TYPE
        and a.attributes.get("cluster_identifier") == cluster_identifier
    ]
    if len(clusters) > 1:
        names = ", ".join(c.address for c in clusters)
        raise BadInput(f"{len(clusters)} state entries claim cluster {cluster_identifier}: {names}")
    if not clusters:
        return None
    instances = tuple(
        a
        for a in addresses
        if a.resource_type == INSTANCE_TYPE
        and a.attributes.get("cluster_identifier") == cluster_identifier
    )
    return ClusterAddresses(clusters[0], instances)


def is_state_current(addresses: ClusterAddresses, facts: ClusterFacts) -> bool:
    """True when the state already describes the cluster AWS has now (e.g. after import).

    After a switchover the production cluster is a different resource (new
    resource id) on a new engine version; either difference makes the entry stale.
    """
    attributes = addresses.cluster.attributes
    return (
        attributes.get("cluster_resource_id") == facts.cluster_resource_id
        and attributes.get("engine_version") == facts.engine_version
    )


# --- the local state file ----------------------------------------------------------


def local_state_file(terraform_dir: Path, state: dict[str, Any]) -> Path | None:
    """The local file holding the pulled state (default or workspace), if there is one."""
    directory = Path(terraform_dir)
    candidates = [directory / "terraform.tfstate"]
    candidates += sorted(directory.glob("terraform.tfstate.d/*/terraform.tfstate"))
    for path in candidates:
        try:
            local = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (local.get("lineage"), local.get("serial")) == (
            state.get("lineage"),
            state.get("serial"),
        ):
            return path
    return None


# --- backup and removal ------------------------------------------------------------


def backup_state(
    terraform_dir: Path,
    state: dict[str, Any],
    state_text: str,
    backup_dir: Path,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> StepResult:
    """Keep a timestamped copy of the state before anything changes it.

    A local state file (default or workspace) is copied byte for byte next to
    itself (`terraform.tfstate.backup-YYYYmmddTHHMMSSZ`); for a remote backend the
    pulled text goes to `backup_dir`. Returns `backed-up` with the path.
    """
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    local = local_state_file(terraform_dir, state)
    if local is not None:
        target = local.with_name(f"terraform.tfstate.backup-{stamp}")
        shutil.copy2(local, target)
    else:
        backup_dir.mkdir(parents=True, exist_ok=True)
        target = backup_dir / f"terraform.tfstate.backup-{stamp}"
        target.write_text(state_text)
    return StepResult("backed-up", f"state copied to {target}", {"backup": str(target)})


def remove_addresses(tf: Terraform, addresses: list[str]) -> StepResult:
    """`terraform state rm` the addresses, all in one command (one state write).

    Raises InvalidState when Terraform refuses; the state is then unchanged.
    """
    code, out, err = run_terraform(tf, "state rm", *addresses)
    if code != 0:
        raise InvalidState(f"terraform state rm failed: {first_line_of_error(err)}")
    return StepResult(
        "removed",
        f"removed {len(addresses)} address(es) from the state: {', '.join(addresses)}",
        {"addresses": addresses},
    )
