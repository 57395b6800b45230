"""IAM in the lab: the account's root key, enforcement on demand, and policy users.

(AWS-FACTS S8, "Authorizing access",
…/AuroraUserGuide/blue-green-deployments-authorizing-access.html; S14, the Service
Authorization Reference for Amazon RDS.)

AWS evaluates every call against the caller's IAM policies, except calls made
with the account's root credentials. moto does the same once its IAM
enforcement is on (`INITIAL_NO_AUTH_ACTION_COUNT`), but it does not know a
root user: every key must belong to an IAM user it holds. The lab's own key
(`AWS_ACCESS_KEY_ID=lab`, what `lab up` and the tests use to set up and
inspect the world) plays the root user here, so that enforcement can be
switched on without locking the lab out of its own account.

What moto evaluates, and what it cannot (see docs/iam.md):
- the Action element, for every call that reaches moto's responses: yes;
- the Resource element: no, moto checks every RDS and Secrets Manager call
  against the resource "*", so a statement naming an ARN never matches;
- the Condition element: no, moto has no request context for these services,
  so any condition fails and the statement denies;
- actions AWS checks on the caller's behalf (CreateBlueGreenDeployment's
  CreateDBCluster, ManageMasterUserPassword's secretsmanager:CreateSecret,
  ...): no, moto's models never ask.
`as_moto_evaluates` turns the shipped policy into the one moto can evaluate:
the same Allow actions, every resource "*", no condition.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from lab.fidelity.patching import patch

ROOT_ACCESS_KEY = "lab"
POLICY_FILE = Path(__file__).resolve().parents[2] / "deployments" / "iam-policy.json"
PLACEHOLDERS = (
    "REGION",
    "ACCOUNT",
    "CLUSTER",
    "TARGET_CLUSTER_PARAMETER_GROUP",
    "TARGET_INSTANCE_PARAMETER_GROUP",
)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


# --- inside the lab's AWS API process ------------------------------------------------


def access_key_of(headers: Any) -> str:
    """The access key id a SigV4 request was signed with ("" when unsigned)."""
    found = _CREDENTIAL.search(headers.get("Authorization", "") or "")
    return found.group(1) if found else ""


def install_root_key() -> None:
    """Calls signed with the lab's root key skip IAM evaluation, as the root user's do."""
    from moto.core.authorization import ActionAuthenticatorMixin

    evaluate = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(evaluate, "_lab_root_key", False):
        return

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if access_key_of(self.headers) == ROOT_ACCESS_KEY:
            return
        evaluate(self, iam_request_cls, resource)

    authorize._lab_root_key = True  # type: ignore[attr-defined]
    patch(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize)


def set_enforcement(enforce: bool) -> bool:
    """Evaluate IAM policies from the next call on (or stop); returns the new setting.

    moto enforces once it has answered INITIAL_NO_AUTH_ACTION_COUNT calls: 0 means now.
    """
    from moto import settings

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enforce else float("inf")
    return is_enforced()


def is_enforced() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


# --- policies --------------------------------------------------------------------------


def shipped_policy() -> dict[str, Any]:
    return json.loads(POLICY_FILE.read_text())


def fill_placeholders(policy: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The policy with REGION, ACCOUNT, CLUSTER, ... replaced in every ARN and condition."""
    missing = [name for name in PLACEHOLDERS if name not in values]
    if missing:
        raise ValueError(f"no value for the policy placeholders {', '.join(missing)}")
    text = json.dumps(policy)
    # Whole words only: CLUSTER must not replace the middle of TARGET_CLUSTER_PARAMETER_GROUP.
    for name in PLACEHOLDERS:
        text = re.sub(rf"\b{name}\b", values[name], text)
    return json.loads(text)


def actions_of(policy: dict[str, Any], effect: str = "Allow") -> set[str]:
    """Every action the policy's statements of `effect` name."""
    found: set[str] = set()
    for statement in policy["Statement"]:
        if statement["Effect"] == effect:
            actions = statement["Action"]
            found |= {actions} if isinstance(actions, str) else set(actions)
    return found


def without_action(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy with `action` taken out of every statement (empty statements dropped)."""
    trimmed = copy.deepcopy(policy)
    statements = []
    for statement in trimmed["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        statement["Action"] = [a for a in actions if a != action]
        if statement["Action"]:
            statements.append(statement)
    trimmed["Statement"] = statements
    return trimmed


def as_moto_evaluates(policy: dict[str, Any]) -> dict[str, Any]:
    """The same Allow actions on resource "*", without conditions or Deny statements.

    moto matches each statement's Resource against "*" (so a named ARN never
    matches) and fails every Condition (so a conditioned Allow would deny):
    left as shipped, the policy would deny everything. A Deny naming an ARN can
    never match "*" either, so it is left out rather than widened to all.
    """
    statements = [
        {"Sid": s.get("Sid", ""), "Effect": "Allow", "Action": s["Action"], "Resource": "*"}
        for s in policy["Statement"]
        if s["Effect"] == "Allow"
    ]
    return {"Version": policy.get("Version", "2012-10-17"), "Statement": statements}


# --- from outside: users holding a policy ---------------------------------------------


def create_user(
    endpoint_url: str, region: str, name: str, policy: dict[str, Any]
) -> dict[str, str]:
    """An IAM user holding exactly `policy` (inline); returns its access key pair.

    Made with the root key, so it works whether enforcement is on or not.
    """
    import boto3

    iam = boto3.session.Session(
        aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_ACCESS_KEY, region_name=region
    ).client("iam", endpoint_url=endpoint_url)
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="aurora-bg-upgrade", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "user": name,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def lab_placeholders(info: dict[str, Any]) -> dict[str, str]:
    """The values the shipped policy's placeholders take in the lab described by `info`."""
    from lab.fidelity.world import LAB_ACCOUNT
    from lab.topology import CLUSTER_ID, PARAMETER_GROUPS

    target_cluster_group, target_instance_group = PARAMETER_GROUPS[16]
    return {
        "REGION": info["region"],
        "ACCOUNT": LAB_ACCOUNT,
        "CLUSTER": info.get("topology", {}).get("cluster_identifier", CLUSTER_ID),
        "TARGET_CLUSTER_PARAMETER_GROUP": target_cluster_group,
        "TARGET_INSTANCE_PARAMETER_GROUP": target_instance_group,
    }


def enforce(endpoint_url: str, on: bool = True) -> bool:
    """Switch the lab's IAM enforcement on (or off) through its control API."""
    import urllib.request

    request = urllib.request.Request(
        f"{endpoint_url}/_lab/iam",
        data=json.dumps({"enforce": on}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bool(json.loads(response.read())["enforced"])


def grant(
    info: dict[str, Any], policy: dict[str, Any] | None = None, user: str = "aurora-bg-upgrade"
) -> dict[str, str]:
    """A user of the lab holding `policy` (default: the shipped one), filled for this lab
    and reduced to what moto evaluates; then enforcement on. Returns the user's keys."""
    filled = fill_placeholders(policy or shipped_policy(), lab_placeholders(info))
    keys = create_user(info["endpoint_url"], info["region"], user, as_moto_evaluates(filled))
    enforce(info["endpoint_url"])
    return keys
