"""The fleet flow's parameters: which clusters, the shared upgrade settings, how many at once.

The shared settings are the upgrade's own parameters (aurora_bg/params.py) less
the cluster's name; a per-cluster override replaces any of them for one
cluster. Every cluster's full parameters are validated before anything runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from aurora_bg.params import UpgradeParameters, one_line

TAG = re.compile(r"^[^=\s]+=[^=]*$")
PER_CLUSTER_ONLY = ("cluster_identifier", "deployment_name")
MAX_CLUSTERS = 200
MAX_PARALLEL = 50

if TYPE_CHECKING:
    # A model built at run time is invisible to a type checker. Every field the
    # shared settings hold has the type it has in the upgrade's parameters, so
    # to the checker they are those parameters.
    FleetUpgradeSettings = UpgradeParameters
else:
    # The upgrade's parameters without the ones that only make sense for one cluster.
    FleetUpgradeSettings = create_model(
        "FleetUpgradeSettings",
        __config__=ConfigDict(extra="forbid", title="Upgrade settings shared by every cluster"),
        **{
            name: (info.annotation, info)
            for name, info in UpgradeParameters.model_fields.items()
            if name not in PER_CLUSTER_ONLY
        },
    )


class FleetParameters(BaseModel):
    """A fleet upgrade: clusters (listed, or found by tag), shared settings, pacing."""

    model_config = ConfigDict(extra="forbid")

    clusters: list[str] = Field(
        default_factory=list,
        title="Clusters",
        description="DB cluster identifiers to upgrade; empty: every cluster carrying the tag.",
    )
    tag: str | None = Field(
        default=None,
        title="Tag filter (key=value)",
        description="Upgrade every Aurora PostgreSQL cluster carrying this tag (read-only "
        "discovery at the start). Give either clusters or a tag.",
    )
    settings: FleetUpgradeSettings = Field(..., title="Upgrade settings")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        title="Per-cluster overrides",
        description="cluster identifier -> settings that differ for that cluster.",
    )
    max_parallel: int = Field(
        default=2, ge=1, le=MAX_PARALLEL, title="Clusters at once", description="At most this many."
    )
    approval: Literal["per-cluster", "batch"] = Field(
        default="per-cluster",
        title="Approvals",
        description="per-cluster: every cluster's run pauses for its own approval; batch: "
        "one approval per gate, in the fleet's run, for every cluster waiting at it.",
    )
    aws_calls_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        title="AWS API calls per second",
        description="Every AWS API attempt of every cluster's run shares this rate "
        "(a Prefect rate limit); empty: no limit.",
    )

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None and not TAG.match(value):
            raise ValueError("must look like key=value, for example fleet=payments")
        return value

    @model_validator(mode="after")
    def _clusters_or_tag(self) -> FleetParameters:
        if bool(self.clusters) == bool(self.tag):
            raise ValueError("give either clusters (a list) or tag (key=value), not both")
        if len(self.clusters) > MAX_CLUSTERS:
            raise ValueError(f"at most {MAX_CLUSTERS} clusters in one fleet")
        if len(set(self.clusters)) != len(self.clusters):
            raise ValueError("clusters lists a cluster twice")
        for cluster, override in self.overrides.items():
            if self.clusters and cluster not in self.clusters:
                raise ValueError(f"overrides names {cluster}, which is not in clusters")
            refused = [key for key in PER_CLUSTER_ONLY if key in override]
            if refused:
                raise ValueError(f"overrides.{cluster}: {refused[0]} cannot be overridden")
        for cluster in self.clusters:
            self.for_cluster(cluster)
        return self

    @property
    def tag_pair(self) -> tuple[str, str]:
        key, _, value = (self.tag or "").partition("=")
        return key, value

    def for_cluster(self, cluster: str) -> UpgradeParameters:
        """The upgrade's parameters for `cluster`; ValueError naming the cluster and field."""
        data = {
            **self.settings.model_dump(exclude_unset=True),
            **self.overrides.get(cluster, {}),
            "cluster_identifier": cluster,
        }
        try:
            return UpgradeParameters.model_validate(data)
        except ValidationError as error:
            raise ValueError(f"{cluster}: {one_line(error)}") from None
