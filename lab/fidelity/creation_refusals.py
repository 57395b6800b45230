"""What CreateBlueGreenDeployment refuses at once, before it creates anything.

AWS facts reproduced here:
- Source versions (AWS-FACTS S11, "Supported Regions and engines for B/G",
  …/AuroraUserGuide/Concepts.Aurora_Fea_Regions_DB-eng.Feature.BlueGreenDeployments.html):
  an Aurora PostgreSQL source supports Blue/Green from 11.21, 12.16, 13.12, 14.9, 15.4
  and 16.1 on (later majors from their first version). An older source is refused as a
  source cluster the feature does not support (SourceClusterNotSupportedFault, the
  API reference's fault for "the source DB cluster isn't supported for a blue/green
  deployment", S13).
- The writer in sync with its parameter group (S2, "Creating a B/G deployment",
  section "Preparing an Aurora PostgreSQL DB cluster",
  …/AuroraUserGuide/blue-green-deployments-creating.html; S12): a static parameter
  such as `rds.logical_replication` must have reached the writer before the creation.
  AWS documents the prerequisite but not which error a writer still `pending-reboot`
  gets; the lab answers InvalidDBClusterStateFault (the cluster is not in a state the
  operation accepts), naming the status and the instance. (A field report of the
  non-Aurora case saw SourceDatabaseNotSupportedFault; a caller should not rely on
  the code, only on being refused.)
- The deployment name (S13, BlueGreenDeploymentName): 1–60 characters matching
  `[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*`; botocore does not check it.
"""

from __future__ import annotations

import re
from typing import Any

from lab.fidelity import parameter_groups

# The first version of each major that supports Blue/Green deployments.
FIRST_SUPPORTED = {11: (11, 21), 12: (12, 16), 13: (13, 12), 14: (14, 9), 15: (15, 4), 16: (16, 1)}
NAME_PATTERN = re.compile(r"[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*")
NAME_LIMIT = 60


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def supports_blue_green(engine_version: str) -> bool:
    """Whether an Aurora PostgreSQL source at `engine_version` may be a deployment's source."""
    version = _version(engine_version)
    if not version:
        return False
    first = FIRST_SUPPORTED.get(version[0])
    if first is None:
        return version[0] > max(FIRST_SUPPORTED)
    return version >= first


def _error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def check(source: Any, name: str) -> None:
    """Raise the error AWS answers when `source` or `name` cannot start a deployment."""
    if not (1 <= len(name) <= NAME_LIMIT and NAME_PATTERN.fullmatch(name)):
        raise _error(
            "InvalidParameterValue",
            f"The parameter BlueGreenDeploymentName is not valid: {name!r} must be 1 to "
            f"{NAME_LIMIT} letters, digits or hyphens, start with a letter, and not end "
            "with a hyphen or contain two consecutive hyphens.",
        )
    if not supports_blue_green(source.engine_version):
        raise _error(
            "SourceClusterNotSupportedFault",
            f"The source DB cluster {source.db_cluster_arn} isn't supported for a blue/green "
            f"deployment: engine version {source.engine_version} doesn't support blue/green "
            "deployments. Upgrade to a supported minor version first.",
        )
    writer = source.writer
    status = parameter_groups.writer_status(source)
    if writer is not None and status != parameter_groups.IN_SYNC:
        raise _error(
            "InvalidDBClusterStateFault",
            f"The DB cluster parameter group status of writer instance "
            f"{writer.db_instance_identifier} of DB cluster {source.db_cluster_identifier} is "
            f"{status}; reboot it so that it is {parameter_groups.IN_SYNC} before creating a "
            "blue/green deployment.",
        )
