"""`aurora-bg deploy`: register prefect.yaml's deployments with an environment file."""

from __future__ import annotations

from pathlib import Path

import typer


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
    from aurora_bg.cli.environments import load_environment, register, render, summary

    loaded = load_environment(environment)
    lines = summary(render(loaded)) if check else register(loaded)
    for line in lines:
        typer.echo(line)
