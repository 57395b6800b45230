"""Cluster parameter groups: a static parameter waits for the writer's reboot.

AWS facts reproduced here (AWS-FACTS S2, "Creating a B/G deployment", section
"Preparing an Aurora PostgreSQL DB cluster", …/AuroraUserGuide/blue-green-deployments-creating.html;
S12, "Setting up logical replication for Aurora PostgreSQL",
…/AuroraUserGuide/AuroraPostgreSQL.Replication.Logical.Configure.html; S13, the RDS API
reference of ModifyDBClusterParameterGroup):

- A static parameter changed in a DB cluster parameter group reaches an instance only
  when it reboots. Until then the cluster's `DBClusterMembers[].DBClusterParameterGroupStatus`
  is `pending-reboot` for it; RebootDBInstance applies the group and the status is
  `in-sync` again. Moving a cluster to another parameter group (ModifyDBCluster
  DBClusterParameterGroupName) leaves its instances `pending-reboot` too.
- ApplyMethod `immediate` is for dynamic parameters only: a static one with it is
  refused (InvalidParameterCombination). A dynamic parameter with `immediate` applies
  at once; with `pending-reboot`, at the next reboot.
- Values out of a parameter's range are refused (InvalidParameterValue).

moto 5.2.5 stores the values and reports every member `in-sync` whatever happens.
The lab applies the parameters that decide whether a Blue/Green deployment can
replicate to the real PostgreSQL server playing the cluster (all instances of a
cluster share it, as Aurora instances share storage; the writer's reboot restarts
it): `max_replication_slots`, `max_wal_senders`, `max_logical_replication_workers`,
`max_worker_processes` and `rds.logical_replication` (static: ALTER SYSTEM and a
restart; the last is only shown by SHOW, the lab's servers always run
`wal_level = logical`), and `synchronous_commit` (dynamic: ALTER SYSTEM and a
reload). Other parameters are recorded, as moto does.
"""

from __future__ import annotations

import logging
from typing import Any

from lab.fidelity.patching import patch
from lab.fidelity.world import world

log = logging.getLogger("lab.fidelity.parameter_groups")

IN_SYNC = "in-sync"
PENDING_REBOOT = "pending-reboot"
PENDING = "_lab_parameters_pending_reboot"  # set on a moto instance awaiting its reboot

_COUNT_RANGE = (0, 262143)  # PostgreSQL's bounds for these counts
# Parameters the lab applies to the PostgreSQL server playing the cluster.
STATIC_APPLIED = {
    "max_replication_slots": _COUNT_RANGE,
    "max_wal_senders": _COUNT_RANGE,
    "max_logical_replication_workers": _COUNT_RANGE,
    "max_worker_processes": _COUNT_RANGE,
    "rds.logical_replication": (0, 1),
}
DYNAMIC_APPLIED = {"synchronous_commit": ("on", "off", "local", "remote_write", "remote_apply")}
# Static parameters the lab records only; every other name is taken as dynamic.
STATIC_RECORDED = frozenset(
    {
        "max_connections",
        "shared_buffers",
        "shared_preload_libraries",
        "max_locks_per_transaction",
        "max_prepared_transactions",
        "track_commit_timestamp",
    }
)


def is_static(name: str) -> bool:
    return name in STATIC_APPLIED or name in STATIC_RECORDED


def member_status(instance: Any) -> str:
    """The instance's DBClusterParameterGroupStatus."""
    return PENDING_REBOOT if instance.__dict__.get(PENDING) else IN_SYNC


def writer_status(cluster: Any) -> str:
    """The DBClusterParameterGroupStatus of the cluster's writer (in-sync without one)."""
    writer = cluster.writer
    return member_status(writer) if writer is not None else IN_SYNC


def server_settings(parameters: dict[str, dict[str, Any]]) -> dict[str, str]:
    """PostgreSQL settings for the applied parameters among a group's `parameters`."""
    settings = {}
    for name, entry in parameters.items():
        value = str(entry.get("ParameterValue", ""))
        if name == "rds.logical_replication":
            settings[name] = "on" if value == "1" else "off"
        elif name in STATIC_APPLIED or name in DYNAMIC_APPLIED:
            settings[name] = value
    return settings


def _invalid(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def check_change(name: str, value: str, apply_method: str) -> None:
    """Refuse what AWS refuses in a ModifyDBClusterParameterGroup entry."""
    if apply_method not in ("immediate", PENDING_REBOOT):
        raise _invalid("InvalidParameterValue", f"Invalid apply method: {apply_method}")
    if apply_method == "immediate" and is_static(name):
        raise _invalid(
            "InvalidParameterCombination",
            "cannot use immediate apply method for static parameter",
        )
    if name in STATIC_APPLIED:
        low, high = STATIC_APPLIED[name]
        if not value.isdigit() or not low <= int(value) <= high:
            raise _invalid(
                "InvalidParameterValue",
                f"Value: {value} is outside of range: {low}-{high} for parameter: {name}",
            )
    if name in DYNAMIC_APPLIED and value not in DYNAMIC_APPLIED[name]:
        raise _invalid(
            "InvalidParameterValue",
            f"Value: {value} is not one of {', '.join(DYNAMIC_APPLIED[name])} "
            f"for parameter: {name}",
        )


def _clusters_using(backend: Any, group: str) -> list[Any]:
    return [c for c in backend.clusters.values() if c.parameter_group == group]


def _mark_pending(cluster: Any) -> None:
    for member in cluster.members:
        setattr(member, PENDING, True)


def _apply_now(clusters: list[Any], settings: dict[str, str]) -> None:
    """Apply dynamic settings to the servers playing `clusters` (each server once)."""
    from lab.server_settings import apply_dynamic

    lab = world()
    for name in sorted({lab.server_name_of_cluster(c) for c in clusters}):
        apply_dynamic(lab.servers[name], settings)


def reboot_writer(cluster: Any) -> None:
    """Apply the cluster's parameter group to its server by restarting it, as the
    writer's reboot does, and record the server's new postmaster."""
    from lab.server_settings import apply_with_restart

    lab = world()
    group = lab.rds.db_cluster_parameter_groups.get(cluster.parameter_group)
    settings = server_settings(group.parameters) if group is not None else {}
    name = lab.server_name_of_cluster(cluster)
    pid = apply_with_restart(lab.servers[name], settings)
    lab.record_pid(name, pid)


def install() -> None:
    from moto.rds.models import DBCluster, RDSBackend

    original_modify_group = RDSBackend.modify_db_cluster_parameter_group
    original_modify_cluster = RDSBackend.modify_db_cluster  # passwords' patch, when installed
    original_reboot = RDSBackend.reboot_db_instance

    def modify_db_cluster_parameter_group(
        self: RDSBackend,
        db_cluster_parameter_group_name: str,
        db_cluster_parameter_group_parameters: Any,
    ) -> Any:
        changes = list(db_cluster_parameter_group_parameters)
        for change in changes:
            check_change(
                str(change.get("ParameterName")),
                str(change.get("ParameterValue", "")),
                str(change.get("ApplyMethod", PENDING_REBOOT)),
            )
        group = original_modify_group(self, db_cluster_parameter_group_name, changes)
        clusters = _clusters_using(self, db_cluster_parameter_group_name)
        immediate = {c["ParameterName"]: c for c in changes if c.get("ApplyMethod") == "immediate"}
        if any(c.get("ApplyMethod", PENDING_REBOOT) == PENDING_REBOOT for c in changes):
            for cluster in clusters:
                _mark_pending(cluster)
        _apply_now(clusters, server_settings(immediate))
        return group

    def modify_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> Any:
        identifier = str(kwargs.get("db_cluster_identifier") or "")
        cluster = self.clusters.get(identifier)
        new_group = kwargs.get("db_cluster_parameter_group_name")
        moved = cluster is not None and new_group and new_group != cluster.parameter_group
        result = original_modify_cluster(self, kwargs)
        if moved:
            _mark_pending(result)
        return result

    def reboot_db_instance(self: RDSBackend, db_instance_identifier: str) -> Any:
        instance = original_reboot(self, db_instance_identifier)
        cluster = self.clusters.get(str(getattr(instance, "db_cluster_identifier", "") or ""))
        if cluster is not None:
            if getattr(instance, "is_cluster_writer", False):
                reboot_writer(cluster)
            instance.__dict__.pop(PENDING, None)
        return instance

    def db_cluster_members(self: DBCluster) -> list[dict[str, Any]]:
        return [
            {
                "DBInstanceIdentifier": member.db_instance_identifier,
                "IsClusterWriter": member.is_cluster_writer,
                "DBClusterParameterGroupStatus": member_status(member),
                "PromotionTier": member.promotion_tier,
            }
            for member in self.members
        ]

    patch(RDSBackend, "modify_db_cluster_parameter_group", modify_db_cluster_parameter_group)
    patch(RDSBackend, "modify_db_cluster", modify_db_cluster)
    patch(RDSBackend, "reboot_db_instance", reboot_db_instance)
    patch(DBCluster, "db_cluster_members", property(db_cluster_members))
