"""The crash matrix: `aurora-bg run` killed (SIGKILL) at every phase boundary and in the
middle of every long wait, then run again with the same parameters.

The test is black-box: it watches the lab's call log and kills the process as soon as
the triggering call has returned, or watches the Prefect API and kills it while the run
waits in a pause. A wait is made long enough to kill into with the lab's provisioning
delay, and the switchover with a write transaction held open on blue (the switchover
waits for blue's open writes, as on Aurora). Nothing in the product knows about crashes.

Every rerun completes, and the call log shows that the whole story created one
deployment, switched the password out and back at most once each and switched over
at most once. Between the kill and the rerun, the safety net holds: before the
switchover blue takes writes with a password that can be read; after it, the new
production cluster answers with a password that can be read.

Each case adds a row to docs/crash-matrix.md (written once the whole matrix ran).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lab.harness import SOURCE_VERSION, TARGET_VERSION, RunningLab, wait_for
from tests.support.doc_tables import DocTable
from tests.support.flowtools import (
    CLUSTER_ID,
    HELD_SECRET,
    RUN_WAIT_S,
    CliRun,
    can_write,
    deployments,
    secret_exists,
    write_parameters_file,
)

PROVISIONING_DELAY_S = 40.0  # long enough to kill into the wait and rerun before it ends

Call = dict[str, Any]


# --- what the call log says -----------------------------------------------------------


def is_action(action: str) -> Callable[[Call], bool]:
    return lambda call: call["action"] == action


def is_password_switch(managed: bool) -> Callable[[Call], bool]:
    """ModifyDBCluster turning the managed master password off (out) or on (back)."""
    flag = "true" if managed else "false"
    return lambda call: (
        call["action"] == "ModifyDBCluster"
        and call["params"].get("ManageMasterUserPassword") == flag
    )


def is_held_secret(action: str) -> Callable[[Call], bool]:
    """`action` (CreateSecret, DeleteSecret) on the secret that holds the password meanwhile."""
    return lambda call: (
        call["action"] == action
        and HELD_SECRET
        in (
            call["params"].get("Name"),
            call["params"].get("SecretId"),
        )
    )


@dataclass
class Counts:
    """What the whole story (first run and rerun) did, from the lab's call log."""

    creates: int
    switchovers: int
    password_out: int
    password_back: int

    @classmethod
    def of(cls, calls: list[Call]) -> Counts:
        def count(matches: Callable[[Call], bool]) -> int:
            return sum(1 for call in calls if matches(call))

        return cls(
            creates=count(is_action("CreateBlueGreenDeployment")),
            switchovers=count(is_action("SwitchoverBlueGreenDeployment")),
            password_out=count(is_password_switch(managed=False)),
            password_back=count(is_password_switch(managed=True)),
        )


# --- the kill points ------------------------------------------------------------------

BEFORE, DURING, AFTER = "before the switchover", "during the switchover", "after the switchover"


@dataclass(frozen=True)
class KillPoint:
    """Where the first run dies: once `trigger` has been logged `nth` times (after
    `then_polls` more DescribeBlueGreenDeployments), or while it waits in pause `pause`."""

    name: str
    phase: str
    side: str
    trigger: Callable[[Call], bool] | None = None
    nth: int = 1
    then_polls: int = 0
    pause: int | None = None
    provisioning_delay: float = 0.0
    hold_switchover: bool = False
    expect_status: str | None = None  # the deployment's status at the kill, where it matters


KILL_POINTS = (
    KillPoint(
        "after CreateSecret of the held password",
        "password out",
        BEFORE,
        is_held_secret("CreateSecret"),
    ),
    KillPoint(
        "after ModifyDBCluster (password out)",
        "password out",
        BEFORE,
        is_password_switch(managed=False),
    ),
    KillPoint(
        "after CreateBlueGreenDeployment",
        "create deployment",
        BEFORE,
        is_action("CreateBlueGreenDeployment"),
    ),
    KillPoint(
        "mid provisioning wait",
        "wait for green",
        BEFORE,
        is_action("CreateBlueGreenDeployment"),
        then_polls=2,
        provisioning_delay=PROVISIONING_DELAY_S,
        expect_status="PROVISIONING",
    ),
    KillPoint("at pause 1 (green validated)", "pause 1", BEFORE, pause=1),
    KillPoint("at pause 2 (approve switchover)", "pause 2", BEFORE, pause=2),
    KillPoint(
        "after SwitchoverBlueGreenDeployment",
        "switchover",
        DURING,
        is_action("SwitchoverBlueGreenDeployment"),
    ),
    KillPoint(
        "mid switchover wait",
        "wait for switchover",
        DURING,
        is_action("SwitchoverBlueGreenDeployment"),
        then_polls=2,
        pause=2,
        hold_switchover=True,
        expect_status="SWITCHOVER_IN_PROGRESS",
    ),
    KillPoint(
        "after ModifyDBCluster (password back)",
        "password back",
        AFTER,
        is_password_switch(managed=True),
    ),
    KillPoint(
        "after DeleteSecret of the held password",
        "forget held password",
        AFTER,
        is_held_secret("DeleteSecret"),
    ),
    KillPoint(
        "after the first AddTagsToResource (upgraded cluster tagged, old blue not yet)",
        "tag old blue",
        AFTER,
        is_action("AddTagsToResource"),
    ),
    KillPoint(
        "after DeleteBlueGreenDeployment",
        "delete deployment",
        AFTER,
        is_action("DeleteBlueGreenDeployment"),
    ),
    KillPoint(
        "after DeleteDBInstance (old blue instance)",
        "delete old blue",
        AFTER,
        is_action("DeleteDBInstance"),
    ),
    KillPoint(
        "after DeleteDBCluster (old blue cluster)",
        "delete old blue",
        AFTER,
        is_action("DeleteDBCluster"),
    ),
)

CRASH_MATRIX = DocTable(
    name="crash-matrix",
    title="Crash matrix",
    intro=(
        "`aurora-bg run` killed with SIGKILL at each point below (as soon as the lab "
        "answered the named AWS call, while the run waited in a pause, or in the middle "
        "of a wait), then run again with the same parameters "
        "(`aurora-bg run --params-file … --auto-approve --json`). Counts are over both "
        "runs, from the lab's call log. Between the kill and the rerun the safety net "
        "held: before the switchover blue took a write with a password that could be "
        "read; after it, the new cluster answered with a password that could be read. "
        "Generated by `tests/scenarios/test_crash_matrix.py`."
    ),
    columns=(
        "kill point",
        "phase",
        "rerun outcome",
        "deployments created",
        "switchovers",
        "password out / back",
    ),
    expected=len(KILL_POINTS),
    figure="kill points survived",
)


# --- killing the first run --------------------------------------------------------------


def kill(cli: CliRun) -> None:
    os.kill(cli.process.pid, signal.SIGKILL)
    cli.process.wait(timeout=30)


def kill_after_call(cli: CliRun, point: KillPoint, since: float) -> None:
    """SIGKILL once the lab logged the trigger (and the polls after it)."""
    assert point.trigger is not None

    def reached() -> bool:
        if cli.process.poll() is not None:
            raise AssertionError(f"the run exited ({cli.process.returncode}) before the kill")
        calls = cli.lab.calls(since)
        hits = [i for i, call in enumerate(calls) if point.trigger(call)]
        if len(hits) < point.nth:
            return False
        after = calls[hits[point.nth - 1] + 1 :]
        polls = [c for c in after if c["action"] == "DescribeBlueGreenDeployments"]
        return len(polls) >= point.then_polls

    wait_for(reached, RUN_WAIT_S, interval=0.02, what=f"{point.name} in the call log")
    kill(cli)


@contextmanager
def write_held_open_on_blue(lab: RunningLab) -> Iterator[None]:
    """An uncommitted write on blue: the switchover waits for it (it ends on exit)."""
    with psycopg.connect(**blue_connection(lab), autocommit=False) as conn:
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('tests', 'held write')")
        try:
            yield
        finally:
            conn.rollback()


def blue_connection(lab: RunningLab) -> dict[str, Any]:
    cluster = lab.cluster(CLUSTER_ID)
    return {
        "host": cluster["Endpoint"],
        "port": cluster["Port"],
        "user": cluster["MasterUsername"],
        "password": readable_password(lab),
        "dbname": "app",
        "connect_timeout": 5,
    }


def readable_password(lab: RunningLab) -> str:
    """The master password from where it is now: the managed secret, else the held one."""
    if lab.cluster(CLUSTER_ID).get("MasterUserSecret"):
        return lab.master_password()
    value = lab.sm.get_secret_value(SecretId=HELD_SECRET)["SecretString"]
    return json.loads(value)["password"]


# --- one case ---------------------------------------------------------------------------


def crash(point: KillPoint, lab: RunningLab, params_file: Path, out: Path, api: str) -> Any:
    """Run the flow and kill it at `point`; return the rerun to start (a callable)."""
    if point.provisioning_delay:
        lab.set_provisioning_delay(point.provisioning_delay)
    since = time.time() - 1
    first = CliRun(lab, params_file, out / "first", api, auto_approve=point.pause is None)
    try:
        if point.pause is None:
            kill_after_call(first, point, since)
        else:
            for _ in range(point.pause - 1):
                first.answer(first.wait_paused(), "approve")
            last = first.wait_paused()
            if not point.hold_switchover:
                kill(first)
            else:
                with write_held_open_on_blue(lab):
                    first.answer(last, "approve")
                    kill_after_call(first, point, since)
                    assert first.process.returncode == -signal.SIGKILL
                    assert_deployment_status(lab, point.expect_status)
                    # The rerun meets the switchover still in progress.
                    return rerun_meeting_a_held_switchover(lab, params_file, out, api)
    finally:
        first.stop()
    assert first.process.returncode == -signal.SIGKILL
    assert_deployment_status(lab, point.expect_status)
    return None


def rerun_meeting_a_held_switchover(
    lab: RunningLab, params_file: Path, out: Path, api: str
) -> CliRun:
    since = time.time()
    second = CliRun(lab, params_file, out / "second", api)
    wait_for(
        lambda: any(c["action"] == "DescribeBlueGreenDeployments" for c in lab.calls(since)),
        RUN_WAIT_S,
        what="the rerun looked at the deployment",
    )
    assert_deployment_status(lab, "SWITCHOVER_IN_PROGRESS")
    return second


def assert_deployment_status(lab: RunningLab, status: str | None) -> None:
    if status is not None:
        assert [d["Status"] for d in deployments(lab)] == [status]


def assert_safety_net(lab: RunningLab, side: str) -> None:
    """What a person would need right after the crash, before anyone reruns."""
    password = readable_password(lab)
    if side == BEFORE:
        assert lab.cluster(CLUSTER_ID)["EngineVersion"] == SOURCE_VERSION
        assert can_write(lab, password)
    elif side == AFTER:
        assert lab.cluster(CLUSTER_ID)["EngineVersion"] == TARGET_VERSION
        with lab.connect_cluster(CLUSTER_ID, password) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def assert_upgraded_with_managed_password(lab: RunningLab) -> None:
    cluster = lab.cluster(CLUSTER_ID)
    assert cluster["EngineVersion"] == TARGET_VERSION
    assert cluster["MasterUserSecret"]["SecretStatus"] == "active"
    assert can_write(lab, lab.master_password())
    assert deployments(lab) == []
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert not secret_exists(lab, HELD_SECRET)


@pytest.mark.parametrize(
    "order", range(len(KILL_POINTS)), ids=[p.name.split(" (")[0] for p in KILL_POINTS]
)
def test_rerun_after_a_kill_completes_without_repeating_a_change(
    order: int, lab: RunningLab, tmp_path: Path, prefect_api: str
) -> None:
    point = KILL_POINTS[order]
    row = ["not reached", "-", "-", "-"]
    passed = False
    try:
        params_file = write_parameters_file(lab, tmp_path / "params.yaml")
        held_rerun = crash(point, lab, params_file, tmp_path, prefect_api)
        if held_rerun is None:
            assert_safety_net(lab, point.side)
            second = CliRun(lab, params_file, tmp_path / "second", prefect_api)
        else:
            second = held_rerun
        try:
            code, summary = second.finish()
        finally:
            second.stop()
        outcome = summary["state"] if summary else f"exit {code}, no summary"
        row[0] = f"{outcome.lower()}" + (
            f" ({summary['engine_version']}, password managed)"
            if summary and summary.get("secret_arn")
            else ""
        )
        counts = Counts.of(lab.calls())
        row[1:] = [
            str(counts.creates),
            str(counts.switchovers),
            f"{counts.password_out} / {counts.password_back}",
        ]
        assert code == 0, second.output().decode(errors="replace")[-3000:]
        assert summary is not None and summary["state"] == "COMPLETED"
        assert counts.creates == 1
        assert counts.switchovers == 1
        assert counts.password_out <= 1 and counts.password_back <= 1
        assert_upgraded_with_managed_password(lab)
        passed = True
    finally:
        CRASH_MATRIX.add(order, passed, point.name, point.phase, *row)
