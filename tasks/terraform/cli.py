"""Running the team's own `terraform` CLI and reading its diagnostics.

Everything goes through python-terraform, which runs the binary the operator
names, so local and remote backends behave exactly as they do by hand.
Terraform's own refusals come back as exit codes; only a binary that cannot
start at all is an exception here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from aurora_bg.errors import BadInput

DEFAULT_PROVIDER = "registry.terraform.io/hashicorp/aws"


def run_terraform(tf: Terraform, command: str, *args: str, **options: Any) -> tuple[int, str, str]:
    """Run one terraform command without colours; return (code, stdout, stderr).

    Raises BadInput when the binary cannot be started.
    """
    options.setdefault("no_color", IsFlagged)
    try:
        code, out, err = tf.cmd(command, *args, **options)
    except OSError as exc:
        raise BadInput(
            f"cannot run terraform at {tf.terraform_bin_path}: {exc.strerror} "
            "(give the path of the terraform executable that wrote the state)"
        ) from exc
    return code, out or "", err or ""


def terraform_for(terraform_dir: Path, terraform_bin: str) -> Terraform:
    """python-terraform for the directory; a relative binary path is taken from the cwd.

    Raises BadInput when the directory's local state file is not JSON.
    """
    if os.sep in terraform_bin:
        terraform_bin = str(Path(terraform_bin).resolve())
    try:  # python-terraform reads the local state file as it starts
        return Terraform(working_dir=str(terraform_dir), terraform_bin_path=terraform_bin)
    except json.JSONDecodeError as exc:
        raise state_not_json(terraform_dir, exc) from None


def state_not_json(terraform_dir: Path, exc: json.JSONDecodeError) -> BadInput:
    """The one-line refusal for a state that does not parse, with where to restore it from."""
    return BadInput(
        f"the Terraform state in {terraform_dir} is not JSON (line {exc.lineno}): "
        "restore it from terraform.tfstate.backup or the backend's history"
    )


def first_line_of_error(stderr: str) -> str:
    """The `Error: …` headline of Terraform's diagnostics, else its first line."""
    for line in stderr.splitlines():
        text = line.strip(" │╷╵")
        if text.startswith("Error:"):
            return text
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def missing_provider(stderr: str) -> str | None:
    """The provider Terraform could not install or start, from its diagnostics; else None."""
    markers = (
        "provider packages",
        "Failed to install provider",
        "Failed to load plugin schemas",
        "Required plugins are not installed",
        "Inconsistent dependency lock file",
    )
    if not any(marker in stderr for marker in markers):
        return None
    found = re.search(r"provider\s+\"?((?:[\w.-]+/)?[\w-]+/[\w-]+)", stderr)
    if not found:
        return DEFAULT_PROVIDER
    name = found[1]
    return name if name.count("/") == 2 else f"registry.terraform.io/{name}"
