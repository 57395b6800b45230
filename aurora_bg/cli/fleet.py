"""`aurora-bg fleet`: many clusters, each by its own upgrade run, at most max_parallel at once."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aurora_bg.errors import AuroraBGError


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
