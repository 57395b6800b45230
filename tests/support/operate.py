"""Operating the flow from a real Prefect server, as a person would: helpers for the tests.

A `Worker` is `prefect worker start --pool aurora-bg --type process` with the
lab's AWS environment and the checkout in its environment; stopping it stops
every process it started (flow runs included). The other helpers read and
answer flow runs through the API only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flow_runs import resume_flow_run

from aurora_bg.params import UpgradeParameters
from lab import control
from lab.harness import RunningLab, wait_for

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
AURORA_BG = str(Path(sys.executable).parent / "aurora-bg")
POOL = "aurora-bg"
FLOW = "aurora-blue-green-upgrade"
PAUSE_WAIT_S = 120.0
RUN_WAIT_S = 180.0
TERMINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
ENVIRONMENT_SCHEDULE = {"cron": "30 2 * * 0", "timezone": "Asia/Tokyo"}  # Sundays 02:30
SCREENSHOTS = REPO / "test-output"


@dataclass
class PrefectServer:
    """The session's `prefect server start` (tests/prefect_ui/conftest.py)."""

    api_url: str
    ui_url: str
    pid: int


@dataclass
class Webhook:
    """An HTTP listener on 127.0.0.1 that keeps the body of every POST."""

    url: str
    received: list[str] = field(default_factory=list)


def lab_parameter_data() -> dict[str, Any]:
    """deployments/lab.yaml as data, without the Terraform phase (tested in tests/terraform)."""
    data = yaml.safe_load((REPO / "deployments" / "lab.yaml").read_text()) or {}
    data["terraform"] = {"enabled": False}
    return data


def form(**overrides: Any) -> dict[str, Any]:
    """The run parameters as the UI's form sends them: every field, defaults included."""
    params = UpgradeParameters.model_validate({**lab_parameter_data(), **overrides})
    return {"parameters": params.model_dump(mode="json")}


# --- processes -----------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(") ", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_tree(pid: int, grace: float = 15.0) -> list[int]:
    """SIGTERM `pid` and everything below it, SIGKILL what outlives `grace`; returns survivors."""
    tree = [pid, *descendants(pid)]
    for member in tree:
        with suppress(ProcessLookupError):
            os.kill(member, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(control.is_alive(p) for p in tree):
        time.sleep(0.1)
    for member in tree:
        if control.is_alive(member):
            with suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
    time.sleep(0.2)
    return [p for p in tree if control.is_alive(p)]


class Worker:
    """A process worker of the `aurora-bg` pool whose environment points at `lab`."""

    def __init__(self, api_url: str, lab: RunningLab, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "worker.log"
        env = {
            **os.environ,
            **lab.env,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",  # pick runs up within a second
            "AURORA_BG_CHECKOUT": str(REPO),
        }
        self.process = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", POOL, "--type", "process"],
            env=env,
            cwd=home,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        survivors = stop_tree(self.process.pid)
        self.process.wait(timeout=5)
        assert not survivors, f"still running after the worker stopped: {survivors}"


# --- flow runs through the API ----------------------------------------------------------


def read_run(run_id: uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def start_run(deployment: str, parameters: dict[str, Any], **options: Any) -> uuid.UUID:
    """Create a run of `deployment` with JSON parameters, as the UI's Run button does."""
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(f"{FLOW}/{deployment}")
        run = client.create_flow_run_from_deployment(found.id, parameters=parameters, **options)
    return run.id


def wait_paused(run_id: uuid.UUID, pause: int, worker: Worker | None = None) -> FlowRun:
    """Wait until the run waits in its `pause`-th pause; fail at once if it ends instead."""

    def paused() -> FlowRun | None:
        run = read_run(run_id)
        state = run.state
        if state is not None and state.type in TERMINAL:
            tail = worker.log_tail() if worker else ""
            raise AssertionError(f"run ended {state.type.value}: {state.message}\n{tail}")
        if state is not None and state.is_paused() and state.state_details.pause_key == str(pause):
            return run
        return None

    return wait_for(paused, PAUSE_WAIT_S, interval=0.5, what=f"pause {pause} of run {run_id}")


def answer(run_id: uuid.UUID, decision: str, comment: str = "", timeout: float = 30.0) -> None:
    """Resume the paused run with the approval form's input (retried until the form exists)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resume_flow_run(run_id, run_input={"decision": decision, "comment": comment})
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def pause_description(run_id: uuid.UUID, pause: int) -> str:
    """The description the paused run shows above its form."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run_input(flow_run_id=run_id, key=f"paused-{pause}-description")


def wait_ended(run_id: uuid.UUID, worker: Worker | None = None) -> FlowRun:
    def ended() -> FlowRun | None:
        run = read_run(run_id)
        return run if run.state is not None and run.state.type in TERMINAL else None

    try:
        return wait_for(ended, RUN_WAIT_S, interval=0.5, what=f"the end of run {run_id}")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{worker.log_tail() if worker else ''}") from None


def flow_logs(run_id: uuid.UUID) -> list[str]:
    """Every log message of the run so far, all pages of them."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    page_size, messages = 200, []
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_logs(log_filter=log_filter, limit=page_size, offset=len(messages))
            messages += [log.message for log in page]
            if len(page) < page_size:
                return messages


def wait_for_log(run_id: uuid.UUID, text: str, timeout: float = 30) -> list[str]:
    """The run's messages once one of them contains `text` (runs ship logs in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        messages = flow_logs(run_id)
        if any(text in message for message in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def artifact_text(key: str, run_id: uuid.UUID) -> str:
    """The data of the artifact `key` that run `run_id` published."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            )
        )
    return "\n".join(str(a.data) for a in found)


def registered_deployments() -> list[tuple[str, str]]:
    """(name, updated) of every deployment on the server."""
    with get_client(sync_client=True) as client:
        return sorted((d.name, str(d.updated)) for d in client.read_deployments())


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AURORA_BG, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
