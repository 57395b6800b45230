"""What the Terraform phase did and what is left: one status, the steps, the commands.

`TerraformStatus` is the one list of outcomes. It is a `StrEnum`, so a status
compares equal to its string (`report.status == "applied"`) and prints as it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aurora_bg.results import StepResult
from tasks.terraform.plan import PlanSummary


class TerraformStatus(StrEnum):
    """How the phase ended (`running` until it does)."""

    RUNNING = "running"
    # Terraform is in line with AWS.
    APPLIED = "applied"
    NOTHING_TO_DO = "nothing-to-do"
    # The report lists the commands left to run.
    PLANNED = "planned"
    STATE_RM_PENDING = "state-rm-pending"
    PROVIDER_UNAVAILABLE = "provider-unavailable"
    # Terraform refused; the flow must not carry on as if it were in line.
    INIT_FAILED = "init-failed"
    PLAN_FAILED = "plan-failed"
    BLOCKED = "blocked"
    APPLY_FAILED = "apply-failed"


@dataclass
class TerraformReport:
    """Everything the Terraform phase did and what is left, renderable as a Prefect artifact."""

    cluster_identifier: str
    terraform_dir: str
    plan_only: bool
    status: TerraformStatus = TerraformStatus.RUNNING
    message: str = ""
    steps: list[StepResult] = field(default_factory=list)
    diff: str = ""
    commands_left: list[str] = field(default_factory=list)
    plan: PlanSummary | None = None
    plan_text: str = ""

    def step(self, result: StepResult) -> StepResult:
        """Record one step; returns it unchanged."""
        self.steps.append(result)
        return result

    def finish(
        self,
        status: TerraformStatus,
        reason: str,
        commands_left: Sequence[str] = (),
        **facts: Any,
    ) -> TerraformReport:
        """Record the last step, whose action is the report's status."""
        status = TerraformStatus(status)  # a plain string of a known status is accepted too
        self.step(StepResult(status, reason, facts))
        self.status, self.message = status, reason
        self.commands_left.extend(commands_left)
        return self

    def to_markdown(self) -> str:
        """The report as the `<cluster>-terraform-plan` artifact shows it."""
        mode = "plan only" if self.plan_only else "apply"
        lines = [
            f"# Terraform for {self.cluster_identifier} ({mode})",
            "",
            f"**{self.status}**: {self.message}",
            "",
            f"Working directory: `{self.terraform_dir}`",
            "",
            "| step | what | why |",
            "|---|---|---|",
        ]
        for number, result in enumerate(self.steps, 1):
            reason = result.reason.replace("|", "\\|")
            lines.append(f"| {number} | {result.action} | {reason} |")
        if self.plan is not None:
            lines += [
                "",
                "## Plan",
                "",
                "```json",
                json.dumps(self.plan.as_dict(), indent=2),
                "```",
            ]
        if self.diff:
            lines += ["", "## Configuration diff", "", "```diff", self.diff.rstrip("\n"), "```"]
        if self.commands_left:
            lines += ["", "## Left to run", "", "```sh", *self.commands_left, "```"]
        return "\n".join(lines) + "\n"
