"""A lab of several clusters: each the whole topology of docs/runbook.md on its own pair of
servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lab import control
from lab.harness import RunningLab
from tests.support.labtools import assert_nothing_running

CLUSTERS = ("provisioning-rds", "provisioning-rds-2", "provisioning-rds-3")


@pytest.fixture(scope="module")
def fleet_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    lab_dir: Path = tmp_path_factory.mktemp("fleet-lab")
    try:
        info = control.up(lab_dir, 1, 0.0, clusters=len(CLUSTERS))
        yield RunningLab(info=info, dir=Path(info["lab_dir"]))
    finally:
        control.down(lab_dir)
        assert_nothing_running(lab_dir)


def test_each_cluster_of_a_fleet_lab_has_its_own_members_secret_and_tag(
    fleet_lab: RunningLab,
) -> None:
    assert fleet_lab.cluster_ids() == set(CLUSTERS)
    assert fleet_lab.member_ids("provisioning-rds") == {"rds-1"}
    assert fleet_lab.member_ids("provisioning-rds-2") == {"rds2-1"}
    secrets = {fleet_lab.cluster(c)["MasterUserSecret"]["SecretArn"] for c in CLUSTERS}
    assert len(secrets) == len(CLUSTERS)
    for cluster in CLUSTERS:
        tags = {t["Key"]: t["Value"] for t in fleet_lab.cluster(cluster)["TagList"]}
        assert tags == {"fleet": "lab"}


def test_each_cluster_endpoint_reaches_its_own_server_with_its_own_password(
    fleet_lab: RunningLab,
) -> None:
    ports = set()
    for cluster in CLUSTERS:
        with fleet_lab.connect_cluster(cluster, fleet_lab.master_password(cluster)) as conn:
            ports.add(conn.execute("SHOW port").fetchone()[0])
    assert len(ports) == len(CLUSTERS)
    with pytest.raises(psycopg.OperationalError):
        fleet_lab.connect_cluster("provisioning-rds-2", fleet_lab.master_password(CLUSTERS[0]))


def test_switchover_of_one_cluster_leaves_the_others_writable_and_connected(
    fleet_lab: RunningLab,
) -> None:
    first, second = CLUSTERS[0], CLUSTERS[1]
    first_password = fleet_lab.master_password(first)
    second_password = fleet_lab.unmanage_password(cluster=second)
    with fleet_lab.connect_cluster(first, first_password) as session:
        deployment = fleet_lab.create_deployment(name="second-to-16", cluster=second)
        fleet_lab.wait_for_deployment(deployment, "AVAILABLE")
        fleet_lab.rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=deployment)
        fleet_lab.wait_for_deployment(deployment, "SWITCHOVER_COMPLETED")

        # The first cluster's session survived the other cluster's switchover, and writes.
        session.execute("INSERT INTO audit_log (actor, action) VALUES ('tests', 'after')")
    assert fleet_lab.cluster(first)["EngineVersion"] == "15.4"
    with fleet_lab.connect_cluster(second, second_password) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
    with fleet_lab.connect_cluster(CLUSTERS[2], fleet_lab.master_password(CLUSTERS[2])) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"


def test_discovery_by_tag_finds_every_cluster_of_the_fleet_and_changes_nothing(
    fleet_lab: RunningLab,
) -> None:
    from tasks.fleet_limits import clusters_tagged

    since = fleet_lab.calls()[-1]["time"]
    assert clusters_tagged("fleet", "lab", fleet_lab.rds) == sorted(CLUSTERS)
    assert clusters_tagged("fleet", "other", fleet_lab.rds) == []
    assert fleet_lab.mutating_calls(since) == []
