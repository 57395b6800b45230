"""The flow's parameters: one pydantic model, so the Prefect UI renders a form.

Nothing secret is a parameter: region and credentials come from the standard
AWS chain, the master password from Secrets Manager (the cluster's managed
secret, or for a self-managed password the secret `credentials_secret_arn`
names: a reference, never a value).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

IDENTIFIER = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}$")
VERSION = re.compile(r"^\d+\.\d+$")
# A Secrets Manager secret's ARN (partition, region, account, then the name and its suffix).
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$")
# Fields whose input a message never repeats: a password pasted by mistake must not be shown.
NEVER_SHOWN = frozenset({"credentials_secret_arn"})
LOCAL_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError with a hint when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Tokyo or UTC)"
        ) from None


class ValidationSettings(BaseModel):
    """How green is checked, read-only, before anyone is asked to approve."""

    model_config = ConfigDict(extra="forbid")

    database: str = Field(
        default="postgres",
        title="Database",
        description="Database of your checks file, and of the logins that need just one.",
    )
    databases: list[str] = Field(
        default_factory=list,
        title="Databases",
        description="Databases whose replication to green is validated; empty means every "
        "database of the cluster (AWS replicates them all). Preflight always checks every one.",
    )
    schemas: list[str] = Field(
        default_factory=list,
        title="Schemas",
        description="Schemas whose tables are compared between blue and green; empty means "
        "every schema but PostgreSQL's own.",
    )
    tables: list[str] = Field(
        default_factory=list,
        title="Tables",
        description="Tables to compare (schema.table); empty means every table of the schemas.",
    )
    checks_file: Path | None = Field(
        default=None,
        title="Checks file",
        description="YAML file of your own read-only checks, run next to the built-in ones "
        "(see deployments/checks.example.yaml). Preflight refuses a file that does not parse, "
        "has unknown keys, or whose SQL does not plan on blue or would write.",
    )
    exact_count_limit: int = Field(
        default=100_000,
        ge=0,
        title="Exact count limit (rows)",
        description="Tables whose planner estimate reaches this many rows are compared by "
        "estimate (marked as such) instead of count(*).",
    )
    lag_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        le=600,
        title="Replication grace (s)",
        description="How long green may take to catch up with blue (WAL position, row "
        "counts) before a difference is a blocker.",
    )
    long_transaction_seconds: float = Field(
        default=60.0,
        ge=1,
        title="Long transaction on blue (s)",
        description="A transaction open on blue for longer blocks the switchover if it has "
        "written, warns if it only reads.",
    )
    statement_timeout_ms: int = Field(
        default=15_000,
        ge=100,
        le=3_600_000,
        title="Statement timeout (ms)",
        description="Bound on every validation statement, on green and on blue.",
    )


class TerraformSettings(BaseModel):
    """Where the Terraform configuration that manages the cluster lives."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False, title="Reconcile Terraform", description="Run the Terraform phase."
    )
    working_dir: Path | None = Field(default=None, title="Working directory")
    terraform_bin: str = Field(default="terraform", title="terraform executable")
    apply: bool = Field(
        default=False,
        title="Apply",
        description="Apply the plan; off: plan only, leave the commands to run.",
    )
    allow_newer_cli: bool = Field(
        default=False,
        title="Allow a newer CLI",
        description="Let a newer terraform rewrite the state.",
    )


class SwitchoverWindow(BaseModel):
    """When the switchover may start: on some weekdays, between two local times."""

    model_config = ConfigDict(extra="forbid", title="Switchover window")

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,
        title="Days",
        description="Days on which the window opens (local time). A window that crosses "
        "midnight belongs to the day it opens: sat 23:00–01:00 ends on Sunday.",
    )
    start: str = Field(
        ...,
        title="Opens at",
        description="Local time HH:MM, for example 02:00.",
        json_schema_extra={"pattern": LOCAL_TIME},
    )
    end: str = Field(
        ...,
        title="Closes at",
        description="Local time HH:MM; earlier than the opening means the window crosses "
        "midnight. The switchover must start before this time.",
        json_schema_extra={"pattern": LOCAL_TIME},
    )
    timezone: str = Field(
        default="UTC", title="Time zone", description="IANA name, for example Asia/Tokyo."
    )

    @field_validator("start", "end")
    @classmethod
    def _local_time(cls, value: str) -> str:
        if not re.match(LOCAL_TIME, value):
            raise ValueError("must be a local time HH:MM between 00:00 and 23:59")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> SwitchoverWindow:
        if self.start == self.end:
            raise ValueError("start and end must differ (a window needs some length)")
        return self


class UpgradeParameters(BaseModel):
    """Everything one upgrade needs. Validated before any AWS call."""

    model_config = ConfigDict(extra="forbid")

    cluster_identifier: str = Field(
        ..., title="Cluster", description="DB cluster identifier of the blue cluster."
    )
    target_engine_version: str = Field(
        ..., title="Target engine version", description="For example 16.2."
    )
    target_cluster_parameter_group: str = Field(
        ..., title="Target cluster parameter group", description="Family must match the target."
    )
    target_instance_parameter_group: str = Field(
        ..., title="Target instance parameter group", description="Family must match the target."
    )
    deployment_name: str | None = Field(
        default=None,
        title="Blue/Green deployment name",
        description="Default: aurora-bg-<cluster>-<target version>.",
    )
    credentials_secret_arn: str | None = Field(
        default=None,
        title="Master credentials secret (ARN)",
        description="Only for a cluster whose master password is self-managed: the Secrets "
        "Manager secret holding it, as JSON with username and password (as RDS writes them). "
        "The tool reads it to log in and leaves the password self-managed.",
    )
    switchover_timeout_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        title="Switchover timeout (s)",
        description="AWS allows 30–3600.",
    )
    approval_timeout_seconds: int = Field(
        default=86400,
        ge=60,
        le=30 * 86400,
        title="Approval timeout (s)",
        description="How long each pause waits for a person before taking the way out.",
    )
    switchover_window: SwitchoverWindow | None = Field(
        default=None,
        title="Switchover window",
        description="When the switchover may start (days, local times, time zone); "
        "empty: as soon as it is approved.",
    )
    outside_window: Literal["wait", "way-out"] = Field(
        default="wait",
        title="Approved outside the window",
        description="wait: switch over at the next opening if it comes within the approval "
        "timeout, else take the way out; way-out: delete green and put everything back.",
    )
    provisioning_timeout_seconds: int = Field(
        default=4 * 3600,
        ge=60,
        title="Provisioning timeout (s)",
        description="Wait for green at most.",
    )
    delete_old_blue: bool = Field(
        default=True, title="Delete the old blue cluster after switchover"
    )
    final_snapshot: bool = Field(default=True, title="Final snapshot of the old blue cluster")
    validation: ValidationSettings = Field(
        default_factory=ValidationSettings, title="Green validation (read-only)"
    )
    terraform: TerraformSettings = Field(default_factory=TerraformSettings, title="Terraform")

    @field_validator("cluster_identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value) or value.endswith("-") or "--" in value:
            raise ValueError(
                "must start with a letter and hold only letters, digits and single hyphens"
            )
        return value.lower()

    @field_validator("credentials_secret_arn")
    @classmethod
    def _secret_arn(cls, value: str | None) -> str | None:
        # The message never repeats the value: it might be the password itself.
        if value is not None and not SECRET_ARN.match(value):
            raise ValueError(
                "must be the ARN of a Secrets Manager secret "
                "(arn:aws:secretsmanager:<region>:<account>:secret:<name>), never a password"
            )
        return value

    @field_validator("target_engine_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not VERSION.match(value):
            raise ValueError("must look like 16.2 (major.minor)")
        return value

    @model_validator(mode="after")
    def _terraform_dir_when_enabled(self) -> UpgradeParameters:
        if self.terraform.enabled and self.terraform.working_dir is None:
            raise ValueError("terraform.working_dir is required when terraform.enabled is true")
        return self

    @property
    def target_major(self) -> int:
        return int(self.target_engine_version.split(".")[0])

    @property
    def effective_deployment_name(self) -> str:
        version = self.target_engine_version.replace(".", "-")
        return self.deployment_name or f"aurora-bg-{self.cluster_identifier}-{version}"


# The fix that goes with pydantic's wording, where its message alone does not say it.
FIXES = {
    "missing": "add it",
    "extra_forbidden": "not a known field: check its spelling or remove it",
}
SHOWN_INPUT_CHARS = 60


def _got(item: ErrorDetails) -> str:
    """` (got 'value')` for a short scalar input the message does not already show
    (never for a field in NEVER_SHOWN)."""
    if NEVER_SHOWN.intersection(str(part) for part in item["loc"]):
        return ""
    value = item.get("input")
    shown = repr(value)
    if not isinstance(value, (str, int, float, bool)) or len(shown) > SHOWN_INPUT_CHARS:
        return ""
    already = re.search(rf"(?<![\w.]){re.escape(shown)}(?![\w.])", item["msg"])
    return "" if already else f" (got {shown})"


def one_line(error: Exception) -> str:
    """A pydantic ValidationError as one line naming each field, what is wrong and the fix."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "parameters"
        message = item["msg"].removeprefix("Value error, ")
        fix = FIXES.get(item["type"])
        parts.append(f"{field}: {message}" + (f" ({fix})" if fix else _got(item)))
    return "invalid parameters: " + "; ".join(parts)


def parameters_from(value: UpgradeParameters | dict[str, Any]) -> UpgradeParameters:
    """The flow's parameters, checked: BadInput in one line when they cannot be used.

    The flow checks its parameters itself (not through Prefect's own validation,
    whose message spans several lines), so that a run started through the API
    with wrong parameters fails with the same one line as the command line.
    """
    from pydantic import ValidationError

    from aurora_bg.errors import BadInput

    try:
        return UpgradeParameters.model_validate(value)
    except ValidationError as error:
        raise BadInput(one_line(error)) from None
