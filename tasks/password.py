"""The master password: out of Secrets Manager for the deployment, and back.

Blue/Green deployments refuse a cluster whose master password Secrets
Manager manages, so the password becomes self-managed with the SAME value
(nothing that logs in as the master user breaks). Turning management off
deletes the managed secret, so before that the value is copied into a
secret of our own (`aurora-bg/<cluster>/master-password`): the only place it
lives while the upgrade runs, and what a rerun after a crash reads. Turning
management back on makes AWS generate a new password in a new secret.

A cluster whose password its owner already manages (self-managed, as AWS
supports it) is left as it is: the operator names the secret that holds the
master credentials (`credentials_secret_arn`), the password phases say
"already self-managed" and do nothing, and the tool logs in with that secret.

Functions here hold the password in local variables only: never in a return
value, a log line or an exception message (`master_credentials` returns it to
a caller that keeps it in a local variable for one login).
"""

from __future__ import annotations

import json
from typing import Any

from aurora_bg.errors import BusinessError, PreconditionFailed
from aurora_bg.params import UpgradeParameters
from aurora_bg.polling import poll_until
from aurora_bg.results import StepResult
from tasks.aws import call, classify, client, is_not_found
from tasks.rds_state import describe_cluster, is_password_managed

# How the master password is managed when preflight looks (its fact `password_mode`).
PASSWORD_MANAGED = "managed"  # by Secrets Manager: moved out for the deployment, back after
PASSWORD_HELD = "held"  # self-managed by an earlier attempt of this tool, which holds it
PASSWORD_SELF_MANAGED = "self-managed"  # by its owner: left as it is, read from their secret
PASSWORD_UNREADABLE = "self-managed, no secret named"

NAME_THE_SECRET = (
    "name the secret that holds the master credentials in credentials_secret_arn "
    "(JSON with username and password), which leaves the password as it is"
)


def held_secret_name(cluster_id: str) -> str:
    return f"aurora-bg/{cluster_id}/master-password"


def _secret_credentials(secret_id: str, sm: Any) -> dict[str, str]:
    """The secret's JSON as RDS writes it; BusinessError (naming the secret, never quoting
    its value) when it is not such a document."""
    value = call("reading the master password secret", sm.get_secret_value, SecretId=secret_id)
    try:
        document = json.loads(value.get("SecretString") or "")
        credentials = {"username": document.get("username", ""), "password": document["password"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        problem = "is not JSON with a password field"
    else:
        if isinstance(credentials["password"], str) and credentials["password"]:
            return credentials
        problem = "holds an empty or non-text password"
    raise BusinessError(
        f"the secret {secret_id} {problem}: store the master credentials as RDS does, "
        '{"username": ..., "password": ...}'
    )


def _secret_password(secret_id: str, sm: Any) -> str:
    return _secret_credentials(secret_id, sm)["password"]


def read_secret_credentials(secret_id: str, sm: Any = None) -> tuple[str, str]:
    """(username, password) of a secret written as RDS writes them (username may be "");
    in memory only. BusinessError when the secret is not such a document."""
    credentials = _secret_credentials(secret_id, sm or client("secretsmanager"))
    return credentials["username"], credentials["password"]


def held_password_exists(cluster_id: str, sm: Any = None) -> bool:
    sm = sm or client("secretsmanager")
    try:
        sm.describe_secret(SecretId=held_secret_name(cluster_id))
        return True
    except Exception as error:
        if is_not_found(error):
            return False
        raise classify(error, "looking for the held master password") from None


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
    cluster_id: str,
    rds: Any = None,
    sm: Any = None,
    timeout: float = 1800,
    credentials_secret_arn: str | None = None,
) -> StepResult:
    """Make the master password self-managed with its current value. Idempotent.

    A password already self-managed by its owner (`credentials_secret_arn` names its
    secret, and no earlier attempt holds it) is left as it is: "already self-managed".
    Raises PreconditionFailed when the password is self-managed and nothing holds it.
    """
    rds, sm = rds or client("rds"), sm or client("secretsmanager")
    cluster = describe_cluster(cluster_id, rds)
    if cluster is None:
        raise PreconditionFailed(f"cluster {cluster_id} does not exist")
    name = held_secret_name(cluster_id)
    if not is_password_managed(cluster):
        if held_password_exists(cluster_id, sm):
            return StepResult(
                "already-done",
                f"The master password of {cluster_id} is already self-managed and held in {name}.",
                {"held_secret": name},
            )
        if credentials_secret_arn:
            return StepResult(
                "already-self-managed",
                f"The master password of {cluster_id} is already self-managed: nothing to move. "
                f"It stays as it is; the tool logs in with {credentials_secret_arn}.",
                {"credentials_secret": credentials_secret_arn},
            )
        raise PreconditionFailed(
            f"the master password of {cluster_id} is self-managed and no secret holds it: "
            f"{NAME_THE_SECRET}, then rerun"
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
    cluster_id: str,
    rds: Any = None,
    sm: Any = None,
    timeout: float = 1800,
    credentials_secret_arn: str | None = None,
) -> StepResult:
    """Hand the master password back to Secrets Manager (a new secret, new ARN). Idempotent.

    A password its owner self-manages (`credentials_secret_arn` given, and no secret
    of ours holds it, so this tool never moved it) stays self-managed: "already
    self-managed", nothing changes.
    """
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
    if credentials_secret_arn and not held_password_exists(cluster_id, sm):
        return StepResult(
            "already-self-managed",
            f"The master password of {cluster_id} is already self-managed, as its owner had "
            f"it before the upgrade: left as it is ({credentials_secret_arn} holds it).",
            {"credentials_secret": credentials_secret_arn},
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


def password_source(
    cluster: dict[str, Any], upgraded_cluster_id: str, credentials_secret_arn: str | None, sm: Any
) -> str | None:
    """Which secret logs in as the master user of `cluster` now (None: none does):
    the cluster's managed secret; else the one this tool holds while the password is
    out (named after `upgraded_cluster_id`, the cluster being upgraded, which an old
    blue or a green shares); else the operator's `credentials_secret_arn`."""
    if is_password_managed(cluster):
        arn: str = cluster["MasterUserSecret"]["SecretArn"]
        return arn
    if held_password_exists(upgraded_cluster_id, sm):
        return held_secret_name(upgraded_cluster_id)
    return credentials_secret_arn


def master_credentials(
    cluster: dict[str, Any], params: UpgradeParameters, sm: Any = None
) -> tuple[str, str]:
    """(user, password) that log in as the master user of `cluster` (blue, green, the old
    blue or the new production of the upgrade `params` describe), read from Secrets
    Manager, never written: the managed secret, else the held one, else the operator's
    `credentials_secret_arn` (its username when it names one).

    The caller keeps the password in a local variable for its login only. Raises
    PreconditionFailed when the password is self-managed and no secret is named.
    """
    sm = sm or client("secretsmanager")
    user: str = cluster["MasterUsername"]
    source = password_source(cluster, params.cluster_identifier, params.credentials_secret_arn, sm)
    if source is None:
        raise PreconditionFailed(
            f"the master password of {cluster['DBClusterIdentifier']} is self-managed and no "
            f"secret holds it: {NAME_THE_SECRET}"
        )
    credentials = _secret_credentials(source, sm)
    return credentials["username"] or user, credentials["password"]
