"""The `aurora-bg` command: one Typer app, one module per command group.

Every expected failure ends as one line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from typer.exceptions import TyperException

from aurora_bg.cli.deploy import deploy
from aurora_bg.cli.fleet import fleet
from aurora_bg.cli.lab import lab_app
from aurora_bg.cli.terraform import terraform_reconcile
from aurora_bg.cli.upgrade import approve, demo, run
from aurora_bg.errors import AuroraBGError

app = typer.Typer(
    help="Upgrade an Aurora PostgreSQL cluster through an RDS Blue/Green deployment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(lab_app, name="lab")
app.command("run")(run)
app.command("fleet")(fleet)
app.command("deploy")(deploy)
app.command("approve")(approve)
app.command("demo")(demo)
app.command("terraform-reconcile")(terraform_reconcile)


def quiet_defaults() -> None:
    """Defaults for a command-line run, each overridable from the environment:
    no telemetry (a machine without internet access would wait for it on
    shutdown) and no per-request HTTP logging from the Prefect client."""
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
