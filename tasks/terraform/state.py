"""Terraform state: find the cluster's addresses, guard the CLI version, back up, remove.

Everything goes through the team's own `terraform` CLI (python-terraform runs
it), so local and remote backends behave the same: the state is read with
`terraform state pull`, which needs no provider, unlike `show -json`.
Addresses are found by the `cluster_identifier` attribute, never assumed from
resource names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from aurora_bg.errors import BadInput, InvalidState, PreconditionFailed
from aurora_bg.results import StepResult

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


def run_terraform(tf: Terraform, command: str, *args: str, **options: Any) -> tuple[int, str, str]:
    """Run one terraform command without colours; return (code, stdout, stderr).

    Raises BadInput when the binary cannot be started.
    """
    options.setdefault("no_color", IsFlagged)
    try:
        code, out, err = tf.cmd(command, *args, **options)
    except OSError as exc:
        raise BadInput(
            f"cannot run terraform at {tf.terraform_bin_path}: {exc.strerror} "
            "(give the path of the terraform executable that wrote the state)"
        ) from exc
    return code, out or "", err or ""


def terraform_for(terraform_dir: Path, terraform_bin: str) -> Terraform:
    """python-terraform for the directory; a relative binary path is taken from the cwd."""
    if os.sep in terraform_bin:
        terraform_bin = str(Path(terraform_bin).resolve())
    try:  # python-terraform reads the local state file as it starts
        return Terraform(working_dir=str(terraform_dir), terraform_bin_path=terraform_bin)
    except json.JSONDecodeError as exc:
        raise state_not_json(terraform_dir, exc) from None


def state_not_json(terraform_dir: Path, exc: json.JSONDecodeError) -> BadInput:
    return BadInput(
        f"the Terraform state in {terraform_dir} is not JSON (line {exc.lineno}): "
        "restore it from terraform.tfstate.backup or the backend's history"
    )


def first_line_of_error(stderr: str) -> str:
    """The `Error: …` headline of Terraform's diagnostics, else its first line."""
    for line in stderr.splitlines():
        text = line.strip(" │╷╵")
        if text.startswith("Error:"):
            return text
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


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


# --- version guard -----------------------------------------------------------------


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


def read_state_version(tf: Terraform, terraform_dir: Path, state: dict[str, Any]) -> str:
    """The Terraform version that last wrote the state.

    `state pull` stamps its output with the running CLI's version, so this
    reads the local state file, or for remote backends `terraform show -json`
    (which needs the providers installed). Raises PreconditionFailed when neither
    can tell.
    """
    local = local_state_file(terraform_dir, state)
    if local is not None:
        return json.loads(local.read_text()).get("terraform_version", "")
    code, out, err = run_terraform(tf, "show", json=IsFlagged)
    version = json.loads(out).get("terraform_version") if code == 0 and out.strip() else None
    if not version:
        raise PreconditionFailed(
            "cannot tell which Terraform version wrote the remote state "
            f"({first_line_of_error(err)}); run terraform init in {terraform_dir} and retry"
        )
    return version


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.9.3` or `1.10.0-beta1` -> (1, 9, 3) / (1, 10, 0). Raises BadInput otherwise."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text or "")
    if not match:
        raise BadInput(f"not a Terraform version: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def read_cli_version(tf: Terraform) -> str:
    """`terraform version -json`'s version. Raises BadInput when the CLI cannot run."""
    code, out, err = run_terraform(tf, "version", json=IsFlagged)
    if code != 0:
        raise BadInput(f"terraform version failed: {first_line_of_error(err)}")
    return json.loads(out)["terraform_version"]


def check_cli_version(cli_version: str, state_version: str, allow_newer_cli: bool) -> StepResult:
    """Refuse a CLI that would rewrite the state's version, unless explicitly allowed.

    A newer CLI rewrites `terraform_version` and the team's older CLI refuses
    the state afterwards; an older CLI cannot read the state at all. Raises
    PreconditionFailed in both cases (a newer CLI passes with `allow_newer_cli`).
    """
    cli, written = parse_version(cli_version), parse_version(state_version)
    facts = {"cli_version": cli_version, "state_version": state_version}
    if cli == written:
        return StepResult("checked", f"terraform {cli_version} wrote this state", facts)
    if cli < written:
        raise PreconditionFailed(
            f"terraform {cli_version} is older than the state's {state_version}; "
            f"use terraform {state_version}"
        )
    if not allow_newer_cli:
        raise PreconditionFailed(
            f"terraform {cli_version} is newer than the state's {state_version} and would "
            f"upgrade it for everyone; use terraform {state_version} or allow the newer CLI"
        )
    return StepResult(
        "allowed",
        f"terraform {cli_version} is newer than the state's {state_version}; allowed on request",
        facts,
    )


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
