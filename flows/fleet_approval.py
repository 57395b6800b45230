"""Batch approval: one approval per gate for every cluster of the fleet waiting at it.

Each cluster's run pauses at its gates exactly as a single upgrade does; the
fleet only changes who answers. It watches its children (found in the Prefect
API by the fleet's tag) and, once every child that runs is paused, pauses
itself once for the children waiting at the earliest gate, with a summary of
them. Its answer goes to each of them through the API, the comment naming the
fleet's approval: approve resumes them all, reject (or no answer within the
approval timeout) rejects them all, and each takes its own way out. Children
still waiting for a free slot are not part of this batch; they get theirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun
from prefect.flow_runs import resume_flow_run

from aurora_bg.errors import Rejected
from flows import texts
from flows.approval import ask

GATES = ("1", "2")  # the upgrade's pause keys (its pauses' numbers), in order
GATE_TITLES = {"1": texts.GREEN_VALIDATED, "2": texts.APPROVE_SWITCHOVER}
WATCH_SECONDS = 1.0
RESUME_RETRY_SECONDS = 30.0


def children(fleet_tag: str) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[fleet_tag]))
        )


def gate_of(run: FlowRun) -> str:
    return str(run.state.state_details.pause_key) if run.state else ""


def is_paused(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_paused()


def cluster_of(run: FlowRun) -> str:
    return next((t.removeprefix("cluster:") for t in run.tags if t.startswith("cluster:")), "?")


def waiting_batch(runs: list[FlowRun], answered: set[tuple[str, str]]) -> list[FlowRun]:
    """The children to ask for now: none while any running child is not yet paused (or
    paused at a gate the fleet already answered); else those at the earliest gate."""
    active = [r for r in runs if r.state is not None and not r.state.is_final()]
    if not active or any(not is_paused(r) or (str(r.id), gate_of(r)) in answered for r in active):
        return []
    order = {gate: index for index, gate in enumerate(GATES)}
    first = min(active, key=lambda r: order.get(gate_of(r), len(GATES)))
    return sorted((r for r in active if gate_of(r) == gate_of(first)), key=lambda r: cluster_of(r))


def answer_children(batch: list[FlowRun], decision: str, comment: str) -> list[str]:
    """Resume each child with the fleet's answer; returns the clusters answered."""
    answered = []
    for run in batch:
        deadline = time.monotonic() + RESUME_RETRY_SECONDS
        while True:
            try:
                resume_flow_run(run.id, run_input={"decision": decision, "comment": comment})
                answered.append(cluster_of(run))
                break
            except Exception:  # its form is saved just after it paused; or it moved on
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    return answered


def coordinate(
    fleet_tag: str, fleet_run_id: str, timeout: int, is_done: Callable[[], bool]
) -> list[dict[str, Any]]:
    """Answer the children's pauses in batches until `is_done()`; returns one row per
    batch (gate, clusters, decision) for the fleet's report."""
    logger = get_run_logger()
    answered: set[tuple[str, str]] = set()
    batches: list[dict[str, Any]] = []
    while not is_done():
        batch = waiting_batch(children(fleet_tag), answered)
        if not batch:
            time.sleep(WATCH_SECONDS)
            continue
        gate = gate_of(batch[0])
        clusters = [cluster_of(r) for r in batch]
        title = GATE_TITLES.get(gate, gate)
        try:
            answer = ask(
                len(batches) + 1,  # the fleet's own pauses, numbered as Prefect numbers them
                f"{title} ({len(batch)} clusters)",
                texts.batch_pause(title, clusters),
                timeout,
            )
            decision, why = "approve", answer.comment
        except Rejected as error:
            decision, why = "reject", str(error)
        comment = f"{decision} by fleet approval {fleet_run_id}" + (f": {why}" if why else "")
        done = answer_children(batch, decision, comment)
        answered.update((str(r.id), gate) for r in batch)
        logger.info("fleet %s at %s: %s", decision, title, ", ".join(done) or "nobody")
        batches.append({"gate": title, "clusters": ", ".join(clusters), "decision": decision})
    return batches
