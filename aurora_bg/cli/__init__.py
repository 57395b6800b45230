"""The `aurora-bg` command line: the one part of the project that runs flows and the lab.

- `app`: the Typer app, `main()` (every expected failure as one line on stderr);
- `upgrade`: `run`, `approve`, `demo`; `fleet`: `fleet`; `deploy`: `deploy`;
  `terraform`: `terraform-reconcile`; `lab`: `lab up | down | status | env`;
- `runner`, `fleet_runner`: a flow run in this process, its pauses answered through the API;
- `environments`: environment files and the registration of prefect.yaml's deployments.
"""

from aurora_bg.cli.app import main

__all__ = ["main"]
