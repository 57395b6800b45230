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
from tasks.rds_state import TAG_RETIRED_FROM, tags_of

PARALLEL_LIMIT = "aurora-bg-fleet-upgrades"
RATE_LIMIT = "aurora-bg-aws-api"
# One slot that refills R times a second: in any second at most R + 1 calls start
# (the refilled ones and the one slot full at its beginning), never a burst of 2R.
RATE_LIMIT_SLOTS = 1


def clusters_tagged(key: str, value: str, rds: Any = None) -> list[str]:
    """Identifiers of the Aurora PostgreSQL clusters tagged key=value, sorted.

    A Blue/Green deployment copies blue's tags to green, and an old blue keeps them after
    the switchover: neither is a cluster to upgrade. They are recognised by what AWS says
    of them (a deployment's target before its switchover, its source after, or our
    retired-from tag), never by their names.
    """
    rds = rds or client("rds")
    found = []
    for cluster in _all(rds, "describe_db_clusters", "DBClusters", "listing clusters"):
        tags = tags_of(cluster)
        if (
            tags.get(key) == value
            and cluster.get("Engine") == "aurora-postgresql"
            and TAG_RETIRED_FROM not in tags
        ):
            found.append(cluster)
    not_ours = _sides_of_deployments(rds)
    return sorted(c["DBClusterIdentifier"] for c in found if c["DBClusterArn"] not in not_ours)


def _sides_of_deployments(rds: Any) -> set[str]:
    """ARNs of every green (before switchover) and every old blue (after)."""
    arns = set()
    for deployment in _all(
        rds, "describe_blue_green_deployments", "BlueGreenDeployments", "listing deployments"
    ):
        switched = deployment.get("Status") == "SWITCHOVER_COMPLETED"
        arns.add(deployment.get("Source" if switched else "Target", ""))
    return arns


def _all(rds: Any, operation: str, field: str, doing: str) -> list[dict[str, Any]]:
    items, marker = [], None
    while True:
        page = call(doing, getattr(rds, operation), **({"Marker": marker} if marker else {}))
        items += page.get(field, [])
        marker = page.get("Marker")
        if not marker:
            return items


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
