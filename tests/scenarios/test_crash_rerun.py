"""A run killed right after a mutating AWS call returned: the rerun continues where AWS is
and never repeats the call."""

from __future__ import annotations

from pathlib import Path

from lab.harness import TARGET_VERSION, RunningLab
from tests.support.flowtools import (
    CLUSTER_ID,
    HELD_SECRET,
    CliRun,
    calls_named,
    deployments,
    secret_exists,
    write_parameters_file,
)


def crash_after_then_rerun(
    lab: RunningLab, action: str, tmp_path: Path, api_url: str
) -> dict[str, object]:
    params_file = write_parameters_file(lab, tmp_path / "params.yaml")
    first = CliRun(lab, params_file, tmp_path / "first", api_url)
    try:
        first.kill_after(action)
    finally:
        first.stop()
    assert first.process.returncode == -9

    second = CliRun(lab, params_file, tmp_path / "second", api_url)
    try:
        code, summary = second.finish()
    finally:
        second.stop()
    assert code == 0, second.output().decode(errors="replace")[-3000:]
    assert summary is not None and summary["state"] == "COMPLETED"
    return summary


def assert_upgraded_with_managed_password(lab: RunningLab) -> None:
    cluster = lab.cluster()
    assert cluster["EngineVersion"] == TARGET_VERSION
    assert cluster["MasterUserSecret"]["SecretStatus"] == "active"
    with lab.connect_cluster(CLUSTER_ID, lab.master_password()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert deployments(lab) == []
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert not secret_exists(lab, HELD_SECRET)


def test_rerun_after_a_crash_once_the_deployment_was_created_creates_no_second_deployment(
    lab: RunningLab, tmp_path: Path, prefect_api: str
) -> None:
    crash_after_then_rerun(lab, "CreateBlueGreenDeployment", tmp_path, prefect_api)

    assert len(calls_named(lab, "CreateBlueGreenDeployment")) == 1
    assert len(calls_named(lab, "SwitchoverBlueGreenDeployment")) == 1
    assert_upgraded_with_managed_password(lab)


def test_rerun_after_a_crash_once_the_switchover_started_never_switches_over_again(
    lab: RunningLab, tmp_path: Path, prefect_api: str
) -> None:
    crash_after_then_rerun(lab, "SwitchoverBlueGreenDeployment", tmp_path, prefect_api)

    assert len(calls_named(lab, "SwitchoverBlueGreenDeployment")) == 1
    assert len(calls_named(lab, "CreateBlueGreenDeployment")) == 1
    assert_upgraded_with_managed_password(lab)
