"""Why AWS ended a creation or a switchover: the RDS events of the deployment and its clusters.

A Blue/Green deployment that AWS accepted can still fail later: a creation ends
INVALID_CONFIGURATION tens of minutes after the call, a switchover ends
SWITCHOVER_FAILED. `StatusDetails` may say little; AWS writes the reason in
RDS events (Aurora User Guide, "Amazon RDS event categories and event messages
for Aurora", USER_Events.Messages.html): RDS-EVENT-0245 "Creation of blue/green
deployment failed because <reason>", 0249 and 0261 a switchover canceled "due
to <reason>", with the deployment (SourceType `blue-green-deployment`) or the
cluster (`db-cluster`) as their source. DescribeEvents answers the last hour
unless given a StartTime.

`explain_failure` reads them with DescribeEvents, paginated, from the run's start
(or from the deployment's creation when that is earlier: a rerun resuming it),
and returns them with the failures among them picked out. An event carries no
event id, so failures are recognised by their category (`failure`). Reading the
events is read-only and never decides anything: the flow only quotes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aurora_bg.results import StepResult
from tasks.aws import classify, client
from tasks.rds_state import describe_deployment, identifier_from_arn

DEPLOYMENT_SOURCE = "blue-green-deployment"
CLUSTER_SOURCE = "db-cluster"
FAILURE_CATEGORY = "failure"
RETENTION = timedelta(days=14)  # RDS keeps events this long: an older StartTime finds nothing
QUOTED_WHEN_NO_FAILURE = 3  # the latest events quoted when none is a failure


@dataclass(frozen=True)
class RdsEvent:
    """One RDS event, as DescribeEvents returns it."""

    when: datetime
    source_type: str
    source: str
    categories: tuple[str, ...]
    message: str

    @property
    def is_failure(self) -> bool:
        return FAILURE_CATEGORY in self.categories

    def row(self) -> dict[str, str]:
        return {
            "time (UTC)": self.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "source": f"{self.source_type} {self.source}",
            "categories": ", ".join(self.categories),
            "message": self.message,
        }


def read_events(
    source_type: str, identifier: str, since: datetime, rds: Any = None
) -> list[RdsEvent]:
    """Every event of one source from `since` on, oldest first (DescribeEvents, paginated)."""
    rds = rds or client("rds")
    start = max(since, datetime.now(UTC) - RETENTION)
    found = []
    try:
        pages = rds.get_paginator("describe_events").paginate(
            SourceType=source_type, SourceIdentifier=identifier, StartTime=start
        )
        for page in pages:
            found += [_event(raw) for raw in page.get("Events", [])]
    except Exception as error:
        raise classify(error, f"reading the RDS events of {identifier}", "rds") from None
    # DescribeEvents filters by identifier itself; keep only what was asked for regardless
    kept = [e for e in found if e.source == identifier and e.when >= start]
    return sorted(kept, key=lambda e: e.when)


def explain_failure(
    deployment_id: str, cluster_id: str, since: datetime, rds: Any = None
) -> StepResult:
    """AWS's events for the deployment, blue's cluster and green's, from `since` (or the
    deployment's creation, when earlier).

    Returns a StepResult whose reason quotes the failure events (or, when none
    is a failure, the latest few), `facts["reasons"]` their messages and
    `facts["rows"]` every event for a table. Raises BusinessError or
    TransientError when the events cannot be read (a missing rds:DescribeEvents
    permission names itself).
    """
    rds = rds or client("rds")
    deployment = describe_deployment(deployment_id, rds) or {}
    created = deployment.get("CreateTime")
    start = min(since, created) if isinstance(created, datetime) else since
    sources = [(DEPLOYMENT_SOURCE, deployment_id), (CLUSTER_SOURCE, cluster_id)]
    green = identifier_from_arn(deployment.get("Target", ""))
    if green and green != cluster_id:
        sources.append((CLUSTER_SOURCE, green))
    events = sorted(
        (e for kind, source in sources for e in read_events(kind, source, start, rds)),
        key=lambda e: e.when,
    )
    quoted = [e for e in events if e.is_failure] or events[-QUOTED_WHEN_NO_FAILURE:]
    facts = {"reasons": [e.message for e in quoted], "rows": [e.row() for e in events]}
    if not events:
        return StepResult(
            "none",
            f"AWS recorded no event for {deployment_id} or {cluster_id} since "
            f"{start.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC.",
            facts,
        )
    return StepResult("read", "AWS's events: " + " | ".join(e.message for e in quoted), facts)


def _event(raw: dict[str, Any]) -> RdsEvent:
    when = raw.get("Date")
    if not isinstance(when, datetime):
        when = datetime.now(UTC)
    return RdsEvent(
        when=when if when.tzinfo else when.replace(tzinfo=UTC),
        source_type=str(raw.get("SourceType", "")),
        source=str(raw.get("SourceIdentifier", "")),
        categories=tuple(str(c) for c in raw.get("EventCategories", [])),
        message=" ".join(str(raw.get("Message", "")).split()),
    )
