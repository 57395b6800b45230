"""The half of IAM evaluation moto skips: resources and request-tag conditions.

moto checks each call's action against the caller's policies but matches every
Resource element against "*" and fails every Condition (see `lab.fidelity.iam`).
This module replays the lab's call log (`lab.fidelity.call_log`) against a
filled policy the way AWS would for the calls the upgrade makes: it derives the
ARNs each call acts on from its parameters (the resource types the Service
Authorization Reference lists for the action) and the tags it sends, then asks
whether an Allow statement covers every one of them and no Deny does. It knows
only the actions the flow calls. (AWS-FACTS S14, the Service Authorization Reference,
docs.aws.amazon.com/service-authorization/latest/reference/list_amazonrds.html.)
"""

from __future__ import annotations

import re
from typing import Any

# Resources AWS authorizes each action against, as (resource type, parameter) pairs;
# an ARN-valued parameter is taken as is.
_RDS_RESOURCES: dict[str, list[tuple[str, str]]] = {
    "ModifyDBCluster": [("cluster", "DBClusterIdentifier")],
    "DeleteDBCluster": [("cluster", "DBClusterIdentifier")],
    "DeleteDBInstance": [("db", "DBInstanceIdentifier")],
    "CreateBlueGreenDeployment": [
        ("cluster", "Source"),
        ("cluster-pg", "TargetDBClusterParameterGroupName"),
        ("pg", "TargetDBParameterGroupName"),
    ],
    "SwitchoverBlueGreenDeployment": [("deployment", "BlueGreenDeploymentIdentifier")],
    "DeleteBlueGreenDeployment": [("deployment", "BlueGreenDeploymentIdentifier")],
    "AddTagsToResource": [("", "ResourceName")],
}
# Secrets Manager appends "-" and six random characters to a secret's name in its ARN.
_SECRET_SUFFIX = "-AbCdEf"


def _pattern(resource: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(resource).replace(r"\*", ".*").replace(r"\?", ".") + "$")


def resources_of(call: dict[str, Any], region: str, account: str) -> list[str]:
    """The ARNs one logged call acts on ("*" for calls AWS authorizes on all resources)."""
    params = call.get("params", {})
    if call["service"] == "secretsmanager":
        secret = params.get("SecretId") or params.get("Name")
        if not secret:
            return ["*"]
        if secret.startswith("arn:"):
            return [secret]
        return [f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}{_SECRET_SUFFIX}"]
    arns = []
    for kind, name in _RDS_RESOURCES.get(call["action"], []):
        value = params.get(name, "")
        arns.append(
            value if value.startswith("arn:") else f"arn:aws:rds:{region}:{account}:{kind}:{value}"
        )
    if call["action"] == "DeleteDBCluster" and params.get("FinalDBSnapshotIdentifier"):
        snapshot = params["FinalDBSnapshotIdentifier"]
        arns.append(f"arn:aws:rds:{region}:{account}:cluster-snapshot:{snapshot}")
    return arns or ["*"]


def request_tags(call: dict[str, Any]) -> dict[str, str]:
    """Tags a call sends: a JSON list (Secrets Manager) or query members (RDS)."""
    params = call.get("params", {})
    if isinstance(params.get("Tags"), list):
        return {t["Key"]: t["Value"] for t in params["Tags"]}
    keys = {
        k.rsplit(".", 1)[0]: v
        for k, v in params.items()
        if k.startswith("Tags.") and k.endswith(".Key")
    }
    return {v: params.get(f"{k}.Value", "") for k, v in keys.items()}


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _conditions_hold(statement: dict[str, Any], tags: dict[str, str]) -> bool:
    for operator, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            if operator != "StringEquals" or not key.startswith("aws:RequestTag/"):
                raise ValueError(f"the lab does not evaluate the condition {operator} {key}")
            if tags.get(key.removeprefix("aws:RequestTag/")) not in _as_list(expected):
                return False
    return True


def _covers(statement: dict[str, Any], action: str, arn: str, tags: dict[str, str]) -> bool:
    return (
        action in _as_list(statement["Action"])
        and any(_pattern(r).match(arn) for r in _as_list(statement["Resource"]))
        and _conditions_hold(statement, tags)
    )


def denied_resources(
    policy: dict[str, Any], call: dict[str, Any], region: str, account: str
) -> list[str]:
    """The ARNs of `call` the policy does not allow (empty when AWS would let it through)."""
    action = f"{call['service']}:{call['action']}"
    tags = request_tags(call)
    statements = policy["Statement"]
    denied = []
    for arn in resources_of(call, region, account):
        allowed = any(s["Effect"] == "Allow" and _covers(s, action, arn, tags) for s in statements)
        refused = any(s["Effect"] == "Deny" and _covers(s, action, arn, tags) for s in statements)
        if refused or not allowed:
            denied.append(arn)
    return denied
