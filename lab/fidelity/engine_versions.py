"""DescribeDBEngineVersions for aurora-postgresql 15.x and 16.x.

moto 5.2.5 has no DescribeDBEngineVersions: it answers HTTP 500, which a
client takes for a transient error. AWS documents, for each version, its
parameter-group family and its `ValidUpgradeTarget` list: later minor
versions of the same major (`IsMajorVersionUpgrade` false) and, for 15.x, the
16.x versions a major upgrade may go to (`IsMajorVersionUpgrade` true).
CreateBlueGreenDeployment refuses a TargetEngineVersion that is not a valid
upgrade target with `InvalidParameterCombination`. (AWS-FACTS S13, the RDS API
reference of DescribeDBEngineVersions and CreateBlueGreenDeployment; which source
versions support Blue/Green at all, S11, is `creation_refusals`'.)
"""

from __future__ import annotations

from typing import Any

from lab.fidelity.patching import patch

ENGINE = "aurora-postgresql"
VERSIONS = ["15.2", "15.3", "15.4", "15.5", "15.6", "15.7", "16.1", "16.2", "16.3"]
# The lowest 16.x a 15.x may upgrade to: AWS pairs minors so that the target
# is at least as recent as the source's release.
FIRST_MAJOR_TARGET = {"15.2": "16.1", "15.3": "16.1", "15.4": "16.1", "15.5": "16.1",
                      "15.6": "16.2", "15.7": "16.3"}  # fmt: skip


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def major(version: str) -> int:
    return _key(version)[0]


def family(version: str) -> str:
    return f"{ENGINE}{major(version)}"


def description(version: str) -> str:
    return f"Aurora PostgreSQL (Compatible with PostgreSQL {version})"


def upgrade_targets(version: str) -> list[dict[str, Any]]:
    """AWS's ValidUpgradeTarget entries for `version`, oldest first."""
    targets = []
    for candidate in VERSIONS:
        if _key(candidate) <= _key(version):
            continue
        is_major = major(candidate) != major(version)
        if is_major and (
            major(candidate) != major(version) + 1
            or _key(candidate) < _key(FIRST_MAJOR_TARGET.get(version, "99"))
        ):
            continue
        targets.append(
            {
                "Engine": ENGINE,
                "EngineVersion": candidate,
                "Description": description(candidate),
                "AutoUpgrade": False,
                "IsMajorVersionUpgrade": is_major,
                "SupportedEngineModes": ["provisioned"],
            }
        )
    return targets


def is_valid_upgrade(source: str, target: str) -> bool:
    return any(t["EngineVersion"] == target for t in upgrade_targets(source))


def describe(engine: str | None, version: str | None, family_name: str | None) -> list[dict]:
    """The catalogue entries matching DescribeDBEngineVersions' filters."""
    if engine not in (None, ENGINE):
        return []
    entries = []
    for candidate in VERSIONS:
        if version and not (candidate == version or candidate.startswith(version + ".")):
            continue
        if family_name and family(candidate) != family_name:
            continue
        entries.append(
            {
                "Engine": ENGINE,
                "EngineVersion": candidate,
                "DBParameterGroupFamily": family(candidate),
                "DBEngineDescription": "Aurora (PostgreSQL)",
                "DBEngineVersionDescription": description(candidate),
                "ValidUpgradeTarget": upgrade_targets(candidate),
                "SupportedEngineModes": ["provisioned"],
                "Status": "available",
            }
        )
    return entries


def install() -> None:
    """Teach moto's RDS responder the DescribeDBEngineVersions action."""
    from moto.core.responses import ActionResult
    from moto.rds.responses import RDSResponse

    def describe_db_engine_versions(self: RDSResponse) -> ActionResult:
        entries = describe(
            self.params.get("Engine"),
            self.params.get("EngineVersion"),
            self.params.get("DBParameterGroupFamily"),
        )
        return ActionResult({"DBEngineVersions": entries})

    patch(RDSResponse, "describe_db_engine_versions", describe_db_engine_versions)
