"""aurora-blue-green-fleet: the upgrade of many clusters, at most K at once.

Each cluster is upgraded by the upgrade flow itself, as a child run: same
phases, same pauses, same way out, same artifacts under its own name. The
fleet adds only what many clusters need: which clusters (listed, or found by
tag), a Prefect global concurrency limit so that at most K children run at
once, one Prefect rate limit shared by every AWS call of every child, batch
approvals when asked for, and one `fleet-report`. A failing cluster stops
nobody else; the fleet's final state says how many were upgraded.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextvars import copy_context
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_table_artifact
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from aurora_bg.errors import BadInput, PreconditionFailed
from aurora_bg.fleet_params import MAX_CLUSTERS, FleetParameters
from aurora_bg.params import UpgradeParameters
from flows import fleet_approval
from flows.upgrade import aurora_blue_green_upgrade
from tasks import steps
from tasks.aws_budget import counting_calls, paced_by

REPORT_KEY = "fleet-report"


def upgrade_cluster(params: UpgradeParameters, parallel_limit: str, fleet_tag: str) -> dict:
    """One cluster's upgrade as a child run, inside a slot of the fleet's parallel limit.
    Never raises for the cluster's own failure: the row says what happened.

    Called in a thread of its own with a copy of the fleet's context, not as a task: a
    flow called inside a task would log into that task instead of its own run."""
    cluster = params.cluster_identifier
    with concurrency(parallel_limit, occupy=1, strict=True):
        began = time.monotonic()
        with counting_calls() as calls, tags(fleet_tag, f"cluster:{cluster}"):
            state = aurora_blue_green_upgrade(params, return_state=True)
        minutes = (time.monotonic() - began) / 60
    version = (steps.describe_cluster(cluster) or {}).get("EngineVersion", "-")
    upgraded = state.is_completed()
    return {
        "cluster": cluster,
        "outcome": "upgraded" if upgraded else state.type.value.lower(),
        "version": version,
        "minutes": round(minutes, 1),
        "api_calls": calls.value,
        "detail": "" if upgraded else (state.message or "")[:300],
        "flow_run_id": str(state.state_details.flow_run_id or ""),
    }


def fleet_clusters(params: FleetParameters) -> list[str]:
    if params.clusters:
        return list(params.clusters)
    found = steps.discover_clusters(*params.tag_pair)
    if not found:
        raise PreconditionFailed(f"no Aurora PostgreSQL cluster carries the tag {params.tag}")
    if len(found) > MAX_CLUSTERS:
        raise PreconditionFailed(
            f"{len(found)} clusters carry {params.tag}; at most {MAX_CLUSTERS}"
        )
    return found


def plans_for(params: FleetParameters, clusters: list[str]) -> dict[str, UpgradeParameters]:
    """Every cluster's parameters, checked before anything starts (one line on error)."""
    unknown = sorted(set(params.overrides) - set(clusters))
    if unknown:
        raise BadInput(f"overrides names {unknown[0]}, which is not among the fleet's clusters")
    try:
        return {cluster: params.for_cluster(cluster) for cluster in clusters}
    except ValueError as error:
        raise BadInput(f"invalid parameters for {error}") from None


def report(rows: list[dict[str, Any]], batches: list[dict[str, Any]]) -> str:
    upgraded = sum(row["outcome"] == "upgraded" for row in rows)
    summary = f"{upgraded} of {len(rows)} clusters upgraded"
    failed = [
        f"{row['cluster']} ({row['outcome']})" for row in rows if row["outcome"] != "upgraded"
    ]
    if failed:
        summary += "; not upgraded: " + ", ".join(failed)
    if batches:
        summary += f"; {len(batches)} batch approvals"
    table = [{k: v for k, v in row.items() if k != "flow_run_id"} for row in rows]
    create_table_artifact(table=table, key=REPORT_KEY, description=summary)
    return summary


@flow(name="aurora-blue-green-fleet", persist_result=False)
def aurora_blue_green_fleet(parameters: FleetParameters) -> State:
    """Upgrade many Aurora PostgreSQL clusters, each through its own Blue/Green run."""
    logger = get_run_logger()
    clusters = fleet_clusters(parameters)
    plans = plans_for(parameters, clusters)
    limits = steps.prepare_fleet_limits(parameters.max_parallel, parameters.aws_calls_per_second)
    logger.info("fleet of %d clusters: %s", len(clusters), limits.reason)
    run_id = str(flow_run.get_id() or "local")
    fleet_tag = f"fleet-run:{run_id}"
    batches: list[dict[str, Any]] = []
    # Every cluster waits in a thread of its own for a slot of the parallel limit: the
    # limit, not the pool, decides how many run, so it holds across fleets and machines.
    with paced_by(limits.facts["rate"]), ThreadPoolExecutor(len(clusters)) as pool:
        futures = [
            pool.submit(
                copy_context().run, upgrade_cluster, plans[c], limits.facts["parallel"], fleet_tag
            )
            for c in clusters
        ]
        if parameters.approval == "batch":
            batches = fleet_approval.coordinate(
                fleet_tag,
                run_id,
                parameters.settings.approval_timeout_seconds,
                lambda: all(f.done() for f in futures),
            )
        wait(futures)
    rows = []
    for cluster, future in zip(clusters, futures, strict=True):
        try:
            rows.append(future.result())
        except Exception as error:  # the child could not even start: still one row
            rows.append(
                {
                    "cluster": cluster,
                    "outcome": "failed",
                    "version": "-",
                    "minutes": 0.0,
                    "api_calls": 0,
                    "detail": f"{type(error).__name__}: {error}"[:300],
                }
            )
    summary = report(rows, batches)
    logger.info("%s", summary)
    data = {"clusters": rows, "batches": batches, "summary": summary}
    if all(row["outcome"] == "upgraded" for row in rows):
        return Completed(message=summary, data=data)
    return Failed(message=summary, data=data)
