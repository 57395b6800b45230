"""Two runs for one cluster at once: the second refuses, naming the first, and touches
nothing. A run whose process died does not block the cluster: a rerun takes over."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from lab.harness import TARGET_VERSION, RunningLab, wait_for
from tests.support.flowtools import (
    CLUSTER_ID,
    CliRun,
    artifacts_of,
    flow_in_thread,
    lab_parameters,
    run_flow,
    write_parameters_file,
)


def test_a_second_run_for_the_same_cluster_refuses_naming_the_first_and_touches_nothing(
    lab: RunningLab,
) -> None:
    params = lab_parameters(lab)
    with flow_in_thread(params) as first:
        first.wait_paused()
        holder = first.flow_run()
        before = time.time()

        second = run_flow(params)

        state = second.state
        assert state.is_failed(), state
        assert "\n" not in state.message
        assert "another run is upgrading provisioning-rds" in state.message
        assert holder.name in state.message and str(holder.id) in state.message
        assert "Paused" in state.message
        assert lab.mutating_calls(before) == []
        assert artifacts_of(second.id) == {}  # the holder's artifacts keep their latest version

        first.answer("approve")
        first.answer("approve")
        assert first.finish().is_completed()
    assert lab.cluster()["EngineVersion"] == TARGET_VERSION


def test_a_rerun_takes_over_the_cluster_from_a_run_whose_process_was_killed(
    lab: RunningLab, tmp_path: Path, prefect_api: str
) -> None:
    params_file = write_parameters_file(lab, tmp_path / "params.yaml")
    began = datetime.now(UTC)
    first = CliRun(lab, params_file, tmp_path / "first", prefect_api)
    try:
        first.kill_after("CreateBlueGreenDeployment")
    finally:
        first.stop()

    second = CliRun(lab, params_file, tmp_path / "second", prefect_api)
    try:
        code, summary = second.finish()
    finally:
        second.stop()

    assert code == 0, second.output().decode(errors="replace")[-2000:]
    assert summary is not None and summary["state"] == "COMPLETED"
    killed = _runs_of(CLUSTER_ID, since=began, exclude=summary["flow_run_id"])
    assert [run.state.type.value for run in killed] == ["CRASHED"]
    assert "is gone" in killed[0].state.message
    assert summary["flow_run_id"] in killed[0].state.message


def _runs_of(cluster: str, since: datetime, exclude: str) -> list:
    """The runs of `cluster` created since `since` (the session's API holds other tests' runs)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    def found() -> list:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"cluster:{cluster}"]))
            )
        return [r for r in runs if str(r.id) != exclude and r.created >= since]

    return wait_for(found, 30, what=f"the other runs of {cluster}")


def test_runs_for_different_clusters_proceed_side_by_side(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lab import control
    from lab.harness import RunningLab as Lab
    from tests.support.labtools import assert_nothing_running

    info = control.up(tmp_path / "lab", 1, 0.0, clusters=2)
    try:
        lab = Lab(info=info, dir=Path(info["lab_dir"]))
        for name, value in lab.env.items():
            monkeypatch.setenv(name, value)
        second_cluster = "provisioning-rds-2"
        with (
            flow_in_thread(lab_parameters(lab)) as first,
            flow_in_thread(lab_parameters(lab, cluster_identifier=second_cluster)) as second,
        ):
            first.wait_paused()
            second.wait_paused()  # both hold their own cluster's slot at once
            for run in (first, second):
                run.answer("approve")
            for run in (first, second):
                run.answer("approve")
            assert first.finish().is_completed(), first.state.message
            assert second.finish().is_completed(), second.state.message
        for cluster in (CLUSTER_ID, second_cluster):
            assert lab.cluster(cluster)["EngineVersion"] == TARGET_VERSION
    finally:
        control.down(tmp_path / "lab")
        assert_nothing_running(tmp_path / "lab")
