"""The master password: out of Secrets Manager for the deployment, and back.

Blue/Green deployments refuse a cluster whose master password Secrets
Manager manages, so the password becomes self-managed with the SAME value
(nothing that logs in as the master user breaks). Turning management off
deletes the managed secret, so before that the value is copied into a
secret of our own (`aurora-bg/<cluster>/master-password`): the only place it
lives while the upgrade runs, and what a rerun after a crash reads. Turning
management back on makes AWS generate a new password in a new secret.

Functions here hold the password in local variables only: never in a return
value, a log line or an exception message.
"""

from __future__ import annotations

import json
from typing import Any

from aurora_bg.errors import PreconditionFailed
from aurora_bg.polling import poll_until
from aurora_bg.results import StepResult
from tasks.aws import call, classify, client, is_not_found
from tasks.rds_state import describe_cluster, is_password_managed


def held_secret_name(cluster_id: str) -> str:
    return f"aurora-bg/{cluster_id}/master-password"


def _secret_password(secret_id: str, sm: Any) -> str:
    value = call("reading the master password secret", sm.get_secret_value, SecretId=secret_id)
    return json.loads(value["SecretString"])["password"]


def held_password_exists(cluster_id: str, sm: Any = None) -> bool:
    sm = sm or client("secretsmanager")
    try:
        sm.describe_secret(SecretId=held_secret_name(cluster_id))
        return True
    except Exception as error:
        if is_not_found(error):
            return False
        raise classify(error, "looking for the held master password") from None


def read_held_password(cluster_id: str, sm: Any = None) -> str:
    """The master password held during the upgrade (in memory only)."""
    return _secret_password(held_secret_name(cluster_id), sm or client("secretsmanager"))


def read_managed_password(cluster: dict[str, Any], sm: Any = None) -> str:
    """The password in the cluster's managed secret (in memory only)."""
    return _secret_password(
        cluster["MasterUserSecret"]["SecretArn"], sm or client("secretsmanager")
    )


def _hold(cluster: dict[str, Any], password: str, sm: Any) -> None:
    name = held_secret_name(cluster["DBClusterIdentifier"])
    secret = json.dumps({"username": cluster["MasterUsername"], "password": password})
    if held_password_exists(cluster["DBClusterIdentifier"], sm):
        call("holding the master password", sm.put_secret_value, SecretId=name, SecretString=secret)
        return
    call(
        "holding the master password",
        sm.create_secret,
        Name=name,
        SecretString=secret,
        Description="Master password held by aurora-bluegreen while a Blue/Green upgrade runs.",
        Tags=[{"Key": "aurora-bg:cluster", "Value": cluster["DBClusterIdentifier"]}],
    )


def _wait_for(cluster_id: str, managed: bool, rds: Any, timeout: float) -> dict[str, Any]:
    def probe() -> dict[str, Any]:
        return describe_cluster(cluster_id, rds) or {}

    def done(cluster: dict[str, Any]) -> bool:
        secret = cluster.get("MasterUserSecret")
        secret_ok = (
            (secret is not None and secret.get("SecretStatus") == "active")
            if managed
            else (secret is None)
        )
        return cluster.get("Status") == "available" and secret_ok

    return poll_until(
        probe,
        done,
        timeout=timeout,
        what=f"cluster {cluster_id} password {'managed' if managed else 'self-managed'}",
        # the modification usually ends within seconds: poll at 1 s for the first 10 s
        first_interval=1.0,
        settle=10.0,
        max_interval=10.0,
    ).last


def move_password_out(
    cluster_id: str, rds: Any = None, sm: Any = None, timeout: float = 1800
) -> StepResult:
    """Make the master password self-managed with its current value. Idempotent."""
    rds, sm = rds or client("rds"), sm or client("secretsmanager")
    cluster = describe_cluster(cluster_id, rds)
    if cluster is None:
        raise PreconditionFailed(f"cluster {cluster_id} does not exist")
    name = held_secret_name(cluster_id)
    if not is_password_managed(cluster):
        if not held_password_exists(cluster_id, sm):
            raise PreconditionFailed(
                f"the master password of {cluster_id} is self-managed but {name} does not hold it: "
                "turn ManageMasterUserPassword back on, then rerun"
            )
        return StepResult(
            "already-done",
            f"The master password of {cluster_id} is already self-managed and held in {name}.",
            {"held_secret": name},
        )
    old_arn = cluster["MasterUserSecret"]["SecretArn"]
    password = read_managed_password(cluster, sm)
    _hold(cluster, password, sm)
    call(
        f"making the master password of {cluster_id} self-managed",
        rds.modify_db_cluster,
        DBClusterIdentifier=cluster_id,
        ManageMasterUserPassword=False,
        MasterUserPassword=password,
        ApplyImmediately=True,
    )
    del password
    _wait_for(cluster_id, managed=False, rds=rds, timeout=timeout)
    return StepResult(
        "switched",
        f"The master password of {cluster_id} is now self-managed with its previous value; "
        f"the managed secret is gone and {name} holds the value until the upgrade ends.",
        {"held_secret": name, "previous_secret_arn": old_arn},
    )


def put_password_back(
    cluster_id: str, rds: Any = None, sm: Any = None, timeout: float = 1800
) -> StepResult:
    """Hand the master password back to Secrets Manager (a new secret, new ARN). Idempotent."""
    rds, sm = rds or client("rds"), sm or client("secretsmanager")
    cluster = describe_cluster(cluster_id, rds)
    if cluster is None:
        raise PreconditionFailed(f"cluster {cluster_id} does not exist")
    if is_password_managed(cluster):
        arn = cluster["MasterUserSecret"]["SecretArn"]
        return StepResult(
            "already-done",
            f"Secrets Manager already manages the master password of {cluster_id} ({arn}).",
            {"secret_arn": arn},
        )
    call(
        f"handing the master password of {cluster_id} to Secrets Manager",
        rds.modify_db_cluster,
        DBClusterIdentifier=cluster_id,
        ManageMasterUserPassword=True,
        ApplyImmediately=True,
    )
    cluster = _wait_for(cluster_id, managed=True, rds=rds, timeout=timeout)
    arn = cluster["MasterUserSecret"]["SecretArn"]
    return StepResult(
        "switched",
        f"Secrets Manager manages the master password of {cluster_id} again, in a new secret "
        f"{arn}: anything that referenced the old secret ARN must be updated.",
        {"secret_arn": arn},
    )


def forget_held_password(cluster_id: str, sm: Any = None) -> StepResult:
    """Delete the secret that held the password during the upgrade. Idempotent."""
    sm = sm or client("secretsmanager")
    name = held_secret_name(cluster_id)
    if not held_password_exists(cluster_id, sm):
        return StepResult("already-done", f"No held master password remains ({name}).")
    call("deleting the held master password", sm.delete_secret, SecretId=name,
         ForceDeleteWithoutRecovery=True)  # fmt: skip
    return StepResult("deleted", f"Deleted {name}: the held master password is gone.")


def current_password(cluster_id: str, rds: Any = None, sm: Any = None) -> str:
    """Whatever logs in as the master user now: the managed secret, else the held one."""
    rds, sm = rds or client("rds"), sm or client("secretsmanager")
    cluster = describe_cluster(cluster_id, rds)
    if cluster is not None and is_password_managed(cluster):
        return read_managed_password(cluster, sm)
    return read_held_password(cluster_id, sm)
