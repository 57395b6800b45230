"""What a preflight is made of: checks (blockers and warnings), and what it learned.

A failed blocker refuses the run before anything changes; a failed warning is
reported (a row marked WARN, named in the summary) and recorded in `facts` for
the phases that follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tasks.validation.model import BLOCKER, WARNING, Check

FRESH: Final = "fresh"
BEFORE_SWITCHOVER: Final = "resume-before-switchover"
AFTER_SWITCHOVER: Final = "resume-after-switchover"
NAMED_IN_SUMMARY = 6  # failed checks named in the summary sentence before "and N more"


@dataclass(frozen=True)
class PreflightCheck:
    """One preflight finding: its name, whether it passed, what was seen and the fix."""

    name: str
    passed: bool
    detail: str
    fix: str = ""
    severity: str = BLOCKER  # BLOCKER refuses the run; WARNING is reported and recorded

    @property
    def result(self) -> str:
        if self.passed:
            return "pass"
        return "FAIL" if self.severity == BLOCKER else "WARN"

    @classmethod
    def of(cls, check: Check) -> PreflightCheck:
        """A validation check (`tasks.validation.model.Check`) as a preflight row."""
        return cls(check.name, check.passed, check.observed, check.fix, check.severity)


def warning(name: str, passed: bool, detail: str, fix: str) -> PreflightCheck:
    return PreflightCheck(name, passed, detail, fix, WARNING)


@dataclass
class Preflight:
    """Every preflight check of one run, and where an earlier attempt left off (`situation`)."""

    situation: str
    checks: list[PreflightCheck]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[PreflightCheck]:
        """The failed blockers: any one refuses the run."""
        return [c for c in self.checks if not c.passed and c.severity == BLOCKER]

    @property
    def warnings(self) -> list[PreflightCheck]:
        """The failed warnings: reported, recorded, never refusing."""
        return [c for c in self.checks if not c.passed and c.severity != BLOCKER]

    @property
    def passed(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        warned = (
            f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}: "
            f"{_names(self.warnings)}"
            if self.warnings
            else ""
        )
        if self.passed:
            if warned:
                return f"No preflight check failed ({self.situation}); {warned}."
            return f"All {len(self.checks)} preflight checks passed ({self.situation})."
        failed = f"{len(self.failed)} of {len(self.checks)} preflight checks failed"
        return f"{failed}: {_names(self.failed)}" + (f"; also {warned}." if warned else ".")

    def refusal(self) -> str:
        """One line: which checks failed, what each found and its fix."""
        found = "; ".join(f"{c.name} ({c.detail}): {c.fix}" for c in self.failed)
        counted = f"{len(self.failed)} of {len(self.checks)} preflight checks failed"
        return " ".join(f"{counted}: {found}".split())

    def rows(self) -> list[dict[str, str]]:
        return [
            {
                "check": c.name,
                "result": c.result,
                "severity": c.severity,
                "detail": c.detail,
                "fix": c.fix,
            }
            for c in self.checks
        ]

    def recorded_warnings(self) -> list[dict[str, str]]:
        """The failed warnings as facts for the later phases."""
        return [{"check": c.name, "detail": c.detail, "fix": c.fix} for c in self.warnings]


def _names(checks: list[PreflightCheck]) -> str:
    named = ", ".join(c.name for c in checks[:NAMED_IN_SUMMARY])
    more = len(checks) - NAMED_IN_SUMMARY
    return named + (f" and {more} more" if more > 0 else "")
