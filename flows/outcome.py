"""Phase 13: how a run of the upgrade ends, and the one function that ends it.

Every ending publishes the `<cluster>-report` artifact: the timeline under one
headline, which is also the run's final message. Then an upgrade returns its
small summary; a run that a person cancelled ends Cancelled; any other stop
re-raises the error that stopped it, so the run fails with its reason.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from prefect.states import Cancelled, State

from aurora_bg.errors import AuroraBGError, RunCancelled
from flows import texts
from flows.upgrade_run import Upgrade
from tasks import steps
from tasks.artifacts import publish_markdown


class Ending(Enum):
    """The ways a run ends; each value is its headline, filled in by `conclude`."""

    UPGRADED = "Upgraded {cluster} to {version}."
    STOPPED_BEFORE_ANY_CHANGE = "Stopped before any change: {why}"
    STOPPED_BEFORE_THE_SWITCHOVER = "Stopped before the switchover; the deployment is left: {why}"
    SWITCHOVER_FAILED = "Switchover failed, AWS rolled back; the deployment is left: {why}"
    TOOK_THE_WAY_OUT = "Took the way out: {why}"
    WAY_OUT_NOT_TAKEN = "Stopped: {why}. The way out was not taken: {stuck}"
    STOPPED_AFTER_THE_SWITCHOVER_STARTED = "Stopped after the switchover started: {why}"
    SWITCHED_OVER_THEN_STOPPED = "Switched over; then stopped: {why}"

    @property
    def leaves_work_to_finish(self) -> bool:
        """Something is half-done and a rerun finishes it, so the headline goes on with
        where things stand. (The way out leaves blue as it was; the other stops before
        the switchover say in their headline that the deployment is left.)"""
        return self in {
            Ending.WAY_OUT_NOT_TAKEN,
            Ending.STOPPED_AFTER_THE_SWITCHOVER_STARTED,
            Ending.SWITCHED_OVER_THEN_STOPPED,
        }


def conclude(
    run: Upgrade, ending: Ending, error: BaseException | None = None, **details: str
) -> dict[str, Any] | State:
    """Publish the report with the ending's headline (`details` fill it in), then return
    the summary when there is no error, Cancelled when the error is a cancel, or re-raise
    the error."""
    status = ending.value.format(
        cluster=run.cluster, version=run.params.target_engine_version, **details
    )
    if ending.leaves_work_to_finish:
        status = f"{status} {where_things_stand(run)}"
    title = f"Upgrade of {run.cluster}"
    run.timeline.keep(
        publish_markdown(run.cluster, "report", run.timeline.markdown(title, status), status)
    )
    if error is None:
        return summary(run, status)
    if isinstance(error, RunCancelled):
        return Cancelled(message=status)
    raise error


def summary(run: Upgrade, status: str) -> dict[str, Any]:
    """What the flow returns: its status, the cluster's version and secret, the artifacts."""
    try:
        cluster = steps.describe_cluster(run.cluster) or {}
    except AuroraBGError:  # the report is out; an unreadable cluster must not hide why
        cluster = {}
    return {
        "status": status,
        "cluster": run.cluster,
        "engine_version": cluster.get("EngineVersion"),
        "secret_arn": (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
        "artifacts": run.timeline.artifacts,
    }


def where_things_stand(run: Upgrade) -> str:
    """One sentence on the cluster as AWS shows it now, for a run that stops half-way."""
    try:
        now = steps.where_things_stand(run.cluster, run.params.effective_deployment_name)
    except Exception as error:
        return texts.standing_unknown(error)
    return texts.standing(run.cluster, now)
