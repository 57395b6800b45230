"""The whole flow on the lab: approval-to-switchover latency and orchestration overhead.

Each run is `aurora-bg run --json` in a subprocess against a fresh lab and a
Prefect server, as an operator would start it (Terraform off, no delays).
Approvals go through the Prefect API, as the UI sends them; with
`--auto-approve` the command line answers them itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from benchmarks.processes import run_process
from lab.harness import CLUSTER_ID, RunningLab, running_lab

REPO = Path(__file__).resolve().parent.parent
AURORA_BG = Path(sys.executable).parent / "aurora-bg"
RUN_LIMIT_S = 600
PAUSE_LIMIT_S = 300
# the flow's timeline: | phase | start | end | 1.2 s | outcome | what and why |
TIMELINE_ROW = re.compile(r"^\| (?P<phase>[^|]+?) \| [^|]+ \| [^|]+ \| (?P<seconds>[\d.]+) s \|")
# the flow's clean-up phases, summed to compare with the reference's one
CLEAN_UP = {"tag old blue", "delete deployment", "delete old blue"}


def parameters_file(work_dir: Path) -> Path:
    """deployments/lab.yaml without the Terraform phase (it has its own benchmarks: none)."""
    data = yaml.safe_load((REPO / "deployments" / "lab.yaml").read_text())
    data["terraform"] = {"enabled": False}
    path = work_dir / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def environment(lab: RunningLab, api_url: str) -> dict[str, str]:
    return {
        **os.environ,
        **lab.env,
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def summary_of(stdout: str) -> dict[str, Any]:
    start = stdout.find("{\n")
    if start < 0:
        raise RuntimeError(f"aurora-bg run printed no summary: {stdout[-500:]}")
    return json.loads(stdout[start : stdout.rindex("}") + 1])


def flow_timeline(api_url: str, flow_run_id: str) -> dict[str, float]:
    """Seconds per phase from the run's `<cluster>-report` artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"{CLUSTER_ID}-report"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]),
            )
        )
    phases: dict[str, float] = {}
    for line in str(found[0].data).splitlines():
        match = TIMELINE_ROW.match(line)
        if match and match["phase"] != "phase":
            name = "clean-up" if match["phase"] in CLEAN_UP else match["phase"]
            phases[name] = phases.get(name, 0.0) + float(match["seconds"])
    return phases


def overhead_once(work_dir: Path, api_url: str, index: int) -> dict[str, Any]:
    """The flow with --auto-approve and the plain reference, each on a fresh lab."""
    params = parameters_file(work_dir)
    log = work_dir / "runs.log"
    with running_lab(work_dir / f"flow-{index}") as lab:
        done = run_process(
            [str(AURORA_BG), "run", "--params-file", str(params), "--auto-approve", "--json"],
            environment(lab, api_url),
            log,
            RUN_LIMIT_S,
        )
        summary = summary_of(done["stdout"])
        if summary["state"] != "COMPLETED":
            raise RuntimeError(f"the flow ended {summary['state']}: {summary['message']}")
        flow_calls = len(lab.calls())
        phases = flow_timeline(api_url, summary["flow_run_id"])
    with running_lab(work_dir / f"reference-{index}") as lab:
        reference = run_process(
            [sys.executable, "-m", "benchmarks.reference"],
            {**os.environ, **lab.env},
            log,
            RUN_LIMIT_S,
        )
        if reference["code"] != 0:
            raise RuntimeError(f"the reference failed; see {log}")
        measured = json.loads(reference["stdout"])
        reference_calls = len(lab.calls())
    return {
        "flow_wall": done["seconds"],
        "flow_run": summary["seconds"],
        "flow_phases": phases,
        "flow_calls": flow_calls,
        "reference_wall": reference["seconds"],
        "reference_phases": measured["phases"],
        "reference_calls": reference_calls,
    }


def _paused_run(api_url: str, answered: set[str]) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    deadline = time.monotonic() + PAUSE_LIMIT_S
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            for run in client.read_flow_runs(flow_run_filter=paused):
                if f"{run.id}:{run.state.state_details.pause_key}" not in answered:
                    return run
            time.sleep(0.05)
    raise RuntimeError(f"no paused run within {PAUSE_LIMIT_S} s")


def _approve(api_url: str, run: Any) -> float:
    """Resume `run` with an approval as the UI would; returns when the accepted call began.

    The run registers its form just after it turns Paused; until then the API
    refuses input, so the answer is retried for a moment.
    """
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + 30
    with temporary_settings({PREFECT_API_URL: api_url}):
        while True:
            sent = time.time()
            try:
                resume_flow_run(run.id, run_input={"decision": "approve", "comment": "bench"})
                return sent
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def approval_once(work_dir: Path, api_url: str, index: int) -> float:
    """Seconds from the switchover approval to SwitchoverBlueGreenDeployment in the call log."""
    params = parameters_file(work_dir)
    with running_lab(work_dir / f"approval-{index}") as lab:
        env = environment(lab, api_url)
        log = (work_dir / "runs.log").open("ab")
        process = subprocess.Popen(
            [str(AURORA_BG), "run", "--params-file", str(params), "--json"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            answered: set[str] = set()
            sent = 0.0
            for _ in ("green validated", "approve switchover"):
                run = _paused_run(api_url, answered)
                sent = _approve(api_url, run)
                answered.add(f"{run.id}:{run.state.state_details.pause_key}")
            deadline = time.monotonic() + PAUSE_LIMIT_S
            while time.monotonic() < deadline:
                calls = lab.calls(sent)
                found = [c for c in calls if c["action"] == "SwitchoverBlueGreenDeployment"]
                if found:
                    latency = found[0]["time"] - sent
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("no switchover call after the approval")
            process.wait(timeout=RUN_LIMIT_S)
            return latency
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            log.close()
