"""AWS clients from the standard credential chain, and error classification.

The same code hits AWS and the lab: the lab only sets AWS_ENDPOINT_URL and
credentials in the environment, which boto3 honours by itself. botocore's
own retry (standard mode) absorbs short throttling and 5xx bursts; what it
gives up on is classified here once, so that task retries fire only for
transient trouble.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.validate import validate_parameters

from aurora_bg.errors import (
    BadInput,
    BusinessError,
    InvalidState,
    PreconditionFailed,
    TransientError,
)
from tasks import aws_budget, aws_log_guard

# botocore logs request bodies at DEBUG, and ModifyDBCluster's body carries the master
# password: its records below WARNING are filtered out from the moment this module loads
# (and again at each `client()`, see aws_log_guard for why once is not enough).
aws_log_guard.install()

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
# botocore's own failures that mean the endpoint could not be reached or did not answer.
UNANSWERED_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ConnectionClosedError,
    ReadTimeoutError,
)
# A parameter's name in a line of ParamValidationError's report ("... for parameter
# X, value: ...", "Missing required parameter in Y: \"X\"", ...): the text up to the
# name only, never what follows it (the value).
_REPORTED_NAME = re.compile(
    r"for (?:document )?parameter (?P<named>[^\s,]+)"
    r'|parameter in (?P<parent>[^\s:]+): "(?P<member>[^"]+)"'
    r"|Invalid parameter (?P<unserializable>\S+) must"
    r"|structure ?(?P<union>[^\s:.]+)"
)
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
    # Each task asks for its clients before its first call: the moment to cover loggers
    # and handlers that a logging configuration made since the last call.
    aws_log_guard.install()
    key = tuple(os.environ.get(name, "") for name in CHAIN_VARIABLES)
    return _client(service, key)


@cache
def _client(service: AwsService, environment: tuple[str, ...]) -> Any:
    # Every attempt is counted, and paced when a fleet shares a rate limit (aws_budget).
    made = aws_budget.register(boto3.session.Session().client(service, config=CLIENT_CONFIG))
    # Last, after botocore's own hooks that fill or rewrite parameters (idempotency tokens).
    made.meta.events.register_last("before-parameter-build", refuse_invalid_parameters)
    return made


def refuse_invalid_parameters(params: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore `before-parameter-build` hook: validate the call's parameters as botocore
    is about to, and raise BadInput naming the operation and the parameters instead of
    ParamValidationError, whose message quotes the values (a password among them).

    It runs before botocore's own validation, which then finds nothing to report.
    """
    if model.input_shape is None:  # an operation without input: nothing to validate
        return
    report = None
    try:
        validate_parameters(params, model.input_shape)
    except ParamValidationError as error:
        report = str(error.kwargs.get("report", ""))
    # Raised outside the `except`, so the new error keeps no link to the old one.
    if report is not None:
        raise BadInput(invalid_parameters_message(model.name, report))


def invalid_parameters_message(operation: str, report: str) -> str:
    """'<operation>: botocore refused parameters A, B (ParamValidationError)', built from
    the parameter names in botocore's report, never from what it says of their values."""
    names: list[str] = []
    for found in _REPORTED_NAME.finditer(report):
        groups = found.groupdict()
        if groups["member"]:
            name = f"{groups['parent']}.{groups['member']}"
            name = name.removeprefix("input.")
        else:
            name = groups["named"] or groups["unserializable"] or groups["union"] or ""
        if name and name not in names:
            names.append(name)
    listed = ", ".join(names) or "(names not reported)"
    return f"{operation}: botocore refused parameters {listed} (ParamValidationError)"


def client_side_message(error: BotoCoreError) -> str:
    """botocore's message for `error` with every value left out: its template, with
    each field shown by name ("Partial credentials found in <provider>, missing:
    <cred_var>")."""
    template = str(getattr(error, "fmt", "")) or "botocore failed"
    return re.sub(r"\{(\w+)\}", r"<\1>", template).replace("\n", " ").strip()


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
    if isinstance(error, UNANSWERED_ERRORS):
        return TransientError(f"{doing}: the AWS endpoint did not answer ({type(error).__name__})")
    if isinstance(error, ParamValidationError):
        return BadInput(invalid_parameters_message(doing, str(error.kwargs.get("report", ""))))
    if isinstance(error, BotoCoreError):
        # Raised by botocore before or around sending (credentials, configuration,
        # a broken response): nothing to retry, and its message may carry a value.
        return BusinessError(f"{doing}: {client_side_message(error)} ({type(error).__name__})")
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
    """Call a boto3 operation; re-raise failures classified, described by `doing`.

    Every failure botocore raises (ClientError or a BotoCoreError) becomes one of
    aurora_bg.errors, with a message that names no parameter value.
    """
    try:
        return function(**kwargs)
    except (ClientError, BotoCoreError) as error:
        failure: ClientError | BotoCoreError = error
    # Raised outside the `except`: the translated error keeps no link to botocore's,
    # whose message may quote a parameter.
    raise classify(failure, doing, _service_of(function))


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
