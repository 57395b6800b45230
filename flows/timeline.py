"""The run's timeline: phase, start, end, duration, what it did and why."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aurora_bg.results import StepResult


@dataclass
class PhaseRecord:
    phase: str
    started: float
    ended: float = 0.0
    outcome: str = "running"
    reason: str = ""


@dataclass
class Timeline:
    phases: list[PhaseRecord] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def start(self, phase: str) -> PhaseRecord:
        record = PhaseRecord(phase, time.time())
        self.phases.append(record)
        return record

    def finish(self, record: PhaseRecord, result: StepResult | str, outcome: str = "") -> None:
        record.ended = time.time()
        if isinstance(result, StepResult):
            record.outcome, record.reason = outcome or result.action, result.reason
        else:
            record.outcome, record.reason = outcome or "done", result

    def keep(self, key: str) -> str:
        if key not in self.artifacts:
            self.artifacts.append(key)
        return key

    def markdown(self, title: str, status: str) -> str:
        def clock(at: float) -> str:
            return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S") if at else "—"

        rows = [
            f"| {p.phase} | {clock(p.started)} | {clock(p.ended)} | "
            f"{(p.ended - p.started) if p.ended else 0:.1f} s | {p.outcome} | {p.reason} |"
            for p in self.phases
        ]
        keys = "\n".join(f"- `{key}`" for key in self.artifacts) or "- none"
        return (
            f"# {title}\n\n**{status}**\n\n"
            "| phase | start (UTC) | end | duration | outcome | what and why |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n\n## Artifacts\n{keys}\n"
        )
