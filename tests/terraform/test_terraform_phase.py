"""Phase 12 end to end on the lab's directory, with real Terraform core.

The AWS provider cannot be downloaded on these machines, so every full run
ends at `terraform init` with `provider-unavailable`: everything before it
(state rm, rewrite, import.tf) is real, and the report says what is left.
AWS's post-switchover facts are simulated by modifying moto's cluster (see
`simulate_switchover`); the lab's real switchover is exercised elsewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from aurora_bg.errors import BadInput, PreconditionFailed
from lab.terraform_dir import write_terraform_dir
from lab.topology import CLUSTER_ID
from tasks.terraform.cli import missing_provider, terraform_for
from tasks.terraform.phase import init_plan_apply, reconcile
from tasks.terraform.plan import summarize_plan
from tasks.terraform.report import TerraformReport
from tasks.terraform.rewrite import read_import_file
from tests.support.terraform_builders import (
    build_lab,
    simulate_switchover,
    snapshot,
    state_list,
    terraform,
)

PROVIDER = "registry.terraform.io/hashicorp/aws"
BACKUP = re.compile(r"^terraform\.tfstate\.backup-\d{8}T\d{6}Z$")


def backups(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if BACKUP.match(p.name)]


def run(directory: Path, aws: dict[str, Any], terraform_bin: str, **options: Any):
    return reconcile(directory, CLUSTER_ID, aws["rds"], terraform_bin=terraform_bin, **options)


def test_apply_mode_removes_rewrites_imports_and_stops_at_provider_init(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    original_state = (lab_dir / "terraform.tfstate").read_bytes()

    report = run(lab_dir, aws, terraform_bin)

    assert report.status == "provider-unavailable"
    assert PROVIDER in report.message and "\n" not in report.message
    [backup] = backups(lab_dir)
    assert backup.read_bytes() == original_state
    listed = state_list(terraform_bin, lab_dir)
    assert "aws_rds_cluster.test" not in listed
    assert "aws_rds_cluster_instance.test" not in listed
    assert "aws_rds_cluster_parameter_group.test15" in listed  # only the cluster's addresses
    assert read_import_file(lab_dir) == [
        ("aws_rds_cluster.test", CLUSTER_ID),
        ("aws_rds_cluster_instance.test", "rds-1"),
    ]
    main = (lab_dir / "main.tf").read_text()
    assert 'engine_version                  = "16.2"' in main
    assert "aws_rds_cluster_parameter_group.test16.name" in main
    assert "aws_db_parameter_group.test16.name" in main
    assert '"test15"' not in main
    hcl2.loads(main)
    assert [c.split()[2:] for c in report.commands_left] == [
        ["init"],
        ["plan", "-out=tfplan"],
        ["apply", "tfplan"],
        [],
    ]
    assert report.commands_left[-1] == f"rm {lab_dir.resolve() / 'import.tf'}"
    assert [s.action for s in report.steps] == [
        "checked",
        "found",
        "backed-up",
        "removed",
        "rewritten",
        "written",
        "provider-unavailable",
    ]


def test_second_apply_run_finds_nothing_to_remove(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    run(lab_dir, aws, terraform_bin)
    files = snapshot(lab_dir)

    report = run(lab_dir, aws, terraform_bin)

    removal = report.steps[1]
    assert removal.action == "already-done"
    assert removal.reason.startswith("nothing to remove")
    assert [s.action for s in report.steps[2:4]] == ["already-done", "already-done"]
    assert report.diff == ""
    assert report.status == "provider-unavailable"
    assert snapshot(lab_dir) == files  # no second backup, no edit


def test_plan_only_leaves_the_state_untouched_and_lists_what_is_left(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    state_before = (lab_dir / "terraform.tfstate").read_bytes()

    report = run(lab_dir, aws, terraform_bin, plan_only=True)

    assert (lab_dir / "terraform.tfstate").read_bytes() == state_before
    assert report.status == "provider-unavailable"
    assert len(backups(lab_dir)) == 1
    assert report.commands_left[0].endswith(
        "state rm aws_rds_cluster.test aws_rds_cluster_instance.test"
    )
    assert report.commands_left[1].endswith("init")
    assert (
        "+++ b/main.tf" in report.diff
        and '+  engine_version                  = "16.2"' in report.diff
    )
    assert "+++ b/import.tf" in report.diff and '+  id = "rds-1"' in report.diff
    assert (lab_dir / "import.tf").is_file()
    assert "aws_rds_cluster.test" in state_list(terraform_bin, lab_dir)


def test_plan_only_twice_changes_nothing_the_second_time(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    run(lab_dir, aws, terraform_bin, plan_only=True)
    files = {k: v for k, v in snapshot(lab_dir).items() if not BACKUP.match(k)}

    report = run(lab_dir, aws, terraform_bin, plan_only=True)

    assert {k: v for k, v in snapshot(lab_dir).items() if not BACKUP.match(k)} == files
    assert report.diff == ""
    assert [s.action for s in report.steps if s.action == "already-done"] == ["already-done"] * 2


def test_apply_after_plan_only_removes_the_addresses(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    run(lab_dir, aws, terraform_bin, plan_only=True)

    report = run(lab_dir, aws, terraform_bin)

    assert "aws_rds_cluster.test" not in state_list(terraform_bin, lab_dir)
    assert report.steps[3].action == "removed"


def test_counted_instances_are_removed_and_imported_by_identifier(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str
):
    directory = build_lab(aws, tmp_path / "terraform", instances=3)
    simulate_switchover(aws["rds"])

    report = run(directory, aws, terraform_bin)

    assert report.status == "provider-unavailable"
    assert read_import_file(directory) == [
        ("aws_rds_cluster.test", CLUSTER_ID),
        ("aws_rds_cluster_instance.test[0]", "rds-1"),
        ("aws_rds_cluster_instance.test[1]", "rds-2"),
        ("aws_rds_cluster_instance.test[2]", "rds-3"),
    ]
    assert not [a for a in state_list(terraform_bin, directory) if "aws_rds_cluster." in a]


def test_state_written_by_an_older_terraform_stops_before_any_change(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str
):
    directory = build_lab(aws, tmp_path / "terraform", terraform_version="1.9.3")
    simulate_switchover(aws["rds"])
    files = snapshot(directory)

    with pytest.raises(PreconditionFailed, match=r"newer than the state's 1\.9\.3") as stopped:
        run(directory, aws, terraform_bin)

    assert "\n" not in str(stopped.value)
    assert snapshot(directory) == files
    assert backups(directory) == []


def test_older_state_is_changed_when_the_newer_cli_is_allowed(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str, cli_version: str
):
    directory = build_lab(aws, tmp_path / "terraform", terraform_version="1.9.3")
    simulate_switchover(aws["rds"])

    report = run(directory, aws, terraform_bin, allow_newer_cli=True)

    assert report.steps[0].action == "allowed"
    assert report.status == "provider-unavailable"
    state = json.loads((directory / "terraform.tfstate").read_text())
    assert state["terraform_version"] == cli_version  # what the guard warns about


def test_state_written_by_a_newer_terraform_stops(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str
):
    directory = build_lab(aws, tmp_path / "terraform", terraform_version="9.0.0")
    files = snapshot(directory)

    with pytest.raises(PreconditionFailed, match=r"older than the state's 9\.0\.0"):
        run(directory, aws, terraform_bin, allow_newer_cli=True)

    assert snapshot(directory) == files


def test_directory_without_state_is_one_line_of_bad_input(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str, tmp_path: Path
):
    directory = tmp_path / "no-state"
    directory.mkdir()
    (directory / "main.tf").write_bytes((lab_dir / "main.tf").read_bytes())
    files = snapshot(directory)

    with pytest.raises(BadInput, match="no Terraform state in") as stopped:
        run(directory, aws, terraform_bin)

    assert "\n" not in str(stopped.value)
    assert snapshot(directory) == files


def test_cluster_missing_from_state_is_one_line_of_bad_input(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    aws["rds"].create_db_cluster(
        DBClusterIdentifier="orders-db",
        Engine="aurora-postgresql",
        MasterUsername="postgres",
        MasterUserPassword="not-used-here-1",
    )
    files = snapshot(lab_dir)

    with pytest.raises(
        BadInput, match="cluster orders-db is not in the Terraform state"
    ) as stopped:
        reconcile(lab_dir, "orders-db", aws["rds"], terraform_bin=terraform_bin)

    assert "\n" not in str(stopped.value)
    assert snapshot(lab_dir) == files


def test_two_clusters_matching_is_one_line_of_bad_input(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    path = lab_dir / "terraform.tfstate"
    state = json.loads(path.read_text())
    cluster = next(r for r in state["resources"] if r["type"] == "aws_rds_cluster")
    state["resources"].append({**cluster, "name": "copy"})
    path.write_text(json.dumps(state, indent=2))
    files = snapshot(lab_dir)

    with pytest.raises(BadInput, match="2 state entries claim cluster provisioning-rds") as stopped:
        run(lab_dir, aws, terraform_bin)

    assert "\n" not in str(stopped.value)
    assert snapshot(lab_dir) == files


def test_report_renders_steps_diff_and_commands(
    lab_dir: Path, aws: dict[str, Any], terraform_bin: str
):
    markdown = run(lab_dir, aws, terraform_bin, plan_only=True).to_markdown()

    assert markdown.startswith("# Terraform for provisioning-rds (plan only)")
    assert "**provider-unavailable**" in markdown
    assert "```diff" in markdown and "```sh" in markdown and "state rm" in markdown


# --- pure parts ----------------------------------------------------------------------


def _change(address: str, actions: list[str], **extra: Any) -> dict[str, Any]:
    type_ = address.split(".")[0]
    return {"address": address, "type": type_, "change": {"actions": actions, **extra}}


def test_plan_summary_matches_runbook_expectations():
    """Two imports, the 15 groups destroyed, the known write-forwarding quirk."""
    plan = {
        "resource_changes": [
            _change(
                "aws_rds_cluster.test",
                ["update"],
                importing={"id": CLUSTER_ID},
                before={"enable_global_write_forwarding": None, "engine_version": "16.2"},
                after={"enable_global_write_forwarding": False, "engine_version": "16.2"},
            ),
            _change("aws_rds_cluster_instance.test", ["no-op"], importing={"id": "rds-1"}),
            _change("aws_rds_cluster_parameter_group.test15", ["delete"]),
            _change("aws_db_parameter_group.test15", ["delete"]),
            _change("aws_ssm_parameter.db_endpoint", ["no-op"]),
        ]
    }

    summary = summarize_plan(plan).as_dict()

    assert summary["imports"] == ["aws_rds_cluster.test", "aws_rds_cluster_instance.test"]
    assert summary["destroys"] == [
        "aws_rds_cluster_parameter_group.test15",
        "aws_db_parameter_group.test15",
    ]
    assert summary["updates"] == {"aws_rds_cluster.test": ["enable_global_write_forwarding"]}
    assert summary["expected_after_import"] == ["aws_rds_cluster.test"]
    assert summary["blockers"] == []


def test_plan_that_replaces_the_cluster_is_a_blocker():
    plan = {"resource_changes": [_change("aws_rds_cluster.test", ["delete", "create"])]}

    assert summarize_plan(plan).blockers == ["aws_rds_cluster.test"]


def test_update_beyond_the_known_quirks_is_not_marked_expected():
    plan = {
        "resource_changes": [
            _change(
                "aws_rds_cluster.test",
                ["update"],
                before={"engine_version": "15.4"},
                after={"engine_version": "16.2"},
            )
        ]
    }

    assert summarize_plan(plan).as_dict()["expected_after_import"] == []


@pytest.mark.parametrize(
    ("stderr", "provider"),
    [
        (
            "Error: Failed to query available provider packages\n\nCould not retrieve the list "
            "of available versions for provider hashicorp/aws: could not connect",
            PROVIDER,
        ),
        (
            "Error: Failed to install provider\n\nError while installing "
            "registry.terraform.io/hashicorp/aws v5.60.0: "
            'provider "registry.terraform.io/hashicorp/aws"',
            PROVIDER,
        ),
        ('Error: Unsupported argument\n\nAn argument named "x" is not expected here.', None),
    ],
)
def test_missing_provider_is_named_from_terraform_diagnostics(stderr: str, provider: str | None):
    assert missing_provider(stderr) == provider


# --- init, plan and apply with a provider that needs no download ---------------------


def builtin_only_dir(tmp_path: Path) -> Path:
    """Terraform's built-in `terraform_data` stands in for the AWS provider."""
    directory = tmp_path / "builtin"
    directory.mkdir()
    (directory / "main.tf").write_text(
        'resource "terraform_data" "marker" {\n  input = "16.2"\n}\n'
    )
    (directory / "import.tf").write_text("# nothing to import in this stand-in\n")
    return directory


def test_plan_and_apply_run_for_real_when_providers_install(tmp_path: Path, terraform_bin: str):
    directory = builtin_only_dir(tmp_path)
    tf = terraform_for(directory, terraform_bin)
    report = TerraformReport(CLUSTER_ID, str(directory), plan_only=False)

    init_plan_apply(tf, report, state_rm_pending=False, artifacts=tmp_path / "artifacts")

    assert report.status == "applied", report.message
    assert not (directory / "import.tf").exists()
    assert report.plan.as_dict()["blockers"] == []
    assert [c.actions for c in report.plan.changes] == [("create",)]
    assert (tmp_path / "artifacts" / "tfplan-summary.json").is_file()
    assert state_list(terraform_bin, directory) == ["terraform_data.marker"]

    again = TerraformReport(CLUSTER_ID, str(directory), plan_only=False)
    init_plan_apply(tf, again, state_rm_pending=False, artifacts=tmp_path / "artifacts")

    assert again.status == "nothing-to-do"


def test_plan_only_plans_and_leaves_apply_to_run(tmp_path: Path, terraform_bin: str):
    directory = builtin_only_dir(tmp_path)
    report = TerraformReport(CLUSTER_ID, str(directory), plan_only=True)

    init_plan_apply(
        terraform_for(directory, terraform_bin), report, False, artifacts=tmp_path / "artifacts"
    )

    assert report.status == "planned"
    assert report.commands_left[0].endswith("apply tfplan")
    assert (directory / "import.tf").exists()
    assert "No state file was found" in terraform(terraform_bin, directory, "state", "list").stderr


def test_state_that_already_matches_aws_needs_nothing_removed(
    aws: dict[str, Any], tmp_path: Path, terraform_bin: str
):
    """As after a successful import: the state already describes the cluster AWS runs."""
    build_lab(aws, tmp_path / "before")
    simulate_switchover(aws["rds"])
    directory = write_terraform_dir(tmp_path / "after", aws["rds"], aws["ssm"], aws["ec2"])
    files = snapshot(directory)

    report = run(directory, aws, terraform_bin)

    assert report.steps[1].reason == (
        "nothing to remove: the state already holds provisioning-rds as AWS reports it now"
    )
    assert report.diff == ""
    assert not (directory / "import.tf").exists()
    assert snapshot(directory) == files
    assert "aws_rds_cluster.test" in state_list(terraform_bin, directory)
