"""Run the fleet flow in this process (`aurora-bg fleet`), like `aurora-bg run` does one.

`--auto-approve` answers every pause of the fleet's runs through the Prefect
API with an "approve" form, as a person would: each cluster's pauses in
per-cluster mode, the fleet's own in batch mode.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aurora_bg.cli.runner import auto_approving, read_yaml_mapping
from aurora_bg.errors import BadInput
from aurora_bg.fleet_params import FleetParameters
from aurora_bg.params import one_line


def load_fleet_parameters(params_file: Path) -> FleetParameters:
    """The fleet's parameters from a YAML file; one-line BadInput on error."""
    data = read_yaml_mapping(params_file, "fleet parameters file")
    try:
        return FleetParameters.model_validate(data)
    except ValidationError as error:
        raise BadInput(one_line(error)) from None


def run_fleet(params: FleetParameters, auto_approve: bool = False) -> dict[str, Any]:
    """Run the fleet flow here; returns its summary (state, message, one row per cluster)."""
    from prefect import tags

    from flows.fleet import aurora_blue_green_fleet

    tag = f"aurora-bg-fleet-cli-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    with auto_approving(tag, auto_approve) as answered, tags(tag):
        state = aurora_blue_green_fleet(params, return_state=True)
    data = state.result(raise_on_failure=False) if state.is_final() else None
    return {
        "flow_run_id": str(state.state_details.flow_run_id),
        "state": state.type.value,
        "message": state.message or "",
        "seconds": round(time.monotonic() - started, 1),
        "approvals": len(answered),
        "clusters": data.get("clusters", []) if isinstance(data, dict) else [],
        "report_artifact": "fleet-report",
    }
