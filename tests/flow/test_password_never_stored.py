"""The master password is never stored or shown: after a whole run through the command
line, neither the value it started with nor the one it ended with is anywhere."""

from __future__ import annotations

import json
from pathlib import Path

from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

from tests.flow.flowtools import (
    CliRun,
    all_artifacts,
    logs_of,
    write_parameters_file,
)
from tests.labtools import RunningLab


def prefect_database_files() -> list[Path]:
    """The harness's SQLite database and its journal files."""
    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    database = Path(url.split(":///", 1)[1])
    assert database.exists(), url
    return [p for p in database.parent.glob(database.name + "*") if p.is_file()]


def lab_files(lab: RunningLab) -> list[Path]:
    """Everything in the lab directory (call log, API log, lab.json, env, Terraform
    directory) and the PostgreSQL servers' logs."""
    files = [p for p in lab.dir.rglob("*") if p.is_file()]
    for server in lab.info["servers"].values():
        datadir = Path(server["datadir"])
        files += [p for p in datadir.glob("*.log") if p.is_file()]
        for logs in ("log", "pg_log"):
            files += [p for p in (datadir / logs).rglob("*") if p.is_file()]
    return files


def places_holding(values: list[str], stores: dict[str, bytes]) -> list[str]:
    return [
        f"{name} holds password #{i}"
        for name, data in stores.items()
        for i, value in enumerate(values)
        if value.encode() in data
    ]


def test_no_password_of_the_run_is_in_prefect_the_lab_or_the_command_output(
    lab: RunningLab, tmp_path: Path, prefect_api: str
) -> None:
    original = lab.master_password()
    cli = CliRun(lab, write_parameters_file(lab, tmp_path / "params.yaml"), tmp_path, prefect_api)
    try:
        code, summary = cli.finish()
    finally:
        cli.stop()
    assert code == 0 and summary and summary["state"] == "COMPLETED", cli.output()[-3000:]
    final = lab.master_password()
    assert final != original

    logs = logs_of(summary["flow_run_id"])
    artifacts = all_artifacts()
    stores = {
        "the command's output": cli.output(),
        "the flow run's logs": "\n".join(logs).encode(),
        "the artifacts": "\n".join(
            f"{a.key} {a.description} {json.dumps(a.data)}" for a in artifacts
        ).encode(),
    }
    database = {str(p): p.read_bytes() for p in prefect_database_files()}
    stores.update(database)
    stores.update({str(p): p.read_bytes() for p in lab_files(lab)})

    assert places_holding([original, final], stores) == []
    # The searches look where the run left its traces.
    assert summary["secret_arn"] in stores["the flow run's logs"].decode()
    assert any(summary["flow_run_id"].encode() in data for data in database.values())
    assert any(a.key == "provisioning-rds-report" for a in artifacts)
    assert any(p.name == "calls.jsonl" for p in lab_files(lab))
    assert any(p.name == "server.log" for p in lab_files(lab))
