"""Prefect artifacts with stable keys: `<cluster>-<what>`, lowercase with dashes."""

from __future__ import annotations

import re
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

KINDS = (
    "preflight",
    "password-mode",
    "blue-green",
    "green-validation",
    "green-validation-summary",
    "pre-switchover",
    "pre-switchover-summary",
    "switchover",
    "post-switchover",
    "sequences",
    "cleanup",
    "terraform-plan",
    "way-out",
    "report",
)


def artifact_key(cluster_id: str, kind: str) -> str:
    """The stable key of one artifact kind for one cluster."""
    return re.sub(r"[^a-z0-9-]", "-", f"{cluster_id}-{kind}".lower())


def publish_markdown(cluster_id: str, kind: str, markdown: str, description: str) -> str:
    key = artifact_key(cluster_id, kind)
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    return key


def publish_table(cluster_id: str, kind: str, rows: list[dict[str, Any]], description: str) -> str:
    key = artifact_key(cluster_id, kind)
    create_table_artifact(table=rows, key=key, description=description)
    return key


class Progress:
    """A progress artifact fed by a long wait (0–100 %)."""

    def __init__(self, description: str) -> None:
        # Prefect's async_dispatch types the result "UUID or coroutine"; called outside an
        # event loop, as the flows' tasks are, it runs the synchronous version: a UUID.
        self._id = cast(UUID, create_progress_artifact(progress=0.0, description=description))
        self._last = 0.0

    def update(self, percent: float) -> None:
        percent = max(0.0, min(100.0, percent))
        if percent != self._last:
            update_progress_artifact(artifact_id=self._id, progress=percent)
            self._last = percent


def bullet_list(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)
