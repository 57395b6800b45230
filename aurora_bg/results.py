"""What every step returns: what it did, why, and what it learned.

The reason sentence is at once the log line, the artifact row and what a
test asserts (the habit of Patroni's `ha.py`). Facts must never hold a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step: `action` is a short verb-ish word
    (`created`, `already-done`, `skipped`, `removed`, …), `reason` one sentence."""

    action: str
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.action}: {self.reason}"
