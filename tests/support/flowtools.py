"""Helpers for the flow's scenario tests (tests/scenarios): run the upgrade flow against a
lab, through the Prefect API of the session's test harness, and answer its pauses as a
person would.

`FlowInThread` runs the flow in a thread of this process (so a test can read AWS
and PostgreSQL while the run is paused) and resumes each pause with
`resume_flow_run` and the approval form's input. `CliRun` runs `aurora-bg run`
in a subprocess, for the tests that kill it or read what it prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.flow_runs import resume_flow_run

from aurora_bg.params import UpgradeParameters
from lab import control
from lab.harness import SOURCE_VERSION, RunningLab, wait_for
from tests.support.labtools import assert_nothing_running

REPO = Path(__file__).resolve().parents[2]
LAB_PARAMETERS_FILE = REPO / "deployments" / "lab.yaml"
AURORA_BG = Path(sys.executable).parent / "aurora-bg"
CLUSTER_ID = "provisioning-rds"
HELD_SECRET = f"aurora-bg/{CLUSTER_ID}/master-password"
BLUE_CLUSTER_GROUP = "test-aurora-postgresql15-cluster"
BLUE_INSTANCE_GROUP = "test-aurora-postgresql15-instance"
ARTIFACT_KINDS_OF_A_FULL_RUN = (
    "preflight",
    "password-mode",
    "blue-green",
    "green-validation",
    "pre-switchover",
    "switchover",
    "post-switchover",
    "cleanup",
    "terraform-plan",
    "report",
)
PAUSE_WAIT_S = 120.0
RUN_WAIT_S = 240.0


# --- parameters ----------------------------------------------------------------


def lab_parameter_data(lab: RunningLab) -> dict[str, Any]:
    """deployments/lab.yaml as data, without the Terraform phase.

    The scenarios here are about AWS, PostgreSQL and the Prefect API; the
    Terraform phase has its own tests (tests/terraform) and needs a terraform
    executable matching the lab's state, so it is switched off here.
    """
    data = yaml.safe_load(LAB_PARAMETERS_FILE.read_text()) or {}
    data["terraform"] = {"enabled": False}
    return data


def lab_parameters(lab: RunningLab, **overrides: Any) -> UpgradeParameters:
    """The lab's parameters with `overrides`, validated as the Prefect form would."""
    return UpgradeParameters.model_validate({**lab_parameter_data(lab), **overrides})


def write_parameters_file(lab: RunningLab, path: Path) -> Path:
    """The lab's parameters as a YAML file for `aurora-bg run --params-file`."""
    path.write_text(yaml.safe_dump(lab_parameter_data(lab)))
    return path


# --- labs ---------------------------------------------------------------------------


class LabSupply:
    """Fresh labs, the next one-instance lab starting in the background while a test runs.

    Every test still gets a lab nobody used, and stops it when it ends; it only does not
    wait the seconds the lab takes to start. The same checks as `checked_lab` apply:
    after `lab down`, nothing the lab started may still run.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._count = 0
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="lab-supply")
        self._next: Future[dict[str, Any]] | None = None

    def _new_dir(self) -> Path:
        self._count += 1
        return self._root / f"lab-{self._count}"

    def prepare(self) -> None:
        """Start the next one-instance lab in the background (if none is on its way)."""
        if self._next is None:
            self._next = self._starter.submit(control.up, self._new_dir(), 1, 0.0)

    @contextmanager
    def lab(self, instances: int = 1) -> Iterator[RunningLab]:
        """A fresh lab for the duration of the block; stopped (and checked) on exit."""
        if instances == 1 and self._next is not None:
            pending, self._next = self._next, None
            info = pending.result()
        else:
            info = control.up(self._new_dir(), instances, 0.0)
        lab_dir = Path(info["lab_dir"])
        try:
            assert not info.get("already_running"), f"a lab already runs in {lab_dir}"
            self.prepare()
            yield RunningLab(info=info, dir=lab_dir)
        finally:
            control.down(lab_dir)
            assert_nothing_running(lab_dir)

    def close(self) -> None:
        """Stop the lab started for a test that never came."""
        pending, self._next = self._next, None
        if pending is not None:
            with suppress(Exception):
                control.down(Path(pending.result()["lab_dir"]))
        self._starter.shutdown(wait=True)


# --- the flow in a thread ----------------------------------------------------------


class FlowInThread:
    """One run of the upgrade flow in a thread, found in the API by a tag of its own."""

    def __init__(self, params: UpgradeParameters) -> None:
        from flows.upgrade import aurora_blue_green_upgrade

        self.params = params
        self.tag = f"test-{uuid.uuid4().hex}"
        self.state: State | None = None
        self.error: BaseException | None = None
        self.answered: list[str] = []
        self.resumed_at: list[float] = []
        self._flow = aurora_blue_green_upgrade
        self._thread = threading.Thread(target=self._run, name=self.tag, daemon=True)

    def _run(self) -> None:
        try:
            with tags(self.tag):
                self.state = self._flow(self.params, return_state=True)
        except BaseException as error:  # reported by `finish`
            self.error = error

    def start(self) -> FlowInThread:
        self._thread.start()
        return self

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    def flow_run(self) -> FlowRun:
        """The flow run as the API sees it now."""
        return wait_for(lambda: flow_run_tagged(self.tag), 30, what=f"flow run tagged {self.tag}")

    @property
    def id(self) -> uuid.UUID:
        return self.flow_run().id

    def wait_paused(self, timeout: float = PAUSE_WAIT_S) -> FlowRun:
        """Wait for a pause not yet answered; fail at once if the run ends instead."""

        def paused() -> FlowRun | None:
            if not self.is_running:
                state = self.state or self.error
                raise AssertionError(f"the run ended instead of pausing: {state}")
            run = flow_run_tagged(self.tag)
            if run is None or run.state is None or not run.state.is_paused():
                return None
            return run if self._pause_key(run) not in self.answered else None

        return wait_for(paused, timeout, what="the next pause")

    def answer(self, decision: str, comment: str = "", timeout: float = 30.0) -> float:
        """Resume the current pause with the approval form; returns when it was sent.

        The run registers its form's schema just after it turns Paused; until
        then the API refuses input, so the answer is retried for a moment.
        """
        run = self.wait_paused()
        key = self._pause_key(run)
        deadline = time.monotonic() + timeout
        while True:
            sent = time.time()
            try:
                resume_flow_run(run.id, run_input={"decision": decision, "comment": comment})
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            self.answered.append(key)
            self.resumed_at.append(sent)
            return sent

    def finish(self, timeout: float = RUN_WAIT_S) -> State:
        """The run's final state, once the flow returned."""
        self._thread.join(timeout)
        assert not self.is_running, f"the run did not end within {timeout} s"
        if self.error is not None:
            raise self.error
        assert self.state is not None
        return self.state

    def abandon(self) -> None:
        """Reject whatever pause the run waits in, so a failed test leaves no run behind."""
        deadline = time.monotonic() + 60
        while self.is_running and time.monotonic() < deadline:
            run = flow_run_tagged(self.tag)
            if run is not None and run.state is not None and run.state.is_paused():
                with suppress(Exception):
                    resume_flow_run(run.id, run_input={"decision": "reject", "comment": "abandon"})
            self._thread.join(1.0)

    @staticmethod
    def _pause_key(run: FlowRun) -> str:
        return str(run.state.state_details.pause_key) if run.state else ""


@contextmanager
def flow_in_thread(params: UpgradeParameters) -> Iterator[FlowInThread]:
    """Start the flow in a thread; on the way out, never leave it paused."""
    run = FlowInThread(params).start()
    try:
        yield run
    finally:
        run.abandon()


def run_flow(params: UpgradeParameters, *answers: str) -> FlowInThread:
    """Run the flow to its end, answering the pauses in order ("approve"/"reject")."""
    with flow_in_thread(params) as run:
        for answer in answers:
            run.answer(answer, f"{answer} from the scenario tests")
        run.finish()
    return run


def flow_run_tagged(tag: str) -> FlowRun | None:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
        )
    return runs[0] if runs else None


# --- what a run left in the API ------------------------------------------------------


def artifacts_of(flow_run_id: uuid.UUID | str) -> dict[str, Any]:
    """The run's keyed artifacts, the latest version of each key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(flow_run_id))])
            )
        )
    latest: dict[str, Any] = {}
    for artifact in sorted(found, key=lambda a: a.created):
        if artifact.key:
            latest[artifact.key] = artifact
    return latest


def all_artifacts() -> list[Any]:
    """Every artifact the API holds (every version, keyed or not)."""
    found, offset = [], 0
    with get_client(sync_client=True) as client:
        while page := client.read_artifacts(limit=200, offset=offset):
            found += page
            offset += len(page)
    return found


def table_rows(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def logs_of(flow_run_id: uuid.UUID | str, timeout: float = 15.0) -> list[str]:
    """The messages the run logged to the API, once its final "Finished" line arrived."""
    run_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(str(flow_run_id))]))

    def read() -> list[str]:
        messages, offset = [], 0
        with get_client(sync_client=True) as client:
            while page := client.read_logs(log_filter=run_filter, limit=200, offset=offset):
                messages += [log.message for log in page]
                offset += len(page)
        return messages

    def finished() -> list[str] | None:
        messages = read()
        return messages if any(m.startswith("Finished in state") for m in messages) else None

    return wait_for(
        finished, timeout, interval=0.5, what=f"the final log line of flow run {flow_run_id}"
    )


# --- AWS views ----------------------------------------------------------------------


def deployments(lab: RunningLab) -> list[dict[str, Any]]:
    return lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"]


def secret_exists(lab: RunningLab, name: str) -> bool:
    try:
        lab.sm.describe_secret(SecretId=name)
    except lab.sm.exceptions.ResourceNotFoundException:
        return False
    return True


def instance_group(lab: RunningLab, instance_id: str) -> str:
    return lab.instance(instance_id)["DBParameterGroups"][0]["DBParameterGroupName"]


def calls_named(lab: RunningLab, action: str, since: float = 0.0) -> list[dict[str, Any]]:
    return [c for c in lab.calls(since) if c["action"] == action]


def can_write(lab: RunningLab, password: str) -> bool:
    """Blue takes a committed write through the cluster endpoint."""
    with lab.connect_cluster(CLUSTER_ID, password) as conn:
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('tests', 'write probe')")
        return (
            conn.execute("SELECT count(*) FROM audit_log WHERE action = 'write probe'").fetchone()[
                0
            ]
            > 0
        )


def assert_blue_as_before(lab: RunningLab) -> None:
    """Blue exactly as the lab started it: what every way out before the switchover leaves."""
    cluster = lab.cluster()
    assert cluster["EngineVersion"] == SOURCE_VERSION
    assert cluster["DBClusterParameterGroup"] == BLUE_CLUSTER_GROUP
    assert instance_group(lab, "rds-1") == BLUE_INSTANCE_GROUP
    assert cluster.get("MasterUserSecret", {}).get("SecretStatus") == "active"
    with lab.connect_cluster(CLUSTER_ID, lab.master_password()) as conn:
        assert (
            conn.execute("SHOW server_version")
            .fetchone()[0]
            .startswith(SOURCE_VERSION.split(".")[0])
        )
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert lab.instance_ids() == {"rds-1"}
    assert deployments(lab) == []
    assert not secret_exists(lab, HELD_SECRET)


# --- the command line in a subprocess -------------------------------------------------


class CliRun:
    """`aurora-bg run [--auto-approve] --json` in a subprocess against a lab and the harness."""

    def __init__(
        self,
        lab: RunningLab,
        params_file: Path,
        out_dir: Path,
        api_url: str,
        auto_approve: bool = True,
    ) -> None:
        """`auto_approve=False` leaves the pauses to the test (to answer or to kill into)."""
        self.lab = lab
        self.started = datetime.now(UTC)
        self.answered: set[str] = set()
        out_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = out_dir / f"cli-{uuid.uuid4().hex[:8]}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        env = {
            **os.environ,
            **lab.env,
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    str(AURORA_BG),
                    "run",
                    "--params-file",
                    str(params_file),
                    *(["--auto-approve"] if auto_approve else []),
                    "--json",
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def kill_after(self, action: str, timeout: float = RUN_WAIT_S) -> dict[str, Any]:
        """SIGKILL the process as soon as the lab logged `action` (the call has returned)."""
        since = time.time() - 1

        def logged() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the run exited ({self.process.returncode}) before {action}")
            found = [c for c in self.lab.calls(since) if c["action"] == action]
            return found[0] if found else None

        entry = wait_for(logged, timeout, interval=0.02, what=f"{action} in the call log")
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        return entry

    def wait_paused(self, timeout: float = PAUSE_WAIT_S) -> FlowRun:
        """The run waiting in a pause not yet answered (only runs started by this command:
        a killed run stays Paused in the API for ever)."""
        paused_since = FlowRunFilter(
            start_time=FlowRunFilterStartTime(after_=self.started),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
        )

        def paused() -> FlowRun | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the run exited ({self.process.returncode}) before pausing")
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_run_filter=paused_since)
            fresh = [r for r in runs if FlowInThread._pause_key(r) not in self.answered]
            return fresh[0] if fresh else None

        return wait_for(paused, timeout, interval=0.1, what="the run paused")

    def answer(self, run: FlowRun, decision: str, comment: str = "from the tests") -> None:
        """Resume the pause as a person would; the run registers its form a moment after
        it turns Paused, so the answer is retried until the API takes it."""
        deadline = time.monotonic() + 30
        while True:
            try:
                resume_flow_run(run.id, run_input={"decision": decision, "comment": comment})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.answered.add(FlowInThread._pause_key(run))

    def finish(self, timeout: float = RUN_WAIT_S) -> tuple[int, dict[str, Any] | None]:
        """Exit code and the JSON summary printed on stdout (None when there is none)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError(f"aurora-bg run did not end within {timeout} s") from None
        return code, self.summary()

    def summary(self) -> dict[str, Any] | None:
        text = self.stdout_path.read_text(errors="replace")
        start = text.find("{\n")
        return json.loads(text[start : text.rindex("}") + 1]) if start >= 0 else None

    def output(self) -> bytes:
        return self.stdout_path.read_bytes() + self.stderr_path.read_bytes()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
