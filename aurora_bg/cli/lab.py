"""`aurora-bg lab up | down | status | env`: the local rehearsal lab."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aurora_bg.errors import AuroraBGError

lab_app = typer.Typer(help="The local rehearsal lab: AWS API on loopback + real PostgreSQL.")

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
    databases: int = typer.Option(
        1,
        "--databases",
        help="Application databases seeded with the demo schema: app, app_2, … app_N.",
    ),
    enforce_iam: bool = typer.Option(
        False,
        "--enforce-iam",
        help="Enforce IAM; the environment's keys hold only deployments/iam-policy.json.",
    ),
) -> None:
    """Start the lab in the background (or say that it already runs)."""
    from lab import control

    info = control.up(
        lab_dir, instances, provisioning_delay, port, clusters, iam=enforce_iam, databases=databases
    )
    if info.get("already_running"):
        typer.echo(f"lab already running in {info['lab_dir']} at {info.get('endpoint_url')}")
        return
    typer.echo(
        f"lab up in {info['startup_seconds']} s: AWS API {info['endpoint_url']}, "
        f"blue PostgreSQL {info['versions']['blue']}, green PostgreSQL {info['versions']['green']}"
    )
    if databases > 1:
        typer.echo(f"application databases: {', '.join(info['databases'])}")
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
