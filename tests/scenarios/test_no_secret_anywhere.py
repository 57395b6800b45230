"""No secret anywhere: after a happy path (with the Terraform phase), a way out (reject at
the first pause) and a crash followed by a rerun, none of the master password values
that existed on the way is in any store.

The values are collected through the lab's clients while the runs go: the managed
secret's value before each run, the held secret's value while the password is out of
Secrets Manager, and the managed secret's value each run ended with. The stores: the
Prefect server's database files, every flow-run log and artifact in its API, what the
command-line processes wrote locally (their Prefect home, where results would be
stored), their stdout and stderr, each lab's directory (call log, AWS API log,
Terraform files, state and its backups) and the PostgreSQL servers' logs.

The command-line processes run with DEBUG logging forced on: Prefect's loggers, its root
logger and its handlers at DEBUG, and botocore's, boto3's and urllib3's records sent to
Prefect's handlers (console and API), where botocore would log each request's body.

A search over nothing proves nothing: the test also checks that it found the files it
must search, and that a value planted in the database and a PostgreSQL log is found.
(tests/unit/test_aws_log_guard.py shows that the same logging setup without the guard
does log the password.)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

from lab.harness import SOURCE_VERSION, TARGET_VERSION, RunningLab
from tests.support.flowtools import (
    CLUSTER_ID,
    HELD_SECRET,
    CliRun,
    LabSupply,
    all_artifacts,
    lab_parameter_data,
)


@dataclass
class Evidence:
    """Every password value seen, and every store to search, by a readable name."""

    passwords: dict[str, str] = field(default_factory=dict)
    stores: dict[str, bytes] = field(default_factory=dict)

    def saw(self, name: str, value: str) -> None:
        assert value, name
        self.passwords[name] = value

    def keep_files(self, label: str, files: list[Path]) -> None:
        for path in files:
            self.stores[f"{label}: {path}"] = path.read_bytes()

    def holding(self, values: dict[str, str]) -> list[str]:
        """'<store> holds <value name>' for each value found in each store."""
        return [
            f"{store} holds {name}"
            for store, data in self.stores.items()
            for name, value in values.items()
            if value.encode() in data
        ]


# --- where the values are -------------------------------------------------------------


def managed_password(lab: RunningLab) -> str:
    return lab.master_password()


def held_password(lab: RunningLab) -> str:
    value = lab.sm.get_secret_value(SecretId=HELD_SECRET)["SecretString"]
    return json.loads(value)["password"]


# --- where to look ----------------------------------------------------------------------


def prefect_database_files() -> list[Path]:
    """The server's SQLite database and its journal files."""
    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    database = Path(url.split(":///", 1)[1])
    return [p for p in database.parent.glob(database.name + "*") if p.is_file()]


def lab_files(lab: RunningLab) -> list[Path]:
    """The lab directory (call log, AWS API log, lab.json, Terraform directory with its
    state and backups) and the PostgreSQL servers' logs, wherever their data dirs are."""
    files = {p for p in lab.dir.rglob("*") if p.is_file()}
    for server in lab.info["servers"].values():
        datadir = Path(server["datadir"])
        files |= {p for p in datadir.glob("*.log") if p.is_file()}
        for logs in ("log", "pg_log"):
            files |= {p for p in (datadir / logs).rglob("*") if p.is_file()}
    return sorted(files)


def all_logs() -> list[str]:
    """Every log line the Prefect API holds, of every run."""
    messages, offset = [], 0
    with get_client(sync_client=True) as client:
        while page := client.read_logs(limit=200, offset=offset):
            messages += [log.message for log in page]
            offset += len(page)
    return messages


# --- the three paths -----------------------------------------------------------------------


def write_params(lab: RunningLab, path: Path, terraform: bool = False) -> Path:
    data = lab_parameter_data(lab)
    if terraform:  # the lab's Terraform directory and executable, as `aurora-bg demo` does
        data["terraform"] = {
            "enabled": True,
            "working_dir": lab.info["terraform_dir"],
            "terraform_bin": lab.info["terraform_bin"],
            "apply": True,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def finished(cli: CliRun, evidence: Evidence, label: str) -> tuple[int, dict[str, Any] | None]:
    try:
        code, summary = cli.finish()
    finally:
        cli.stop()
    evidence.stores[f"{label}: stdout and stderr"] = cli.output()
    return code, summary


def happy_path_with_terraform(lab: RunningLab, out: Path, api: str, evidence: Evidence) -> None:
    evidence.saw("happy: managed before", managed_password(lab))
    cli = CliRun(lab, write_params(lab, out / "p.yaml", True), out, api, auto_approve=False)
    cli.answer(cli.wait_paused(), "approve")
    evidence.saw("happy: held", held_password(lab))
    cli.answer(cli.wait_paused(), "approve")
    code, summary = finished(cli, evidence, "happy path")
    assert code == 0 and summary and summary["state"] == "COMPLETED", cli.output()[-3000:]
    assert lab.cluster(CLUSTER_ID)["EngineVersion"] == TARGET_VERSION
    evidence.saw("happy: managed after", managed_password(lab))
    terraform = Path(lab.info["terraform_dir"])
    assert list(terraform.glob("terraform.tfstate.backup-*")), "the phase kept no state backup"


def way_out_at_pause_1(lab: RunningLab, out: Path, api: str, evidence: Evidence) -> None:
    evidence.saw("way out: managed before", managed_password(lab))
    cli = CliRun(lab, write_params(lab, out / "p.yaml"), out, api, auto_approve=False)
    paused = cli.wait_paused()
    evidence.saw("way out: held", held_password(lab))
    cli.answer(paused, "reject", "the no-secret test takes the way out")
    code, summary = finished(cli, evidence, "way out")
    assert code != 0 and summary and summary["state"] != "COMPLETED", cli.output()[-3000:]
    assert lab.cluster(CLUSTER_ID)["EngineVersion"] == SOURCE_VERSION
    evidence.saw("way out: managed after", managed_password(lab))


def crash_then_rerun(lab: RunningLab, out: Path, api: str, evidence: Evidence) -> None:
    evidence.saw("crash: managed before", managed_password(lab))
    params = write_params(lab, out / "p.yaml")
    first = CliRun(lab, params, out / "first", api)
    try:
        first.kill_after("CreateBlueGreenDeployment")
    finally:
        first.stop()
    evidence.stores["crash: killed run's stdout and stderr"] = first.output()
    evidence.saw("crash: held", held_password(lab))
    code, summary = finished(CliRun(lab, params, out / "second", api), evidence, "crash rerun")
    assert code == 0 and summary and summary["state"] == "COMPLETED"
    evidence.saw("crash: managed after", managed_password(lab))


# --- the test ------------------------------------------------------------------------------


@pytest.fixture
def local_prefect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the command-line processes keep their Prefect files (results included)."""
    home = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.setenv("PREFECT_LOCAL_STORAGE_PATH", str(home / "storage"))
    monkeypatch.setenv("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")  # were anything kept
    yield home


@pytest.fixture
def debug_logging_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command-line processes log at DEBUG everywhere, the AWS libraries included,
    to the console and to the Prefect API (settings Prefect reads from the environment)."""
    for variable, value in {
        "PREFECT_LOGGING_LEVEL": "DEBUG",
        "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "DEBUG",
        "PREFECT_LOGGING_HANDLERS_API_LEVEL": "DEBUG",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "botocore,boto3,urllib3",
    }.items():
        monkeypatch.setenv(variable, value)


def test_no_password_value_of_any_path_is_in_any_store(
    lab_supply: LabSupply,
    prefect_api: str,
    local_prefect_home: Path,
    debug_logging_forced: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evidence = Evidence()
    lab_file_count = 0
    for name, path in (
        ("happy", happy_path_with_terraform),
        ("way-out", way_out_at_pause_1),
        ("crash", crash_then_rerun),
    ):
        with lab_supply.lab() as lab:
            for variable, value in lab.env.items():
                monkeypatch.setenv(variable, value)
            path(lab, tmp_path / name, prefect_api, evidence)
            canary_in_postgres = plant_in_a_postgres_log(lab)
            files = lab_files(lab)
            names = {p.name for p in files}
            assert {"calls.jsonl", "aws-api.log", "server.log"} <= names, names
            evidence.keep_files(f"{name} lab", files)
            lab_file_count += len(files)

    database = prefect_database_files()
    assert database, PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    canary_in_prefect = plant_in_an_artifact()
    evidence.keep_files("Prefect database", prefect_database_files())
    evidence.keep_files(
        "command-line Prefect home", sorted(p for p in local_prefect_home.rglob("*") if p.is_file())
    )
    logs = all_logs()
    artifacts = all_artifacts()
    evidence.stores["Prefect API: every log line"] = "\n".join(logs).encode()
    evidence.stores["Prefect API: every artifact"] = "\n".join(
        f"{a.key} {a.description} {json.dumps(a.data)}" for a in artifacts
    ).encode()

    # Each lab starts with its own value and ends with a new one (the held value is the one
    # it started with): six different values, none of them anywhere.
    assert len(set(evidence.passwords.values())) == 6, sorted(evidence.passwords)
    assert evidence.holding(evidence.passwords) == []

    # The search looked where the runs left their traces, and finds what is there.
    assert lab_file_count > 0 and len(artifacts) > 10
    assert any(HELD_SECRET in line for line in logs)  # the password phases' own lines
    assert any(a.key == f"{CLUSTER_ID}-terraform-plan" for a in artifacts)
    assert any(".tfstate" in store for store in evidence.stores)
    found = evidence.holding({"canary in Prefect": canary_in_prefect})
    assert any(place.startswith("Prefect database") for place in found), found
    assert any(place.startswith("Prefect API: every artifact") for place in found), found
    found = evidence.holding({"canary in PostgreSQL": canary_in_postgres})
    assert any("crash lab" in place and "server.log" in place for place in found), found


def plant_in_an_artifact() -> str:
    """A value the search must find in the server's database (proves it reads SQLite)."""
    canary = f"canary-{secrets.token_hex(12)}"
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(key="no-secret-canary", type="markdown", data=canary, description=canary)
        )
    return canary


def plant_in_a_postgres_log(lab: RunningLab) -> str:
    """A value the search must find in a PostgreSQL log: a failing statement is logged."""
    canary = f"canary_{secrets.token_hex(12)}"
    with (
        lab.connect_cluster(CLUSTER_ID, lab.master_password()) as conn,
        pytest.raises(psycopg.errors.UndefinedColumn),
    ):
        conn.execute(f"SELECT {canary}")
    return canary
