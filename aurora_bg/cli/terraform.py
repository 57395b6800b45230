"""`aurora-bg terraform-reconcile`: the Terraform phase alone, for a cluster already upgraded."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from aurora_bg.errors import AuroraBGError

# Exit codes of terraform-reconcile, by report status.
TERRAFORM_DONE = {"applied", "nothing-to-do", "planned"}
TERRAFORM_LEFT_TO_RUN = {"provider-unavailable", "state-rm-pending"}
EXIT_LEFT_TO_RUN = 3


def terraform_reconcile(
    terraform_dir: Path = typer.Option(
        ..., "--terraform-dir", help="The Terraform working directory that manages the cluster."
    ),
    cluster_identifier: str = typer.Option(..., "--cluster-identifier"),
    terraform_bin: str = typer.Option(
        "terraform", "--terraform-bin", help="The team's terraform (the state's version)."
    ),
    plan_only: bool = typer.Option(
        False, "--plan-only", help="Rewrite and plan; leave the state and apply to you."
    ),
    allow_newer_cli: bool = typer.Option(
        False, "--allow-newer-cli", help="Let a newer terraform rewrite the state's version."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run the Terraform phase alone against the cluster AWS reports now.

    state rm, configuration rewrite, import.tf, init, plan, apply (docs/runbook.md, step 7).
    The report goes to stdout and to <terraform dir>/.aurora-bg/terraform-report.md.
    Exit codes: 0 done (applied, nothing-to-do, planned); 3 the report lists the
    commands left to run (provider-unavailable, state-rm-pending); 1 otherwise:
    bad input or a refusal before the report (one line on stderr), or blocked /
    init, plan or apply failed (the report, then one line on stderr).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from tasks.aws import client
    from tasks.terraform.phase import reconcile

    # python-terraform logs each non-zero exit's whole stderr; the report says it in one line.
    logging.getLogger("python_terraform").setLevel(logging.ERROR)
    cluster_identifier = cluster_identifier.lower()
    try:
        report = reconcile(
            terraform_dir,
            cluster_identifier,
            client("rds"),
            terraform_bin,
            plan_only=plan_only,
            allow_newer_cli=allow_newer_cli,
        )
    except (BotoCoreError, ClientError) as error:
        raise AuroraBGError(f"cannot read {cluster_identifier} from AWS: {error}") from None
    report_file = Path(report.terraform_dir) / ".aurora-bg" / "terraform-report.md"
    report_file.parent.mkdir(parents=True, exist_ok=True)
    report_file.write_text(report.to_markdown())
    if as_json:
        typer.echo(json.dumps(_report_dict(report, report_file), indent=2, default=str))
    else:
        typer.echo(report.to_markdown())
    if report.status in TERRAFORM_DONE:
        return
    line = f"{report.status}: {report.message}; report and commands left: {report_file}"
    if report.status in TERRAFORM_LEFT_TO_RUN:
        typer.echo(f"error: {line}", err=True)
        sys.exit(EXIT_LEFT_TO_RUN)
    raise AuroraBGError(line)


def _report_dict(report: Any, report_file: Path) -> dict[str, Any]:
    return {
        "status": report.status,
        "message": report.message,
        "cluster_identifier": report.cluster_identifier,
        "terraform_dir": report.terraform_dir,
        "plan_only": report.plan_only,
        "steps": [{"action": s.action, "reason": s.reason, "facts": s.facts} for s in report.steps],
        "plan": report.plan.as_dict() if report.plan is not None else None,
        "diff": report.diff,
        "commands_left": report.commands_left,
        "report_file": str(report_file),
    }
