"""Blue's parameters, as AWS documents a Blue/Green deployment needs them (AWS-FACTS.md).

- `rds.logical_replication = 1` in blue's cluster parameter group, AND the writer
  `in-sync` with that group: a static change waits for a reboot (`pending-reboot`),
  and AWS fails a creation whose writer does not run with it yet (S2, S12).
- Replication capacity for D databases (every database the deployment replicates)
  and the S slots already in use: `max_replication_slots >= S + D`,
  `max_wal_senders >= D` plus the senders in use, `max_logical_replication_workers
  >= D` and `max_worker_processes >= D + 1` (one apply worker per database, and the
  launcher). Too small ends the creation in INVALID_CONFIGURATION tens of minutes
  later (S1, S2, S12). The values are the ones blue's server runs with.
- `synchronous_commit = on` (S2).

The group's values are read once, with DescribeDBClusterParameters; the live
values through SQL (`tasks.validation.prerequisites.read_capacity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tasks.aws import classify
from tasks.preflight.model import PreflightCheck
from tasks.validation.prerequisites import Capacity

LOGICAL_REPLICATION: Final = "rds.logical_replication"
UNLOGGED_TABLES_REPLICATED: Final = "rds.logically_replicate_unlogged_tables"
READ_FROM_THE_GROUP: Final = (LOGICAL_REPLICATION, UNLOGGED_TABLES_REPLICATED)
IN_SYNC: Final = "in-sync"


def read_group_values(group: str, rds: Any) -> dict[str, str]:
    """The values `group` sets for the parameters preflight reads (absent: not set)."""
    pages = rds.get_paginator("describe_db_cluster_parameters").paginate(
        DBClusterParameterGroupName=group
    )
    values: dict[str, str] = {}
    try:
        for page in pages:
            for parameter in page["Parameters"]:
                name = parameter["ParameterName"]
                if name in READ_FROM_THE_GROUP and "ParameterValue" in parameter:
                    values[name] = str(parameter["ParameterValue"])
    except Exception as error:
        raise classify(error, f"reading the parameters of {group}", "rds") from None
    return values


def is_on(values: dict[str, str], name: str) -> bool:
    return values.get(name) == "1"


def logical_replication_check(group: str, values: dict[str, str]) -> PreflightCheck:
    return PreflightCheck(
        "logical replication on",
        is_on(values, LOGICAL_REPLICATION),
        f"{LOGICAL_REPLICATION} is {values.get(LOGICAL_REPLICATION, 'not set')} in {group}",
        f"set {LOGICAL_REPLICATION} = 1 in {group} and reboot the writer",
    )


def writer_in_sync_check(cluster: dict[str, Any]) -> PreflightCheck:
    """The writer runs with its cluster parameter group (no static change awaits a reboot)."""
    group = cluster.get("DBClusterParameterGroup", "")
    writers = [m for m in cluster.get("DBClusterMembers", []) if m.get("IsClusterWriter")]
    if not writers:
        return PreflightCheck(
            "writer in sync with its parameter group",
            False,
            f"{cluster['DBClusterIdentifier']} has no writer instance",
            "add a writer instance to the cluster, then rerun",
        )
    writer = writers[0]
    status = writer.get("DBClusterParameterGroupStatus", "unknown")
    return PreflightCheck(
        "writer in sync with its parameter group",
        status == IN_SYNC,
        f"writer {writer['DBInstanceIdentifier']} is {status} with {group}",
        f"reboot the writer {writer['DBInstanceIdentifier']} so that it applies {group}'s "
        "values (a static parameter changed since it started), then rerun",
    )


@dataclass(frozen=True)
class Need:
    """One capacity rule: `setting` must reach `needed` for `because`."""

    setting: str
    needed: int
    has: int
    because: str  # the subject of the sentence: "4 databases and 1 slot in use"
    note: str = ""

    def sentence(self) -> str:
        verb = "needs" if self.because == "1 database" else "need"
        return (
            f"{self.because} {verb} {self.setting} >= {self.needed}{self.note}; blue has {self.has}"
        )


def capacity_needs(capacity: Capacity, databases: int) -> list[Need]:
    """The capacity formula for `databases` databases, with blue's live values."""
    d = _plural(databases, "database")
    slots = capacity.slots_in_use
    senders = capacity.senders_in_use
    return [
        Need(
            "max_replication_slots",
            slots + databases,
            capacity.max_replication_slots,
            f"{d} and {_plural(slots, 'slot')} in use" if slots else d,
        ),
        Need(
            "max_wal_senders",
            databases + senders,
            capacity.max_wal_senders,
            f"{d} and {_plural(senders, 'sender')} in use" if senders else d,
        ),
        Need(
            "max_logical_replication_workers",
            databases,
            capacity.max_logical_replication_workers,
            d,
        ),
        Need(
            "max_worker_processes",
            databases + 1,
            capacity.max_worker_processes,
            d,
            " (an apply worker per database, and the launcher)",
        ),
    ]


def capacity_checks(capacity: Capacity, databases: int, group: str) -> list[PreflightCheck]:
    """One row per capacity rule, its formula and numbers in the detail:
    "4 databases need max_logical_replication_workers >= 4; blue has 2"."""
    return [
        PreflightCheck(
            need.setting,
            need.has >= need.needed,
            need.sentence(),
            f"raise {need.setting} to at least {need.needed} in {group} and reboot the writer "
            "(a static parameter), then rerun",
        )
        for need in capacity_needs(capacity, databases)
    ]


def synchronous_commit_check(capacity: Capacity, group: str) -> PreflightCheck:
    return PreflightCheck(
        "synchronous_commit on",
        capacity.synchronous_commit == "on",
        f"blue runs with synchronous_commit = {capacity.synchronous_commit}",
        f"set synchronous_commit = on in {group} (and in any role or database setting that "
        "turns it off), then rerun",
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
