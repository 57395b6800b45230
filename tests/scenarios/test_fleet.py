"""The fleet flow against a lab of three clusters, through the session's Prefect API."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun
from prefect.flow_runs import resume_flow_run

from aurora_bg.fleet_params import FleetParameters
from lab import control
from lab.harness import TARGET_VERSION, RunningLab, wait_for
from tests.support.flowtools import artifacts_of, lab_parameter_data, table_rows
from tests.support.labtools import assert_nothing_running

CLUSTERS = ["provisioning-rds", "provisioning-rds-2", "provisioning-rds-3"]
FLEET_WAIT_S = 600.0


@pytest.fixture
def fleet_lab(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningLab]:
    """A fresh lab of three clusters, the process's AWS environment pointed at it."""
    lab_dir = tmp_path / "fleet-lab"
    try:
        info = control.up(lab_dir, 1, 0.0, clusters=len(CLUSTERS))
        lab = RunningLab(info=info, dir=Path(info["lab_dir"]))
        for name, value in lab.env.items():
            monkeypatch.setenv(name, value)
        yield lab
    finally:
        control.down(lab_dir)
        assert_nothing_running(lab_dir)


def fleet_parameters(lab: RunningLab, **fields: Any) -> FleetParameters:
    settings = lab_parameter_data(lab)
    settings.pop("cluster_identifier")
    return FleetParameters.model_validate({"clusters": CLUSTERS, "settings": settings, **fields})


def runs_tagged(tag: str) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
        )


@contextmanager
def approving(tag: str, flow_name: str | None = None) -> Iterator[list[str]]:
    """Approve, as a person would, every pause of the runs tagged `tag` (of `flow_name`
    only, when given); yields the ids of the runs answered, one entry per answer."""
    stop = threading.Event()
    answered: list[str] = []
    seen: set[str] = set()

    def watch() -> None:
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                for run in runs_tagged(tag):
                    if run.state is None or not run.state.is_paused():
                        continue
                    if flow_name and client.read_flow(run.flow_id).name != flow_name:
                        continue
                    key = f"{run.id}:{run.state.state_details.pause_key}"
                    if key in seen:
                        continue
                    with suppress(Exception):  # its form may not be saved yet
                        resume_flow_run(
                            run.id, run_input={"decision": "approve", "comment": "tests"}
                        )
                        seen.add(key)
                        answered.append(str(run.id))
                stop.wait(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(10)


def run_fleet(params: FleetParameters, tag: str) -> Any:
    from flows.fleet import aurora_blue_green_fleet

    with tags(tag):
        return aurora_blue_green_fleet(params, return_state=True)


def children_of(tag: str) -> list[FlowRun]:
    return [r for r in runs_tagged(tag) if any(t.startswith("cluster:") for t in r.tags)]


def most_at_once(runs: list[FlowRun]) -> int:
    """The most runs whose [start, end] intervals overlap at one moment."""
    edges = sorted(
        [(r.start_time.timestamp(), 1) for r in runs] + [(r.end_time.timestamp(), -1) for r in runs]
    )
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += step
        peak = max(peak, running)
    return peak


def peak_calls_per_second(calls: list[dict[str, Any]]) -> int:
    """The most calls the lab logged within any sliding second."""
    times = sorted(c["time"] for c in calls)
    peak, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def fleet_rows(state: Any) -> dict[str, dict[str, Any]]:
    artifacts = artifacts_of(state.state_details.flow_run_id)
    return {row["cluster"]: row for row in table_rows(artifacts["fleet-report"])}


def test_fleet_of_three_two_at_once_upgrades_every_cluster_within_the_api_rate(
    fleet_lab: RunningLab,
) -> None:
    tag = f"test-{uuid.uuid4().hex}"
    rate = 8.0
    since = fleet_lab.calls()[-1]["time"] if fleet_lab.calls() else 0.0
    params = fleet_parameters(fleet_lab, max_parallel=2, aws_calls_per_second=rate)

    with approving(tag):
        state = run_fleet(params, tag)

    assert state.is_completed(), state.message
    assert state.message.startswith("3 of 3 clusters upgraded")
    for cluster in CLUSTERS:
        assert fleet_lab.cluster(cluster)["EngineVersion"] == TARGET_VERSION
    children = children_of(tag)
    assert sorted(r.name for r in children) and len(children) == 3
    assert all(r.state.is_completed() for r in children)
    print(f"most children at once: {most_at_once(children)}")
    assert most_at_once(children) == 2
    rows = fleet_rows(state)
    assert {c: rows[c]["outcome"] for c in CLUSTERS} == dict.fromkeys(CLUSTERS, "upgraded")
    assert all(rows[c]["version"] == TARGET_VERSION and rows[c]["api_calls"] > 0 for c in CLUSTERS)
    calls = fleet_lab.calls(since)
    peak = peak_calls_per_second(calls)
    print(f"{len(calls)} AWS calls, peak {peak} per sliding second, limit {rate}")
    assert peak <= rate + 1
    assert sum(rows[c]["api_calls"] for c in CLUSTERS) <= len(calls)


def test_batch_approval_asks_once_per_gate_and_resumes_every_cluster(
    fleet_lab: RunningLab,
) -> None:
    tag = f"test-{uuid.uuid4().hex}"
    params = fleet_parameters(fleet_lab, max_parallel=3, approval="batch")

    with approving(tag, flow_name="aurora-blue-green-fleet") as fleet_answers:
        state = run_fleet(params, tag)

    assert state.is_completed(), state.message
    assert len(fleet_answers) == 2  # green validated, approve switchover: once each
    assert state.result()["batches"] == [
        {"gate": "green validated", "clusters": ", ".join(CLUSTERS), "decision": "approve"},
        {"gate": "approve switchover", "clusters": ", ".join(CLUSTERS), "decision": "approve"},
    ]
    for cluster in CLUSTERS:
        assert fleet_lab.cluster(cluster)["EngineVersion"] == TARGET_VERSION


def test_one_failing_cluster_stops_nobody_else_and_the_fleet_reports_it(
    fleet_lab: RunningLab,
) -> None:
    tag = f"test-{uuid.uuid4().hex}"
    broken = "provisioning-rds-2"
    params = fleet_parameters(
        fleet_lab,
        clusters=[],
        tag="fleet=lab",  # found by tag: the three clusters of the lab
        max_parallel=3,
        overrides={broken: {"target_cluster_parameter_group": "no-such-group"}},
    )

    with approving(tag):
        state = run_fleet(params, tag)

    assert state.is_failed()
    assert state.message.startswith(f"2 of 3 clusters upgraded; not upgraded: {broken} (failed)")
    rows = fleet_rows(state)
    assert rows[broken]["outcome"] == "failed"
    assert "no-such-group" in rows[broken]["detail"]
    assert fleet_lab.cluster(broken)["EngineVersion"] == "15.4"
    for cluster in set(CLUSTERS) - {broken}:
        assert rows[cluster]["outcome"] == "upgraded"
        assert fleet_lab.cluster(cluster)["EngineVersion"] == TARGET_VERSION
    wait_for(lambda: len(children_of(tag)) == 3 or None, 30, what="three children in the API")
