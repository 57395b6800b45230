"""Why a creation AWS accepted ends INVALID_CONFIGURATION, tens of minutes later.

AWS facts reproduced here (AWS-FACTS S1, "Aurora B/G limitations and considerations",
…/AuroraUserGuide/blue-green-deployments-considerations.html; S2, "Creating a B/G
deployment", section "Preparing an Aurora PostgreSQL DB cluster",
…/AuroraUserGuide/blue-green-deployments-creating.html; S12, "Setting up logical
replication for Aurora PostgreSQL",
…/AuroraUserGuide/AuroraPostgreSQL.Replication.Logical.Configure.html; S10 for the
event that says why):

- The deployment replicates every database with one logical replication slot and at
  least one apply worker each. With D databases and S slots already in use on blue,
  blue needs `max_replication_slots >= S + D` and `max_wal_senders >= D` plus the
  senders already in use; the subscriber needs `max_logical_replication_workers >= D`
  and `max_worker_processes >= D + 1` (the apply workers and their launcher).
- `rds.logical_replication` must be on, and `synchronous_commit` must be `on`.
- When one of these does not hold, the creation is accepted and provisions for a
  while, then ends INVALID_CONFIGURATION, with the reason in RDS-EVENT-0245
  ("Creation of blue/green deployment failed because <reason>.").

The lab reads blue's live values with SQL, as a preflight would, before it creates
any replication object, and reports every broken rule at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.postgres import PgServer, connect_admin
from lab.replication import replicated_databases

LIVE_VALUES = """
SELECT current_setting('max_replication_slots')::int,
       current_setting('max_wal_senders')::int,
       current_setting('max_logical_replication_workers')::int,
       current_setting('max_worker_processes')::int,
       current_setting('synchronous_commit'),
       coalesce(current_setting('rds.logical_replication', true), 'off'),
       (SELECT count(*) FROM pg_replication_slots)::int,
       (SELECT count(*) FROM pg_stat_replication)::int
"""


@dataclass(frozen=True)
class LiveValues:
    """Blue's settings and replication in use, as SQL reads them."""

    max_replication_slots: int
    max_wal_senders: int
    max_logical_replication_workers: int
    max_worker_processes: int
    synchronous_commit: str
    logical_replication: str
    slots_in_use: int
    senders_in_use: int


def read_live_values(blue: PgServer) -> LiveValues:
    with connect_admin(blue) as conn:
        row = conn.execute(LIVE_VALUES).fetchone()
    if row is None:
        raise RuntimeError("reading blue's settings returned no row")
    return LiveValues(*row)


def problems(values: LiveValues, databases: int) -> list[str]:
    """Every rule `values` break for a deployment of `databases` databases, in words."""
    found = []
    if values.logical_replication not in ("on", "1"):
        found.append("rds.logical_replication is off; it must be 1")
    slots_needed = values.slots_in_use + databases
    if values.max_replication_slots < slots_needed:
        found.append(
            f"max_replication_slots is {values.max_replication_slots}, less than "
            f"{slots_needed} ({values.slots_in_use} slots in use + {databases} databases)"
        )
    senders_needed = values.senders_in_use + databases
    if values.max_wal_senders < senders_needed:
        found.append(
            f"max_wal_senders is {values.max_wal_senders}, less than {senders_needed} "
            f"({values.senders_in_use} senders in use + {databases} databases)"
        )
    if values.max_logical_replication_workers < databases:
        found.append(
            f"max_logical_replication_workers is {values.max_logical_replication_workers}, "
            f"less than {databases} (one apply worker per database)"
        )
    if values.max_worker_processes < databases + 1:
        found.append(
            f"max_worker_processes is {values.max_worker_processes}, less than "
            f"{databases + 1} ({databases} apply workers + the launcher)"
        )
    if values.synchronous_commit != "on":
        found.append(f"synchronous_commit is {values.synchronous_commit}; it must be on")
    return found


def reason(blue: PgServer) -> str | None:
    """Why a deployment of `blue` would end INVALID_CONFIGURATION, or None when it can
    replicate: the words that follow "failed because" in RDS-EVENT-0245."""
    found = problems(read_live_values(blue), len(replicated_databases(blue)))
    if not found:
        return None
    return "the source DB cluster has incompatible parameters: " + "; ".join(found)
