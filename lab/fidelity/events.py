"""RDS events of Blue/Green deployments, read with DescribeEvents.

AWS facts reproduced here (AWS-FACTS S10, "Event catalogue, blue/green events",
docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_Events.Messages.html;
S13 for DescribeEvents): why a creation failed or a switchover was cancelled is in
RDS events, whose source is the deployment (SourceType `blue-green-deployment`,
SourceIdentifier its identifier) or, for the cluster-level switchover events, the
blue cluster (`db-cluster`):

- RDS-EVENT-0244 creation: "Blue/green deployment tasks completed. …"
- RDS-EVENT-0245 failure: "Creation of blue/green deployment failed because <reason>."
- RDS-EVENT-0246 deletion: "Blue/green deployment deleted."
- RDS-EVENT-0247/0248/0249: switchover started / completed / canceled.
- RDS-EVENT-0259/0260/0261: the same for the DB cluster, naming blue and green.

DescribeEvents answers the past hour unless StartTime, EndTime or Duration (minutes)
say otherwise, and filters by EventCategories. An Event carries no event id: a reader
recognises one by its message. moto 5.2.5 answers DescribeEvents but records none of
these, and ignores the time window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lab.fidelity.patching import patch
from lab.fidelity.world import world

DEPLOYMENT = "blue-green-deployment"
CLUSTER = "db-cluster"
DEFAULT_WINDOW = timedelta(hours=1)

TASKS_COMPLETED = (
    "Blue/green deployment tasks completed. You can make more modifications to the green "
    "environment databases or switch over the deployment."
)


@dataclass
class LabEvent:
    """One RDS event, with the attributes moto's serializer reads from its own events."""

    source_identifier: str
    source_type: str
    message: str
    event_categories: list[str]
    source_arn: str
    date: datetime = field(default_factory=lambda: datetime.now(UTC))


def record(source_type: str, identifier: str, arn: str, category: str, message: str) -> None:
    """Add one event to the region's event list."""
    world().rds.events.append(LabEvent(identifier, source_type, message, [category], arn))


def deployment_event(deployment: Any, category: str, message: str) -> None:
    lab = world()
    identifier = deployment.blue_green_deployment_identifier
    # moto's deployment model has no ARN; AWS's resource type for it is `deployment`
    arn = f"arn:aws:rds:{lab.region}:{lab.account}:deployment:{identifier}"
    record(DEPLOYMENT, identifier, arn, category, message)


def cluster_event(cluster_id: str, cluster_arn: str, category: str, message: str) -> None:
    record(CLUSTER, cluster_id, cluster_arn, category, message)


def creation_completed(deployment: Any) -> None:  # RDS-EVENT-0244
    deployment_event(deployment, "creation", TASKS_COMPLETED)


def creation_failed(deployment: Any, reason: str) -> None:  # RDS-EVENT-0245
    deployment_event(
        deployment, "failure", f"Creation of blue/green deployment failed because {reason}."
    )


def deleted(deployment: Any) -> None:  # RDS-EVENT-0246
    deployment_event(deployment, "deletion", "Blue/green deployment deleted.")


def switchover_started(deployment: Any, blue: tuple[str, str], green: str) -> None:
    """RDS-EVENT-0247 for the deployment and 0259 for the cluster; `blue` is (id, arn)."""
    deployment_event(deployment, "notification", f"Switchover from {blue[0]} to {green} started.")
    cluster_event(
        *blue, "notification", f"Switchover from DB cluster {blue[0]} to {green} started."
    )


def switchover_completed(deployment: Any, blue: tuple[str, str], green: str, old: str) -> None:
    """RDS-EVENT-0248 and 0260: blue renamed `old`, green renamed blue's name."""
    deployment_event(deployment, "notification", "Switchover completed on blue/green deployment.")
    cluster_event(
        *blue,
        "notification",
        f"Switchover from DB cluster {blue[0]} to {green} completed. "
        f"Renamed {blue[0]} to {old} and {green} to {blue[0]}.",
    )


def switchover_canceled(deployment: Any, blue: tuple[str, str], green: str, reason: str) -> None:
    """RDS-EVENT-0249 and 0261, with the reason in the cluster's event."""
    deployment_event(deployment, "failure", "Switchover canceled on blue/green deployment.")
    cluster_event(
        *blue,
        "failure",
        f"Switchover from DB cluster {blue[0]} to {green} was canceled due to {reason}.",
    )


def _when(value: Any) -> datetime | None:
    """A request's or an event's time as an aware datetime (moto's own are naive UTC)."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def in_window(events: list[Any], kwargs: dict[str, Any], now: datetime) -> list[Any]:
    """The events DescribeEvents' StartTime, EndTime, Duration and EventCategories keep."""
    end = _when(kwargs.get("end_time")) or now
    start = _when(kwargs.get("start_time"))
    if start is None:
        duration = kwargs.get("duration")
        start = end - (timedelta(minutes=int(duration)) if duration else DEFAULT_WINDOW)
    categories = set(kwargs.get("event_categories") or [])

    def kept(event: Any) -> bool:
        when = _when(event.date)
        return (
            when is not None
            and start <= when <= end
            and (not categories or bool(categories & set(event.event_categories)))
        )

    return [e for e in events if kept(e)]


def install() -> None:
    """Make DescribeEvents keep to its time window and categories, as AWS does."""
    from moto.rds.models import RDSBackend

    original = RDSBackend.describe_events

    def describe_events(
        self: RDSBackend,
        source_identifier: str | None = None,
        source_type: str | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        found = original(self, source_identifier=source_identifier, source_type=source_type)
        return in_window(list(found), kwargs, datetime.now(UTC))

    patch(RDSBackend, "describe_events", describe_events)
