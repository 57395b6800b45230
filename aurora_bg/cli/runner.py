"""Run the upgrade flow in this process, and answer its pauses through the API.

`--auto-approve` does not bypass the pauses: a watcher resumes each pause
through the Prefect API with an "approve" form, exactly as a person would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aurora_bg.errors import BadInput
from aurora_bg.params import UpgradeParameters, one_line

AUTO_APPROVE_COMMENT = "approved by aurora-bg run --auto-approve"


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (empty for an empty file); one-line BadInput otherwise."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{what} {path} is not valid YAML{where}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise BadInput(f"{what} {path} must hold a mapping of parameters")
    return loaded or {}


def load_parameters(params_file: Path | None, overrides: dict[str, Any]) -> UpgradeParameters:
    """Merge a YAML parameters file with command-line values; one-line BadInput on error."""
    data: dict[str, Any] = {}
    if params_file is not None:
        data.update(read_yaml_mapping(params_file, "parameters file"))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return UpgradeParameters.model_validate(data)
    except ValidationError as error:
        raise BadInput(one_line(error)) from None


def _approve_paused_runs(tag: str, stop: threading.Event, answered: list[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    flow_filter = FlowRunFilter(
        tags=FlowRunFilterTags(all_=[tag]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
    )
    with get_client(sync_client=True) as client:
        while not stop.is_set():
            for run in client.read_flow_runs(flow_run_filter=flow_filter):
                if run.state is None:  # the filter asked for paused runs: never the case
                    continue
                key = f"{run.id}:{run.state.state_details.pause_key}"
                if key in answered:
                    continue
                try:
                    resume_flow_run(
                        run.id, run_input={"decision": "approve", "comment": AUTO_APPROVE_COMMENT}
                    )
                    answered.append(key)
                except Exception:  # the pause may not have registered its input yet
                    pass
            stop.wait(0.5)


@contextmanager
def auto_approving(tag: str, enabled: bool) -> Iterator[list[str]]:
    """While the block runs (and `enabled`), approve every pause of the runs tagged `tag`
    through the API; yields the list of pauses answered."""
    stop = threading.Event()
    answered: list[str] = []
    watcher = None
    if enabled:
        watcher = threading.Thread(
            target=_approve_paused_runs, args=(tag, stop, answered), daemon=True
        )
        watcher.start()
    try:
        yield answered
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)


def run_upgrade(params: UpgradeParameters, auto_approve: bool = False) -> dict[str, Any]:
    """Run the flow here; returns the summary (flow run id, state, cluster facts, artifacts)."""
    from prefect import tags

    from flows.upgrade import aurora_blue_green_upgrade
    from tasks.artifacts import artifact_key
    from tasks.rds_state import describe_cluster

    tag = f"aurora-bg-cli-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    with (
        auto_approving(tag, auto_approve) as answered,
        tags(tag, f"cluster:{params.cluster_identifier}"),
    ):
        state = aurora_blue_green_upgrade(params, return_state=True)
    cluster = describe_cluster(params.cluster_identifier) or {}
    summary: dict[str, Any] = {
        "flow_run_id": str(state.state_details.flow_run_id),
        "state": state.type.value,
        "message": state.message or "",
        "seconds": round(time.monotonic() - started, 1),
        "cluster": params.cluster_identifier,
        "engine_version": cluster.get("EngineVersion"),
        "secret_arn": (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
        "approvals": len(answered),
        "report_artifact": artifact_key(params.cluster_identifier, "report"),
    }
    if state.is_completed():
        result = state.result()
        summary["artifacts"] = result.get("artifacts", []) if isinstance(result, dict) else []
    return summary


def resume(run_id: str, approve: bool, comment: str) -> None:
    """Answer a paused run's form through the Prefect API."""
    from prefect.flow_runs import resume_flow_run

    try:
        flow_run_id = uuid.UUID(run_id)
    except ValueError:
        raise BadInput(f"{run_id!r} is not a flow run id (a UUID)") from None
    from prefect.exceptions import NotPausedError, ObjectNotFound
    from prefect.settings import get_current_settings

    decision = "approve" if approve else "reject"
    try:
        resume_flow_run(flow_run_id, run_input={"decision": decision, "comment": comment})
    except ObjectNotFound:
        api = get_current_settings().api.url or "a temporary local server (PREFECT_API_URL unset)"
        raise BadInput(
            f"no flow run {run_id} at the Prefect API {api}: copy the id from the paused "
            "run's page and point PREFECT_API_URL at the server that runs it"
        ) from None
    except NotPausedError:
        raise BadInput(f"flow run {run_id} is not paused: answer only a run that waits") from None
    except Exception as error:
        raise BadInput(f"cannot resume flow run {run_id}: {error}") from None
