"""AWS clients from the standard credential chain, and error classification.

The same code hits AWS and the lab: the lab only sets AWS_ENDPOINT_URL and
credentials in the environment, which boto3 honours by itself. botocore's
own retry (standard mode) absorbs short throttling and 5xx bursts; what it
gives up on is classified here once, so that task retries fire only for
transient trouble.
"""

from __future__ import annotations

import logging
import os
import re
from functools import cache
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from aurora_bg.errors import BusinessError, InvalidState, PreconditionFailed, TransientError
from tasks import aws_budget

# botocore logs request bodies at DEBUG, and ModifyDBCluster's body carries
# the master password: never let it log below WARNING.
for _name in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
}
INVALID_STATE_CODES = {
    "InvalidDBClusterStateFault",
    "InvalidDBInstanceState",
    "InvalidBlueGreenDeploymentStateFault",
}
# AWS answers a call the caller's policies do not allow with one of these codes; moto's
# JSON-protocol services (Secrets Manager, SSM) send an XML AccessDenied that botocore
# reads as code "403", so the HTTP status counts too.
ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_DENIED_ACTION = re.compile(r"not authorized to perform:?\s*([a-z0-9-]+:[A-Za-z0-9]+)")
POLICY_FILE_HINT = "deployments/iam-policy.json"
CHAIN_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
)
# Five tries per call in all (botocore's `max_attempts` would count retries only), each
# bounded: RDS and Secrets Manager answer in well under a second, so an endpoint that
# holds a connection 20 s is down, not slow (botocore's default read timeout is 60 s).
# With standard backoff (at most 1+2+4+8 s between tries) one call gives up within
# 5 x (10 + 20) + 15 = 165 s, and a task with its 3 retries within 4 x 165 + 17 x 1.5 s,
# about 11.5 min. A refused or dropped connection gives up in seconds.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=10, read_timeout=20
)


# The services the tool calls; boto3's typed `client` knows each by its name.
AwsService = Literal["rds", "secretsmanager"]


def client(service: AwsService) -> Any:
    """A boto3 client from the standard chain (region, credentials, endpoint).

    Clients are reused while the environment that chose them stays the same.
    """
    key = tuple(os.environ.get(name, "") for name in CHAIN_VARIABLES)
    return _client(service, key)


@cache
def _client(service: AwsService, environment: tuple[str, ...]) -> Any:
    # Every attempt is counted, and paced when a fleet shares a rate limit (aws_budget).
    return aws_budget.register(boto3.session.Session().client(service, config=CLIENT_CONFIG))


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "")
    return ""


def is_access_denied(error: BaseException) -> bool:
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    message = error.response.get("Error", {}).get("Message", "")
    return error_code(error) in ACCESS_DENIED_CODES or (status == 403 and "AccessDenied" in message)


def missing_permission(error: ClientError, service: str = "") -> str:
    """The IAM action a denied call needed: AWS names it in the message ("... is not
    authorized to perform: rds:X ..."); else the service prefix and the operation."""
    found = _DENIED_ACTION.search(error.response.get("Error", {}).get("Message", ""))
    if found:
        return found.group(1)
    return f"{service}:{error.operation_name}" if service else error.operation_name


def classify(error: BaseException, doing: str, service: str = "") -> Exception:
    """Map a botocore failure to our tree, with a message free of parameters.

    A denied call is a BusinessError naming the missing permission: retrying
    cannot help, granting it can.
    """
    if isinstance(error, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)):
        return TransientError(f"{doing}: the AWS endpoint did not answer ({type(error).__name__})")
    if not isinstance(error, ClientError):
        return error if isinstance(error, Exception) else RuntimeError(str(error))
    if is_access_denied(error):
        permission = missing_permission(error, service)
        return BusinessError(
            f"{doing}: missing permission {permission} (AccessDenied): grant it to the "
            f"identity that runs the upgrade; {POLICY_FILE_HINT} lists every permission it needs"
        )
    code = error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    message = error.response.get("Error", {}).get("Message", "")
    text = f"{doing}: {code}: {message}".rstrip(": ")
    if code in TRANSIENT_CODES or status >= 500:
        return TransientError(text)
    if code in INVALID_STATE_CODES:
        return InvalidState(text)
    if is_not_found(error):
        return PreconditionFailed(text)
    return BusinessError(text)


def call(doing: str, function: Any, **kwargs: Any) -> Any:
    """Call a boto3 operation; re-raise failures classified, described by `doing`."""
    try:
        return function(**kwargs)
    except (ClientError, EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as error:
        raise classify(error, doing, _service_of(function)) from None


def _service_of(function: Any) -> str:
    """The IAM prefix of a bound boto3 operation's service ("rds", "secretsmanager")."""
    meta = getattr(getattr(function, "__self__", None), "meta", None)
    return meta.service_model.signing_name if meta is not None else ""


def is_not_found(error: BaseException) -> bool:
    code = error_code(error)
    return code.endswith(("NotFound", "NotFoundFault", "NotFoundException"))


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only what is transient."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


def task_options(**overrides: Any) -> dict[str, Any]:
    """Options shared by every @task: retries for transient errors only, and
    no result persisted or cached (some tasks hold the password in memory)."""
    from prefect.cache_policies import NO_CACHE

    options: dict[str, Any] = {
        "retries": 3,
        "retry_delay_seconds": [2, 5, 10],
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_transient,
        "persist_result": False,
        "cache_policy": NO_CACHE,
    }
    options.update(overrides)
    return options
