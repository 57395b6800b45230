"""The flow's parameter model and the command line's handling of bad input (no AWS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aurora_bg.cli.runner import load_parameters
from aurora_bg.errors import BadInput
from aurora_bg.params import UpgradeParameters

REQUIRED = {
    "cluster_identifier": "provisioning-rds",
    "target_engine_version": "16.2",
    "target_cluster_parameter_group": "test-aurora-postgresql16-cluster",
    "target_instance_parameter_group": "test-aurora-postgresql16-instance",
}
AURORA_BG = str(Path(sys.executable).parent / "aurora-bg")


def test_deployment_name_defaults_to_cluster_and_version():
    params = UpgradeParameters(**REQUIRED)
    assert params.effective_deployment_name == "aurora-bg-provisioning-rds-16-2"
    assert params.target_major == 16


def test_the_lab_parameters_file_is_valid():
    params = load_parameters(Path("deployments/lab.yaml"), {})
    assert params.cluster_identifier == "provisioning-rds"
    assert params.validation.database == "app"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"switchover_timeout_seconds": 10}, "switchover_timeout_seconds"),
        ({"switchover_timeout_seconds": 4000}, "switchover_timeout_seconds"),
        ({"target_engine_version": "sixteen"}, "target_engine_version"),
        ({"cluster_identifier": "1-starts-with-digit"}, "cluster_identifier"),
        ({"cluster_identifier": "double--hyphen"}, "cluster_identifier"),
        ({"surprise": True}, "surprise"),
        ({"validation": {"database": "app", "colour": "blue"}}, "validation.colour"),
        ({"terraform": {"enabled": True}}, "terraform.working_dir"),
    ],
)
def test_bad_parameters_give_one_line_naming_the_field(tmp_path, change, field):
    with pytest.raises(BadInput) as raised:
        load_parameters(None, {**REQUIRED, **change})
    message = str(raised.value)
    assert field in message
    assert "\n" not in message


def test_a_parameters_file_that_does_not_parse_is_named_with_its_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster_identifier: [provisioning-rds\n")
    with pytest.raises(BadInput) as raised:
        load_parameters(broken, {})
    assert "broken.yaml" in str(raised.value)
    assert "line" in str(raised.value)


def test_command_line_bad_input_is_one_line_without_traceback(tmp_path):
    """Fails before any AWS call: no endpoint is configured at all."""
    result = subprocess.run(
        [AURORA_BG, "run", "--params-file", "deployments/lab.yaml", "--target-engine-version", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "target_engine_version" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_parameters_file_is_one_line(tmp_path):
    result = subprocess.run(
        [AURORA_BG, "run", "--params-file", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
