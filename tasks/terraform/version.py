"""Guard the Terraform CLI version against the version that wrote the state.

A newer CLI rewrites the state's `terraform_version` and the team's older CLI
refuses the state afterwards; an older CLI cannot read it at all. So the run
uses the CLI that wrote the state, or a newer one only when asked to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from aurora_bg.errors import BadInput, PreconditionFailed
from aurora_bg.results import StepResult
from tasks.terraform.cli import first_line_of_error, run_terraform
from tasks.terraform.state import local_state_file


def read_state_version(tf: Terraform, terraform_dir: Path, state: dict[str, Any]) -> str:
    """The Terraform version that last wrote the state.

    `state pull` stamps its output with the running CLI's version, so this
    reads the local state file, or for remote backends `terraform show -json`
    (which needs the providers installed). Raises PreconditionFailed when neither
    can tell.
    """
    local = local_state_file(terraform_dir, state)
    if local is not None:
        return json.loads(local.read_text()).get("terraform_version", "")
    code, out, err = run_terraform(tf, "show", json=IsFlagged)
    version = json.loads(out).get("terraform_version") if code == 0 and out.strip() else None
    if not version:
        raise PreconditionFailed(
            "cannot tell which Terraform version wrote the remote state "
            f"({first_line_of_error(err)}); run terraform init in {terraform_dir} and retry"
        )
    return version


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.9.3` or `1.10.0-beta1` -> (1, 9, 3) / (1, 10, 0). Raises BadInput otherwise."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text or "")
    if not match:
        raise BadInput(f"not a Terraform version: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def read_cli_version(tf: Terraform) -> str:
    """`terraform version -json`'s version. Raises BadInput when the CLI cannot run."""
    code, out, err = run_terraform(tf, "version", json=IsFlagged)
    if code != 0:
        raise BadInput(f"terraform version failed: {first_line_of_error(err)}")
    return json.loads(out)["terraform_version"]


def check_cli_version(cli_version: str, state_version: str, allow_newer_cli: bool) -> StepResult:
    """Refuse a CLI that would rewrite the state's version, unless explicitly allowed.

    A newer CLI rewrites `terraform_version` and the team's older CLI refuses
    the state afterwards; an older CLI cannot read the state at all. Raises
    PreconditionFailed in both cases (a newer CLI passes with `allow_newer_cli`).
    """
    cli, written = parse_version(cli_version), parse_version(state_version)
    facts = {"cli_version": cli_version, "state_version": state_version}
    if cli == written:
        return StepResult("checked", f"terraform {cli_version} wrote this state", facts)
    if cli < written:
        raise PreconditionFailed(
            f"terraform {cli_version} is older than the state's {state_version}; "
            f"use terraform {state_version}"
        )
    if not allow_newer_cli:
        raise PreconditionFailed(
            f"terraform {cli_version} is newer than the state's {state_version} and would "
            f"upgrade it for everyone; use terraform {state_version} or allow the newer CLI"
        )
    return StepResult(
        "allowed",
        f"terraform {cli_version} is newer than the state's {state_version}; allowed on request",
        facts,
    )
