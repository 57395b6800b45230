"""What a fleet needs before its first upgrade starts: its clusters and its two limits.

- Discovery by tag reads DescribeDBClusters only (Aurora PostgreSQL clusters
  carrying the tag), so a fleet changes nothing before its children start.
- "At most K clusters at once" is a Prefect global concurrency limit each
  child holds a slot of while it runs; "at most R AWS calls per second" is a
  global concurrency limit in rate-limit mode (slots decay at R per second)
  that every AWS attempt takes a slot of (tasks/aws_budget.py). Both are
  created when missing and set to this fleet's values when they differ.
"""

from __future__ import annotations

from typing import Any

from aurora_bg.results import StepResult
from tasks.aws import call, client

PARALLEL_LIMIT = "aurora-bg-fleet-upgrades"
RATE_LIMIT = "aurora-bg-aws-api"
# One slot that refills R times a second: in any second at most R + 1 calls start
# (the refilled ones and the one slot full at its beginning), never a burst of 2R.
RATE_LIMIT_SLOTS = 1


def clusters_tagged(key: str, value: str, rds: Any = None) -> list[str]:
    """Identifiers of the Aurora PostgreSQL clusters tagged key=value, sorted."""
    rds = rds or client("rds")
    found = []
    marker = None
    while True:
        page = call(
            f"listing clusters tagged {key}={value}",
            rds.describe_db_clusters,
            **({"Marker": marker} if marker else {}),
        )
        for cluster in page["DBClusters"]:
            tags = {t["Key"]: t["Value"] for t in cluster.get("TagList") or []}
            if tags.get(key) == value and cluster.get("Engine") == "aurora-postgresql":
                found.append(cluster["DBClusterIdentifier"])
        marker = page.get("Marker")
        if not marker:
            return sorted(found)


def set_global_limit(name: str, limit: int, slot_decay_per_second: float = 0.0) -> str:
    """Create the global concurrency limit `name`, or set its values; returns what it did."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as prefect:
        try:
            current = prefect.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            prefect.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=name, limit=limit, slot_decay_per_second=slot_decay_per_second
                )
            )
            return f"created {name} ({_describe(limit, slot_decay_per_second)})"
        if (
            current.limit == limit
            and (current.slot_decay_per_second or 0.0) == slot_decay_per_second
            and current.active
        ):
            return f"{name} already {_describe(limit, slot_decay_per_second)}"
        prefect.update_global_concurrency_limit(
            name,
            GlobalConcurrencyLimitUpdate(
                limit=limit, slot_decay_per_second=slot_decay_per_second, active=True
            ),
        )
        return f"set {name} to {_describe(limit, slot_decay_per_second)}"


def _describe(limit: int, decay: float) -> str:
    return f"{decay:g} per second" if decay else f"{limit} at once"


def prepare_limits(max_parallel: int, calls_per_second: float | None) -> StepResult:
    """Both limits as this fleet wants them; facts: their names (rate: None when unset)."""
    done = [set_global_limit(PARALLEL_LIMIT, max_parallel)]
    rate = None
    if calls_per_second:
        done.append(set_global_limit(RATE_LIMIT, RATE_LIMIT_SLOTS, calls_per_second))
        rate = RATE_LIMIT
    return StepResult(
        "prepared",
        "; ".join(done) + ".",
        {"parallel": PARALLEL_LIMIT, "rate": rate},
    )
