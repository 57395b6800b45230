"""A cluster configured like production, with deletion protection on: both ways out of
the upgrade complete. Green copies blue's protection, so the way out turns it off on
green only before deleting it; the clean-up turns it off on the old blue only. The
production cluster's own protection is never touched."""

from __future__ import annotations

from lab.harness import RunningLab
from tests.support.flowtools import (
    CLUSTER_ID,
    artifacts_of,
    assert_blue_as_before,
    calls_named,
    lab_parameters,
    run_flow,
)


def protection_changes(lab: RunningLab) -> list[tuple[str, str]]:
    """Every ModifyDBCluster that set DeletionProtection, in order: (cluster, value as the
    query string carried it); the first is the test's own, turning blue's protection on."""
    return [
        (call["params"]["DBClusterIdentifier"], call["params"]["DeletionProtection"])
        for call in calls_named(lab, "ModifyDBCluster")
        if "DeletionProtection" in call["params"]
    ]


def test_rejecting_green_of_a_protected_cluster_deletes_green_and_keeps_blue_protected(
    lab: RunningLab,
) -> None:
    lab.protect()

    run = run_flow(lab_parameters(lab), "reject")

    assert run.state.is_failed(), run.state
    assert "'green validated' was rejected" in run.state.message
    assert_blue_as_before(lab)
    assert lab.is_protected()
    changes = protection_changes(lab)
    assert len(changes) == 2
    assert changes[0] == (CLUSTER_ID, "true")
    green_id, value = changes[1]
    assert green_id.startswith(f"{CLUSTER_ID}-green-")
    assert value == "false"
    way_out = str(artifacts_of(run.id)[f"{CLUSTER_ID}-way-out"].data)
    assert f"Turned deletion protection off on the green {green_id}" in way_out


def test_upgrading_a_protected_cluster_deletes_the_old_blue_after_unprotecting_it_only(
    lab: RunningLab,
) -> None:
    lab.protect()

    run = run_flow(lab_parameters(lab), "approve", "approve")

    assert run.state.is_completed(), run.state.message
    assert lab.cluster_ids() == {CLUSTER_ID}
    assert lab.is_protected()  # the new production is green, which copied blue's protection
    assert protection_changes(lab) == [(CLUSTER_ID, "true"), (f"{CLUSTER_ID}-old1", "false")]
