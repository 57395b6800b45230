"""Zero-ETL integrations of a cluster: CreateIntegration, DescribeIntegrations,
DeleteIntegration.

AWS fact (AWS-FACTS S1, "Aurora B/G limitations and considerations",
…/AuroraUserGuide/blue-green-deployments-considerations.html): zero-ETL integrations
of the source cluster must be deleted before the switchover, so a preflight looks for
them with DescribeIntegrations (S13: IntegrationIdentifier is the integration's name or
ARN; the answer lists `Integrations` with SourceArn, TargetArn, IntegrationName,
IntegrationArn, Status, CreateTime, Tags). An unknown identifier is
IntegrationNotFoundFault.

moto 5.2.5 has none of these actions. The lab keeps integrations in memory, empty
until a test creates one; their target (a Redshift namespace) is taken on trust.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from lab.fidelity.patching import patch
from lab.fidelity.world import world

_integrations: dict[str, dict[str, Any]] = {}  # ARN -> the Integration as AWS shows it


def _error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def create(params: Any) -> dict[str, Any]:
    from moto.rds.models import find_cluster

    source = str(params.get("SourceArn") or "")
    name = str(params.get("IntegrationName") or "")
    find_cluster(source)  # DBClusterNotFoundFault for an unknown source
    if any(i["IntegrationName"] == name for i in _integrations.values()):
        raise _error("IntegrationAlreadyExistsFault", f"Integration {name} already exists.")
    lab = world()
    arn = f"arn:aws:rds:{lab.region}:{lab.account}:integration:{uuid.uuid4()}"
    integration = {
        "SourceArn": source,
        "TargetArn": str(params.get("TargetArn") or ""),
        "IntegrationName": name,
        "IntegrationArn": arn,
        "Status": "active",
        "Tags": list(params.get("Tags") or []),
        "CreateTime": datetime.now(UTC),
        "Errors": [],
    }
    _integrations[arn] = integration
    return integration


def find(identifier: str | None) -> list[dict[str, Any]]:
    if not identifier:
        return list(_integrations.values())
    found = [
        i
        for i in _integrations.values()
        if identifier in (i["IntegrationArn"], i["IntegrationName"])
    ]
    if not found:
        raise _error("IntegrationNotFoundFault", f"Integration {identifier} not found.")
    return found


def delete(identifier: str) -> dict[str, Any]:
    integration = dict(find(identifier)[0])
    del _integrations[integration["IntegrationArn"]]
    integration["Status"] = "deleting"
    return integration


def install() -> None:
    """Teach moto's RDS responder the three integration actions."""
    from moto.core.responses import ActionResult
    from moto.rds.responses import RDSResponse

    def create_integration(self: RDSResponse) -> ActionResult:
        return ActionResult(create(self.params))

    def describe_integrations(self: RDSResponse) -> ActionResult:
        return ActionResult({"Integrations": find(self.params.get("IntegrationIdentifier"))})

    def delete_integration(self: RDSResponse) -> ActionResult:
        return ActionResult(delete(str(self.params.get("IntegrationIdentifier"))))

    patch(RDSResponse, "create_integration", create_integration)
    patch(RDSResponse, "describe_integrations", describe_integrations)
    patch(RDSResponse, "delete_integration", delete_integration)
