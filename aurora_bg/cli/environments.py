"""`aurora-bg deploy`: register prefect.yaml's deployments with an environment's parameters.

An environment file (`deployments/<environment>.yaml`) holds the flow's
parameters, as `aurora-bg run --params-file` reads them, plus an optional
`schedule:` section (cron, timezone, active) for the `maintenance-window`
deployment. Everything is checked before anything is registered: the
parameters with the flow's own pydantic model, the time zones with zoneinfo,
the cron with the parser the Prefect server uses. A wrong file ends with one
line.

Registration is Prefect's own: a copy of prefect.yaml with each deployment's
parameters (and the schedule) filled in goes through `prefect deploy --all`,
run from this checkout. prefect.yaml stays the one description of the
deployments (pool, pull step, schema enforcement, schedule), and nothing here
re-implements what `prefect deploy` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aurora_bg.errors import AuroraBGError, BadInput
from aurora_bg.params import UpgradeParameters, one_line, zone_named

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"
FLOW_NAME = "aurora-blue-green-upgrade"
# The fleet deployment runs another flow; its form (clusters, shared settings) is filled
# in the UI, so an environment's upgrade parameters are not written into it.
FLEET_ENTRYPOINT = "flows/fleet.py:aurora_blue_green_fleet"
FLEET_FLOW_NAME = "aurora-blue-green-fleet"


def flow_name_of(deployment: dict[str, Any]) -> str:
    return FLEET_FLOW_NAME if deployment.get("entrypoint") == FLEET_ENTRYPOINT else FLOW_NAME


SCHEDULED = "maintenance-window"
DEPLOY_TIMEOUT_SECONDS = 300


class Schedule(BaseModel):
    """The maintenance-window deployment's schedule: a cron in an IANA time zone."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(..., description="Five fields, for example 0 2 * * 0 (Sundays 02:00).")
    timezone: str = Field(..., description="IANA name, for example Asia/Tokyo.")
    active: bool = Field(False, description="Registered active; off: turn it on in the UI.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        # cronsim (a Prefect dependency) parses in no time; `register` checks again with
        # the parser of the Prefect server before anything is registered.
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as error:
            raise ValueError(f"{value!r} does not parse as a cron expression ({error})") from None
        return value

    def check_with_prefect(self) -> None:
        """The same schedule through the model the Prefect client sends to the server."""
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=self.cron, timezone=self.timezone)
        except ValidationError as error:
            detail = one_line(error).removeprefix("invalid parameters: ")
            raise BadInput(f"schedule: {detail}") from None


@dataclass(frozen=True)
class Environment:
    """A checked environment file."""

    path: Path
    parameters: UpgradeParameters
    schedule: Schedule | None

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".yaml").removesuffix(".yml")

    def parameters_json(self) -> dict[str, Any]:
        """The parameters the file sets (normalised), as the UI's form sends them."""
        return self.parameters.model_dump(mode="json", exclude_unset=True)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise BadInput(f"environment file {path} does not exist") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"environment file {path} is not valid YAML{where}") from None
    if not isinstance(loaded, dict):
        raise BadInput(f"environment file {path} must hold a mapping of parameters")
    return loaded


def load_environment(path: Path) -> Environment:
    """Read and check an environment file; BadInput (one line) on anything wrong."""
    data = _read_mapping(path)
    schedule_data = data.pop("schedule", None)
    try:
        parameters = UpgradeParameters.model_validate(data)
    except ValidationError as error:
        raise BadInput(f"{path}: {one_line(error)}") from None
    schedule = None
    if schedule_data is not None:
        try:
            schedule = Schedule.model_validate(schedule_data)
        except ValidationError as error:
            detail = one_line(error).removeprefix("invalid parameters: ")
            raise BadInput(f"{path}: invalid schedule: {detail}") from None
    return Environment(Path(path), parameters, schedule)


def render(environment: Environment, template: Path = PREFECT_YAML) -> dict[str, Any]:
    """prefect.yaml with the environment's parameters and schedule filled in (checked)."""
    project = yaml.safe_load(template.read_text())
    for deployment in project["deployments"]:
        if flow_name_of(deployment) == FLOW_NAME:
            deployment["parameters"] = {"parameters": environment.parameters_json()}
        deployment["tags"] = [*deployment.get("tags", []), f"environment:{environment.name}"]
        if deployment["name"] == SCHEDULED and environment.schedule is not None:
            deployment["schedules"] = [environment.schedule.model_dump()]
        for schedule in deployment.get("schedules") or []:
            try:
                Schedule.model_validate(schedule)
            except ValidationError as error:
                raise BadInput(f"{template}: {deployment['name']}: {one_line(error)}") from None
    return project


def schedules(project: dict[str, Any]) -> list[Schedule]:
    return [
        Schedule.model_validate(schedule)
        for deployment in project["deployments"]
        for schedule in deployment.get("schedules") or []
    ]


def summary(project: dict[str, Any]) -> list[str]:
    """One line per deployment: name, pool, schedule."""
    lines = []
    for deployment in project["deployments"]:
        schedules = deployment.get("schedules") or []
        when = "; ".join(
            f"cron {s['cron']} {s['timezone']} ({'active' if s.get('active') else 'inactive'})"
            for s in schedules
        )
        lines.append(
            f"{flow_name_of(deployment)}/{deployment['name']} on work pool "
            f"{deployment['work_pool']['name']}: {when or 'run by hand'}"
        )
    return lines


def _api_url() -> str:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise BadInput(
            "PREFECT_API_URL is not set: start a server (prefect server start) and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return url


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool `name` unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        unhealthy = client.api_healthcheck()
        if unhealthy is not None:
            raise AuroraBGError(f"the Prefect API at {_api_url()} does not answer: {unhealthy}")
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            return True


def register(environment: Environment) -> list[str]:
    """Register every deployment of prefect.yaml with `environment`; returns report lines."""
    project = render(environment)
    for schedule in schedules(project):
        schedule.check_with_prefect()
    api_url = _api_url()
    pools = {d["work_pool"]["name"] for d in project["deployments"]}
    lines = [f"created process work pool {p}" for p in sorted(pools) if ensure_work_pool(p)]
    with tempfile.TemporaryDirectory(prefix="aurora-bg-deploy-") as tmp:
        prefect_file = Path(tmp) / "prefect.yaml"
        prefect_file.write_text(yaml.safe_dump(project, sort_keys=False))
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "prefect"),
                "--no-prompt",
                "deploy",
                "--all",
                "--prefect-file",
                str(prefect_file),
            ],
            cwd=ROOT,
            env={**os.environ, "PREFECT_API_URL": api_url},
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_SECONDS,
        )
    if done.returncode != 0:
        output = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
        last = next((line for line in reversed(output) if line), "no output")
        raise AuroraBGError(f"prefect deploy failed ({done.returncode}): {last}")
    ids = registered_ids([f"{flow_name_of(d)}/{d['name']}" for d in project["deployments"]])
    lines += [
        f"registered {line} (id {ids[d['name']]})"
        for line, d in zip(summary(project), project["deployments"], strict=True)
    ]
    lines.append(f"parameters from {environment.path}; Prefect API {api_url}")
    return lines


def registered_ids(names: list[str]) -> dict[str, str]:
    """The server's id of each `flow/deployment` name, by deployment name; AuroraBGError if one
    is missing."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    ids = {}
    with get_client(sync_client=True) as client:
        for name in names:  # flow/deployment
            try:
                ids[name.split("/", 1)[1]] = str(client.read_deployment_by_name(name).id)
            except ObjectNotFound:
                raise AuroraBGError(f"prefect deploy did not register {name}") from None
    return ids
