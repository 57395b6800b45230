"""A failed preflight stops the run before anything changes, and says which check failed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from lab.harness import RunningLab
from tests.support.flowtools import CLUSTER_ID, artifacts_of, lab_parameters, run_flow, table_rows

BLUE_CLUSTER_GROUP = "test-aurora-postgresql15-cluster"


def turn_logical_replication_off(lab: RunningLab) -> dict[str, Any]:
    lab.rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=BLUE_CLUSTER_GROUP,
        Parameters=[
            {
                "ParameterName": "rds.logical_replication",
                "ParameterValue": "0",
                "ApplyMethod": "pending-reboot",
            }
        ],
    )
    return {}


def nothing(lab: RunningLab) -> dict[str, Any]:
    return {}


CASES: dict[str, tuple[Callable[[RunningLab], Any], dict[str, Any], str]] = {
    "logical-replication-off": (turn_logical_replication_off, {}, "logical replication on"),
    "wrong-family": (
        nothing,
        {"target_cluster_parameter_group": BLUE_CLUSTER_GROUP},
        "target cluster parameter group",
    ),
    "missing-group": (
        nothing,
        {"target_instance_parameter_group": "no-such-instance-group"},
        "target instance parameter group",
    ),
}


def assert_stopped_before_any_change(lab: RunningLab, run: Any, started: float, check: str) -> None:
    assert run.state.is_failed(), run.state
    assert check in run.state.message
    assert "\n" not in run.state.message
    assert lab.mutating_calls(since=started) == []
    rows = {r["check"]: r for r in table_rows(artifacts_of(run.id)[f"{CLUSTER_ID}-preflight"])}
    assert rows[check]["result"] == "FAIL"
    assert rows[check]["fix"]


@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_preflight_check_stops_the_run_before_any_change(
    lab: RunningLab, case: str
) -> None:
    arrange, overrides, failed_check = CASES[case]
    arrange(lab)
    secret_arn = lab.cluster()["MasterUserSecret"]["SecretArn"]
    started = time.time()

    run = run_flow(lab_parameters(lab, **overrides))

    assert_stopped_before_any_change(lab, run, started, failed_check)
    assert lab.cluster()["MasterUserSecret"]["SecretArn"] == secret_arn


def test_a_target_version_not_newer_than_blue_stops_the_run_before_any_change(
    lab: RunningLab,
) -> None:
    for version in ("15.4", "15.2"):
        started = time.time()

        run = run_flow(lab_parameters(lab, target_engine_version=version))

        assert_stopped_before_any_change(lab, run, started, "target version is newer")
