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


def main() -> None:
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
