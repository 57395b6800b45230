"""The `aurora-bg` command line.

Every expected failure ends as one line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

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
) -> None:
    """Start the lab in the background (or say that it already runs)."""
    from lab import control

    info = control.up(lab_dir, instances, provisioning_delay, port)
    if info.get("already_running"):
        typer.echo(f"lab already running in {info['lab_dir']} at {info.get('endpoint_url')}")
        return
    typer.echo(
        f"lab up in {info['startup_seconds']} s: AWS API {info['endpoint_url']}, "
        f"blue PostgreSQL {info['versions']['blue']}, green PostgreSQL {info['versions']['green']}"
    )
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
    from aurora_bg.runner import load_parameters, run_upgrade

    params = load_parameters(
        params_file,
        {
            "cluster_identifier": cluster_identifier,
            "target_engine_version": target_engine_version,
            "target_cluster_parameter_group": target_cluster_parameter_group,
            "target_instance_parameter_group": target_instance_parameter_group,
        },
    )
    summary = run_upgrade(params, auto_approve=auto_approve)
    _print_summary(summary, as_json)
    if summary["state"] != "COMPLETED":
        raise AuroraBGError(summary["message"] or f"the run ended {summary['state']}")


@app.command("approve")
def approve(
    run_id: str = typer.Argument(..., help="The paused flow run's id."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approve."),
    comment: str = typer.Option("", "--comment"),
) -> None:
    """Answer a paused run's approval form through the Prefect API."""
    from aurora_bg.runner import resume

    resume(run_id, approve=not reject, comment=comment)
    typer.echo(f"{'rejected' if reject else 'approved'} flow run {run_id}")


@app.command("demo")
def demo(
    lab_dir: Path = LAB_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Bring the lab up if needed and run the whole upgrade against it, auto-approved."""
    import os

    from aurora_bg.runner import load_parameters, run_upgrade
    from lab import control

    info = control.up(lab_dir)
    os.environ.update(control.env_dict(info))
    typer.echo(f"lab: {info['endpoint_url']} ({lab_dir})")
    params = load_parameters(Path(__file__).parent.parent / "deployments" / "lab.yaml", {})
    summary = run_upgrade(params, auto_approve=True)
    _print_summary(summary, as_json)
    if summary["state"] != "COMPLETED":
        raise AuroraBGError(summary["message"] or f"the demo ended {summary['state']}")
    typer.echo(
        "look at: the Prefect UI's artifacts, `aurora-bg lab status`, then `aurora-bg lab down`"
    )


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
    except Exception as error:  # click's usage errors and anything unexpected: one line
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        typer.echo(f"error: unexpected {type(error).__name__}: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
