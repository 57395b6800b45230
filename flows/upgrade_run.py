"""One run of the upgrade: its parameters, its timeline, what it has learned, and how it
runs a phase (the cancel check, the timeline's row, the log line)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.runtime import flow_run

from aurora_bg.errors import PreconditionFailed
from aurora_bg.params import UpgradeParameters
from aurora_bg.results import StepResult
from aurora_bg.window import utc_now
from flows.cancellation import raise_if_cancelled
from flows.texts import sentence_of
from flows.timeline import Timeline
from tasks import steps
from tasks.artifacts import publish_markdown, publish_table

P = ParamSpec("P")
R = TypeVar("R")


class Upgrade:
    """One run of the upgrade: the parameters, the timeline, what was learned."""

    def __init__(self, params: UpgradeParameters) -> None:
        run_id = flow_run.get_id()
        if run_id is None:  # prefect.runtime answers None outside a flow run
            raise RuntimeError("an upgrade runs inside a Prefect flow run")
        self.run_id = run_id
        self.started_at = utc_now()  # where AWS's events of this run begin
        self.params = params
        self.cluster = params.cluster_identifier
        self.timeline = Timeline()
        self.original: dict[str, Any] = {}  # blue as preflight recorded it
        self.deployment_id: str | None = None
        self.logger = get_run_logger()
        # A cancel stops the run at the next phase, except on the way out: that one
        # must finish, whoever asked for it.
        self.stops_on_cancel = True

    def phase(self, name: str, step: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one phase as a row of the timeline: its outcome and its reason, or the
        error that stopped it (re-raised). Raises RunCancelled first when the run was
        cancelled and stops on cancel."""
        if self.stops_on_cancel:
            raise_if_cancelled(f"before {name}")
        record = self.timeline.start(name)
        try:
            result = step(*args, **kwargs)
        except Exception as error:
            self.timeline.finish(record, sentence_of(error), "failed")
            raise
        if isinstance(result, StepResult):
            self.logger.info("%s: %s", name, result.reason)
            self.timeline.finish(record, result)
        else:
            self.timeline.finish(record, getattr(result, "summary", lambda: "done")())
        return result

    def markdown(self, kind: str, text: str, description: str) -> None:
        self.timeline.keep(publish_markdown(self.cluster, kind, text, description))

    def table(self, kind: str, rows: list[dict[str, Any]], description: str) -> None:
        self.timeline.keep(publish_table(self.cluster, kind, rows, description))

    def cluster_now(self) -> dict[str, Any]:
        """The cluster as AWS describes it now; PreconditionFailed when it is gone."""
        cluster = steps.describe_cluster(self.cluster)
        if cluster is None:
            raise PreconditionFailed(f"cluster {self.cluster} does not exist")
        return cluster
