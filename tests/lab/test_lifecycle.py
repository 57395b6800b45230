"""`aurora-bg lab up | status | env | down`, run as an operator runs them: the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab import control
from lab.harness import RunningLab
from tests.support.labtools import assert_nothing_running, process_alive, processes_using

AURORA_BG = Path(sys.executable).with_name("aurora-bg")
CLI_TIMEOUT_S = 120


def aurora_bg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AURORA_BG), "lab", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )


def status_of(lab_dir: Path) -> dict[str, Any]:
    result = aurora_bg("status", "--dir", str(lab_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pids_of(status: dict[str, Any]) -> dict[str, int]:
    return {name: process["pid"] for name, process in status["processes"].items()}


def assert_one_clean_error_line(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")


@dataclass
class CliLab:
    """A lab brought up by `aurora-bg lab up`; `down()` runs `aurora-bg lab down` once."""

    dir: Path
    up: subprocess.CompletedProcess[str]
    pids: dict[str, int]
    down_results: list[subprocess.CompletedProcess[str]]

    def down(self) -> subprocess.CompletedProcess[str]:
        if not self.down_results:
            self.down_results.append(aurora_bg("down", "--dir", str(self.dir)))
        return self.down_results[0]


@pytest.fixture(scope="module")
def cli_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliLab]:
    lab_dir = tmp_path_factory.mktemp("cli") / "lab"
    try:
        up = aurora_bg("up", "--dir", str(lab_dir), "--instances", "2", "--databases", "2")
        pids = pids_of(status_of(lab_dir)) if up.returncode == 0 else {}
        yield CliLab(lab_dir, up, pids, [])
    finally:
        control.down(lab_dir)
        assert_nothing_running(lab_dir)


def test_lab_up_starts_a_lab_whose_api_and_databases_answer(cli_lab: CliLab) -> None:
    assert cli_lab.up.returncode == 0, cli_lab.up.stderr
    assert "lab up in" in cli_lab.up.stdout
    info = control.read_lab(cli_lab.dir)
    assert info is not None
    assert isinstance(info["startup_seconds"], int | float)
    lab = RunningLab(info=info, dir=cli_lab.dir)
    assert lab.endpoint_url.startswith("http://127.0.0.1:")
    cluster = lab.cluster()
    assert (cluster["EngineVersion"], cluster["Status"]) == ("15.4", "available")
    assert {m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"]} == {"rds-1", "rds-2"}
    assert lab.ssm.get_parameter(Name="jdbc_url")["Parameter"]["Value"] == cluster["Endpoint"]
    with lab.connect(cluster["Endpoint"], cluster["Port"], lab.master_password()) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0


def test_lab_up_databases_2_seeds_app_and_app_2_and_lab_json_lists_them(cli_lab: CliLab) -> None:
    assert "application databases: app, app_2" in cli_lab.up.stdout
    info = control.read_lab(cli_lab.dir)
    assert info is not None and info["databases"] == ["app", "app_2"]
    lab = RunningLab(info=info, dir=cli_lab.dir)
    cluster = lab.cluster()
    for dbname in ("app", "app_2"):
        with lab.connect(cluster["Endpoint"], cluster["Port"], lab.master_password(), dbname) as c:
            assert c.execute("SELECT count(*) FROM orders").fetchone() == (200,)


def test_lab_up_with_no_application_database_fails_with_one_line_and_starts_nothing(
    tmp_path: Path,
) -> None:
    lab_dir = tmp_path / "lab"
    result = aurora_bg("up", "--dir", str(lab_dir), "--databases", "0")
    assert_one_clean_error_line(result)
    assert "--databases" in result.stderr
    assert control.read_lab(lab_dir) is None
    assert_nothing_running(lab_dir)


def test_lab_status_shows_the_aws_api_blue_and_green_alive(cli_lab: CliLab) -> None:
    status = status_of(cli_lab.dir)
    assert status["running"] is True
    assert set(status["processes"]) == {"aws", "blue", "green"}
    for name, process in status["processes"].items():
        assert process["alive"] is True, name
        assert process_alive(process["pid"]), name
    # the check `lab down` is held to sees a running lab
    assert status["processes"]["aws"]["pid"] in processes_using(cli_lab.dir)


def test_lab_up_again_says_it_is_running_and_starts_nothing(cli_lab: CliLab) -> None:
    again = aurora_bg("up", "--dir", str(cli_lab.dir), "--instances", "2")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert pids_of(status_of(cli_lab.dir)) == cli_lab.pids


def test_lab_env_prints_the_export_lines_of_the_env_file(cli_lab: CliLab) -> None:
    result = aurora_bg("env", "--dir", str(cli_lab.dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == (cli_lab.dir / "env").read_text().strip().splitlines()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    assert all(line.startswith("export ") for line in lines)
    assert exports["AWS_ENDPOINT_URL"] == control.read_lab(cli_lab.dir)["endpoint_url"]
    assert exports["AWS_REGION"] == exports["AWS_DEFAULT_REGION"] == "ap-northeast-1"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= exports.keys()


def test_lab_down_stops_every_process_it_started(cli_lab: CliLab) -> None:
    result = cli_lab.down()
    assert result.returncode == 0, result.stderr
    assert "lab down: aws, blue, green" in result.stdout
    assert [name for name, pid in cli_lab.pids.items() if process_alive(pid)] == []
    assert_nothing_running(cli_lab.dir)
    status = status_of(cli_lab.dir)
    assert status["running"] is False
    assert not any(process["alive"] for process in status["processes"].values())


def test_lab_down_again_is_safe_and_stops_nothing(cli_lab: CliLab) -> None:
    cli_lab.down()
    again = aurora_bg("down", "--dir", str(cli_lab.dir))
    assert again.returncode == 0, again.stderr
    assert "nothing was running" in again.stdout


def test_lab_down_where_no_lab_ever_ran_is_safe(tmp_path: Path) -> None:
    result = aurora_bg("down", "--dir", str(tmp_path / "never"))
    assert result.returncode == 0, result.stderr
    assert "nothing was running" in result.stdout


def test_lab_env_without_a_lab_fails_with_one_line(tmp_path: Path) -> None:
    assert_one_clean_error_line(aurora_bg("env", "--dir", str(tmp_path / "never")))


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A lab dir PostgreSQL's OS user can reach: a postmaster started there would run in it."""
    parent = Path(tempfile.mkdtemp(prefix="aurora-bg-lifecycle-"))
    parent.chmod(0o755)
    try:
        yield parent / "lab"
    finally:
        control.down(parent / "lab")
        shutil.rmtree(parent, ignore_errors=True)


def test_lab_up_on_a_taken_port_fails_with_one_line_and_leaves_nothing_running(
    reachable_dir: Path,
) -> None:
    lab_dir = reachable_dir
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            result = aurora_bg("up", "--dir", str(lab_dir), "--port", str(port))
        finally:
            control.down(lab_dir)
    assert_one_clean_error_line(result)
    assert str(port) in result.stderr
    assert_nothing_running(lab_dir)
    assert status_of(lab_dir)["running"] is False


def test_lab_up_in_an_unwritable_dir_fails_with_one_line_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    regular_file = tmp_path / "a-file"
    regular_file.write_text("not a directory")
    lab_dir = regular_file / "lab"
    try:
        result = aurora_bg("up", "--dir", str(lab_dir))
    finally:
        control.down(lab_dir)
    assert_one_clean_error_line(result)
    assert not lab_dir.exists()
    assert control.read_lab(lab_dir) is None
    assert_nothing_running(lab_dir)
