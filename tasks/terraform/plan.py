"""Reading a saved Terraform plan: what it imports, destroys and updates.

`terraform show -json PLAN` is reduced to the few facts the phase decides on:
a plan that destroys (or replaces) the cluster or one of its instances is a
blocker and is never applied; an update of the cluster that only touches the
attributes the provider itself ignores after an import is expected, not drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.terraform.state import CLUSTER_TYPE, INSTANCE_TYPE

# The provider's own import test ignores these after import (docs/runbook.md, 4.4 Terraform):
# a plan that only changes them on the cluster is the known quirk, not drift.
IMPORT_VERIFY_IGNORE = frozenset(
    {
        "allow_major_version_upgrade",
        "apply_immediately",
        "cluster_members",
        "db_instance_parameter_group_name",
        "enable_global_write_forwarding",
        "enable_local_write_forwarding",
        "manage_master_user_password",
        "master_password",
        "master_user_secret_kms_key_id",
        "skip_final_snapshot",
    }
)


@dataclass(frozen=True)
class PlannedChange:
    """One resource the plan touches: its actions, the id it imports, what it changes."""

    address: str
    resource_type: str
    actions: tuple[str, ...]
    importing_id: str | None = None
    changed: tuple[str, ...] = ()
    expected: bool = False


@dataclass(frozen=True)
class PlanSummary:
    """Every change of one plan, sorted into imports, destroys, updates and blockers."""

    changes: tuple[PlannedChange, ...]

    @property
    def imports(self) -> list[str]:
        return [c.address for c in self.changes if c.importing_id is not None]

    @property
    def destroys(self) -> list[str]:
        return [c.address for c in self.changes if "delete" in c.actions]

    @property
    def updates(self) -> list[str]:
        return [c.address for c in self.changes if c.actions == ("update",)]

    @property
    def blockers(self) -> list[str]:
        """Destroying (or replacing) the cluster or an instance: never applied."""
        return [
            c.address
            for c in self.changes
            if "delete" in c.actions and c.resource_type in (CLUSTER_TYPE, INSTANCE_TYPE)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "imports": self.imports,
            "destroys": self.destroys,
            "updates": {
                c.address: list(c.changed) for c in self.changes if c.actions == ("update",)
            },
            "expected_after_import": [c.address for c in self.changes if c.expected],
            "blockers": self.blockers,
        }

    def sentence(self) -> str:
        """One line for the report: the counts, and how many updates are expected."""
        expected = sum(c.expected for c in self.changes)
        return (
            f"{len(self.imports)} import(s), {len(self.destroys)} destroy(s), "
            f"{len(self.updates)} in-place update(s) ({expected} known after-import difference(s))"
        )


def summarize_plan(plan: dict[str, Any]) -> PlanSummary:
    """Reduce `terraform show -json PLAN` to imports, destroys, updates and blockers."""
    changes = []
    for resource in plan.get("resource_changes", []):
        change = resource.get("change", {})
        actions = tuple(change.get("actions", []))
        importing = change.get("importing")
        if actions == ("no-op",) and not importing:
            continue
        changed: tuple[str, ...] = ()
        if "update" in actions:
            before, after = change.get("before") or {}, change.get("after") or {}
            unknown = change.get("after_unknown") or {}
            changed = tuple(
                sorted(
                    k
                    for k in set(before) | set(after)
                    if before.get(k) != after.get(k) or k in unknown
                )
            )
        expected = (
            resource.get("type") == CLUSTER_TYPE
            and actions == ("update",)
            and set(changed) <= IMPORT_VERIFY_IGNORE
        )
        importing_id = importing.get("id", "") if isinstance(importing, dict) else None
        changes.append(
            PlannedChange(
                resource["address"],
                resource.get("type", ""),
                actions,
                importing_id,
                changed,
                expected,
            )
        )
    return PlanSummary(tuple(changes))
