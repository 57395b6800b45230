"""What the Blue/Green deployment itself says, as DescribeBlueGreenDeployments shows it.

- the deployment is AVAILABLE (AWS switches over nothing else);
- every green member is available and paired;
- replication is not degraded. AWS answers DDL (or a large object created or
  changed) on blue while the deployment exists by marking it "Replication
  degraded", shown in its `StatusDetails` while `Status` stays what it was,
  and refuses the switchover from then on; the only cure AWS documents is to
  delete the deployment and create a new one.
"""

from __future__ import annotations

from typing import Any

from tasks.blue_green import members
from tasks.rds_state import describe_cluster, describe_instance
from tasks.validation.model import BLOCKER, NEW_DEPLOYMENT_FIX, Check

REPLICATION_DEGRADED = "replication degraded"


def check_available(deployment: dict[str, Any]) -> Check:
    return Check(
        "deployment available",
        "both",
        deployment.get("Status") == "AVAILABLE",
        str(deployment.get("Status", "missing")),
        "AVAILABLE",
        BLOCKER,
        "AWS refuses a switchover unless the deployment is AVAILABLE.",
    )


def check_members(deployment: dict[str, Any]) -> list[Check]:
    """One check per SwitchoverDetails pair: its target must be available."""
    checks = []
    for source, target, status in members(deployment):
        found = describe_cluster(target) or describe_instance(target) or {}
        state = found.get("Status") or found.get("DBInstanceStatus")
        checks.append(
            Check(
                f"green member {target}",
                "green",
                status == "AVAILABLE" and state == "available",
                f"pair {status}, {state or 'gone'}",
                "pair AVAILABLE, available",
                BLOCKER,
                f"{target} takes {source}'s place: it must be available before the switchover.",
            )
        )
    return checks


def check_replication_not_degraded(deployment: dict[str, Any]) -> Check:
    """A blocker while the deployment's StatusDetails say "Replication degraded"."""
    details = str(deployment.get("StatusDetails") or "")
    degraded = REPLICATION_DEGRADED in details.lower()
    return Check(
        name="replication-degraded",
        side="both",
        passed=not degraded,
        observed=f"StatusDetails: {details}" if details else "no StatusDetails",
        expected="replication not degraded",
        severity=BLOCKER,
        why="AWS marks the deployment Replication degraded after DDL or a large-object change "
        "on blue, and refuses to switch it over from then on.",
        fix=NEW_DEPLOYMENT_FIX,
    )
