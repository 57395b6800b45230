"""A cluster whose master password its owner already self-manages, as AWS supports it.

With the secret that holds the master credentials named in `credentials_secret_arn`,
the tool logs in with it everywhere (preflight, validation, the checks after the
switchover, the login that proves the password) and leaves the password as it is: the
password phases say "already self-managed", no secret of ours is created, management is
never turned on or off, before or after the switchover, nor on the way out. Without it,
preflight refuses the cluster with a fix that does not change the production password.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lab.harness import TARGET_VERSION, RunningLab, new_password
from tests.support.flowtools import (
    CLUSTER_ID,
    HELD_SECRET,
    all_artifacts,
    artifacts_of,
    calls_named,
    deployments,
    lab_parameters,
    logs_of,
    run_flow,
    secret_exists,
    table_rows,
)

CREDENTIALS_SECRET = "payments/db/master"


def self_managed(lab: RunningLab) -> tuple[str, str]:
    """Turn blue's password self-managed with a value of the owner's and keep it in a
    secret of theirs, as RDS writes one; returns (the password, the secret's ARN)."""
    password = lab.unmanage_password(new_password())
    secret = lab.sm.create_secret(
        Name=CREDENTIALS_SECRET,
        SecretString=json.dumps({"username": "postgres", "password": password}),
    )
    assert "MasterUserSecret" not in lab.cluster()
    return password, secret["ARN"]


def server_version(lab: RunningLab, password: str) -> str:
    with lab.connect_cluster(CLUSTER_ID, password) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def password_switches(lab: RunningLab, since: float) -> list[dict[str, Any]]:
    """ModifyDBCluster calls that turned management on or off."""
    return [
        c
        for c in calls_named(lab, "ModifyDBCluster", since)
        if "ManageMasterUserPassword" in c["params"]
    ]


def assert_password_never_shown(run: Any, password: str) -> None:
    assert password not in " ".join(logs_of(run.id))
    for artifact in all_artifacts():
        assert password not in f"{artifact.description} {artifact.data}"


def test_a_self_managed_cluster_without_its_secret_named_is_refused_before_any_change(
    lab: RunningLab,
) -> None:
    password, _ = self_managed(lab)
    started = time.time()

    run = run_flow(lab_parameters(lab))

    assert run.state.is_failed(), run.state
    message = run.state.message
    assert "\n" not in message
    assert "master password (self-managed, and no secret holding it is named)" in message
    assert "name the secret that holds the master credentials in credentials_secret_arn" in message
    assert "ManageMasterUserPassword" not in message  # no fix that changes the password
    rows = {r["check"]: r for r in table_rows(artifacts_of(run.id)[f"{CLUSTER_ID}-preflight"])}
    assert rows["master password"]["result"] == "FAIL"
    assert lab.mutating_calls(since=started) == []
    assert server_version(lab, password).startswith("15")


def test_a_self_managed_cluster_is_upgraded_and_stays_self_managed(lab: RunningLab) -> None:
    password, secret_arn = self_managed(lab)
    started = time.time()

    run = run_flow(lab_parameters(lab, credentials_secret_arn=secret_arn), "approve", "approve")

    assert run.state.is_completed(), run.state.message
    cluster = lab.cluster()
    assert cluster["EngineVersion"] == TARGET_VERSION
    assert "MasterUserSecret" not in cluster
    assert server_version(lab, password).startswith("16")  # the same password logs in
    assert password_switches(lab, started) == []
    assert calls_named(lab, "CreateSecret", started) == []
    assert not secret_exists(lab, HELD_SECRET)
    assert deployments(lab) == []
    assert lab.cluster_ids() == {CLUSTER_ID}
    artifacts = artifacts_of(run.id)
    password_mode = artifacts[f"{CLUSTER_ID}-password-mode"].data
    assert "already self-managed" in password_mode
    assert "new secret" not in password_mode
    preflight = {r["check"]: r for r in table_rows(artifacts[f"{CLUSTER_ID}-preflight"])}
    assert preflight["master password"]["detail"] == (
        f"already self-managed: left as it is, read from {secret_arn}"
    )
    post = table_rows(artifacts[f"{CLUSTER_ID}-post-switchover"])
    assert post and all(r["result"] == "pass" for r in post)
    assert_password_never_shown(run, password)


def test_the_way_out_leaves_a_self_managed_cluster_self_managed(lab: RunningLab) -> None:
    password, secret_arn = self_managed(lab)
    started = time.time()

    run = run_flow(lab_parameters(lab, credentials_secret_arn=secret_arn), "reject")

    assert run.state.is_failed(), run.state
    assert "'green validated' was rejected" in run.state.message
    way_out = artifacts_of(run.id)[f"{CLUSTER_ID}-way-out"].data
    assert "password self-managed as before" in way_out
    assert "NOT as it was" not in way_out
    cluster = lab.cluster()
    assert "MasterUserSecret" not in cluster
    assert cluster["EngineVersion"] == "15.4"
    assert server_version(lab, password).startswith("15")
    assert password_switches(lab, started) == []
    assert deployments(lab) == []
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert not secret_exists(lab, HELD_SECRET)
