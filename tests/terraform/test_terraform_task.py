"""The Prefect task around phase 12: runs once, publishes its report, never retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.artifacts import Artifact

from aurora_bg.errors import BadInput
from lab.topology import CLUSTER_ID
from tasks.terraform.phase import reconcile_terraform_task


@flow
def terraform_only(terraform_dir: str, terraform_bin: str, rds: Any, plan_only: bool):
    return reconcile_terraform_task(
        terraform_dir, CLUSTER_ID, rds, terraform_bin=terraform_bin, plan_only=plan_only
    )


def test_task_returns_the_report_and_publishes_it(
    prefect_api, lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    report = terraform_only(str(lab_dir), terraform_bin, aws["rds"], True)

    assert report.status == "provider-unavailable"
    artifact = Artifact.get(f"{CLUSTER_ID}-terraform-plan")
    assert artifact is not None and "provider-unavailable" in artifact.data


def test_task_is_not_retried_on_bad_input(
    prefect_api, tmp_path: Path, aws: dict[str, Any], terraform_bin: str
):
    assert reconcile_terraform_task.retries == 0

    state = terraform_only(str(tmp_path), terraform_bin, aws["rds"], False, return_state=True)

    assert state.is_failed()
    with pytest.raises(BadInput, match="holds no Terraform configuration"):
        state.result()
