"""`aurora-bg deploy` refuses a wrong environment file in one line and registers nothing on
the server. Checking a file without a server is tests/unit/test_environment_file_check.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.operate import PrefectServer, lab_parameter_data, registered_deployments, run_cli


def schedule(**fields: str) -> dict:
    return {"schedule": {"cron": "0 2 * * 0", "timezone": "Asia/Tokyo", **fields}}


WRONG = {
    "unknown-key": ({"maintenance_window": "sunday"}, "maintenance_window: Extra inputs"),
    "bad-type": ({"approval_timeout_seconds": "a day"}, "approval_timeout_seconds: Input should"),
    "unknown-schedule-timezone": (
        schedule(timezone="Asia/Tokio"),
        "invalid schedule: timezone: unknown time zone 'Asia/Tokio'",
    ),
    "cron-does-not-parse": (
        schedule(cron="0 2 * * sundays"),
        "invalid schedule: cron: '0 2 * * sundays' does not parse",
    ),
    "unknown-window-timezone": (
        {"switchover_window": {"start": "02:00", "end": "04:00", "timezone": "Mars/Olympus"}},
        "switchover_window.timezone: unknown time zone 'Mars/Olympus'",
    ),
    "unknown-schedule-key": (schedule(every="sunday"), "invalid schedule: every: Extra inputs"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_environment_file_fails_in_one_line_and_registers_nothing(
    case: str, prefect_server: PrefectServer, tmp_path: Path
):
    change, expected = WRONG[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump({**lab_parameter_data(), **change}))
    before = registered_deployments()

    done = run_cli(
        "deploy", "--environment", str(path), env={"PREFECT_API_URL": prefect_server.api_url}
    )

    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}: ") and expected in lines[0], lines[0]
    assert registered_deployments() == before  # nothing registered, nothing changed
