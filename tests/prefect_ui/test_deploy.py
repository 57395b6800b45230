"""`aurora-bg deploy` registers prefect.yaml's deployments on a real Prefect server, with
the environment file's parameters and schedule; read back from the server."""

from __future__ import annotations

import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from aurora_bg.cli.environments import load_environment
from tests.support.operate import ENVIRONMENT_SCHEDULE, FLOW, POOL, PrefectServer


def read(name: str):
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"{FLOW}/{name}")


def test_deploy_registers_both_deployments_with_the_environment_parameters(
    deployed: str, environment_file: Path
):
    expected = {"parameters": load_environment(environment_file).parameters_json()}
    for name in ("upgrade", "maintenance-window"):
        deployment = read(name)
        assert f"registered {FLOW}/{name} on work pool {POOL}" in deployed
        assert deployment.work_pool_name == POOL
        assert deployment.entrypoint == "flows/upgrade.py:aurora_blue_green_upgrade"
        assert deployment.enforce_parameter_schema is True
        assert deployment.parameters == expected
        assert deployment.pull_steps == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $AURORA_BG_CHECKOUT }}"
                }
            }
        ]
        assert "environment:lab-ui" in deployment.tags
    assert read("upgrade").schedules == []


def test_the_form_is_the_parameter_model_with_titles_and_descriptions(deployed: str):
    schema = read("upgrade").parameter_openapi_schema
    assert schema["required"] == ["parameters"]
    fields = schema["definitions"]["UpgradeParameters"]["properties"]
    assert fields["cluster_identifier"]["title"] == "Cluster"
    assert "blue cluster" in fields["cluster_identifier"]["description"]
    assert fields["outside_window"]["enum"] == ["wait", "way-out"]
    window = schema["definitions"]["SwitchoverWindow"]["properties"]
    assert window["start"]["pattern"] and window["timezone"]["title"] == "Time zone"


def test_the_maintenance_window_ships_inactive_with_the_environment_schedule(deployed: str):
    (schedule,) = read("maintenance-window").schedules
    assert schedule.active is False
    assert schedule.schedule.cron == ENVIRONMENT_SCHEDULE["cron"]
    assert schedule.schedule.timezone == ENVIRONMENT_SCHEDULE["timezone"]


def test_the_maintenance_window_runs_fall_at_its_local_time_in_its_time_zone(
    deployed: str, prefect_server: PrefectServer
):
    """Activated for the test, the server itself schedules the runs; then it is put back."""
    deployment = read("maintenance-window")
    (schedule,) = deployment.schedules
    with get_client(sync_client=True) as client:
        client.update_deployment_schedule(deployment.id, schedule.id, active=True)
        try:
            httpx.post(
                f"{prefect_server.api_url}/deployments/{deployment.id}/schedule",
                json={"min_runs": 3, "max_runs": 3},
                timeout=30,
            ).raise_for_status()
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
        finally:
            client.update_deployment_schedule(deployment.id, schedule.id, active=False)
            for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            ):
                client.delete_flow_run(run.id)
    tokyo = ZoneInfo("Asia/Tokyo")
    times = sorted(run.expected_start_time.astimezone(tokyo) for run in runs)
    assert len(times) >= 3
    now = datetime.datetime.now(tokyo)
    for moment in times:
        assert (moment.weekday(), moment.hour, moment.minute) == (6, 2, 30), moment
        assert moment > now
    assert all(b - a == datetime.timedelta(days=7) for a, b in zip(times, times[1:], strict=False))
