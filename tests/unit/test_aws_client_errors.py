"""botocore's client-side errors become the project's errors, and none of their messages
(nor the exception chain a traceback would print) carries a parameter's value.

ParamValidationError quotes the invalid value; the calls here plant a secret in the
master password parameter of a real boto3 client call (validation happens before
anything is sent, so the endpoint is never reached).
"""

from __future__ import annotations

import secrets
import traceback
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    CredentialRetrievalError,
    NoCredentialsError,
    ParamValidationError,
)

from aurora_bg.errors import BadInput, BusinessError, TransientError
from tasks import aws

# Nothing listens there, and nothing is sent there: validation refuses first.
ENDPOINT = "http://127.0.0.1:9"
REGION = "us-east-1"


@pytest.fixture
def ours(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An RDS client as every task gets it (tasks.aws.client)."""
    for variable, value in {
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(variable, value)
    return aws.client("rds")


@pytest.fixture
def plain() -> Any:
    """A boto3 client made elsewhere (a test's, the lab's): no hook of ours on it."""
    return boto3.client(
        "rds",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def everything_printed(error: BaseException) -> str:
    """What a traceback of `error` shows, its chained exceptions included."""
    return "".join(traceback.format_exception(error)) + repr(error) + str(error.args)


def secret() -> str:
    return f"planted-{secrets.token_hex(12)}"


def test_our_client_refuses_an_invalid_password_with_names_only(ours: Any) -> None:
    value = secret()
    with pytest.raises(BadInput) as caught:
        ours.modify_db_cluster(DBClusterIdentifier="blue", MasterUserPassword=[value])
    message = str(caught.value)
    assert "ModifyDBCluster" in message and "MasterUserPassword" in message, message
    assert value not in everything_printed(caught.value)
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_call_through_our_client_names_the_parameters(ours: Any) -> None:
    value = secret()
    with pytest.raises(BadInput) as caught:
        aws.call(
            "resetting the master password",
            ours.modify_db_cluster,
            DBClusterIdentifier=7,
            MasterUserPassword=[value],
        )
    message = str(caught.value)
    assert "DBClusterIdentifier" in message and "MasterUserPassword" in message, message
    assert value not in everything_printed(caught.value)


def test_call_with_a_plain_client_translates_param_validation_error(plain: Any) -> None:
    value = secret()
    with pytest.raises(ParamValidationError) as raw:  # what botocore alone would raise
        plain.modify_db_cluster(DBClusterIdentifier="blue", MasterUserPassword=[value])
    assert value in str(raw.value)

    with pytest.raises(BadInput) as caught:
        aws.call(
            "resetting the master password",
            plain.modify_db_cluster,
            DBClusterIdentifier="blue",
            MasterUserPassword=[value],
        )
    message = str(caught.value)
    assert message.startswith("resetting the master password: ")
    assert "MasterUserPassword" in message
    assert value not in everything_printed(caught.value)
    assert caught.value.__context__ is None


@pytest.mark.parametrize(
    ("operation", "arguments", "name"),
    [
        ("modify_db_cluster", {"MasterUserPassword": "x"}, "DBClusterIdentifier"),  # missing
        ("modify_db_cluster", {"DBClusterIdentifier": "b", "Password": "p"}, "Password"),  # unknown
        (
            "create_db_cluster_snapshot",
            {
                "DBClusterIdentifier": "b",
                "DBClusterSnapshotIdentifier": "s",
                "Tags": [{"Key": "k", "Value": 5}],
            },
            "Tags[0].Value",  # nested, wrong type
        ),
    ],
)
def test_every_kind_of_report_names_its_parameter(
    plain: Any, operation: str, arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(ParamValidationError) as raw:
        getattr(plain, operation)(**arguments)
    translated = aws.classify(raw.value, "doing it")
    assert isinstance(translated, BadInput)
    assert f"parameters {name} " in str(translated), str(translated)


def test_other_client_side_errors_keep_no_values() -> None:
    value = secret()
    translated = aws.classify(
        CredentialRetrievalError(provider="custom-process", error_msg=value), "reading secret"
    )
    assert isinstance(translated, BusinessError)
    assert value not in str(translated)
    assert "CredentialRetrievalError" in str(translated)

    translated = aws.classify(NoCredentialsError(), "describing cluster blue")
    assert isinstance(translated, BusinessError)
    assert "Unable to locate credentials" in str(translated)

    translated = aws.classify(ConnectTimeoutError(endpoint_url=ENDPOINT), "describing cluster")
    assert isinstance(translated, TransientError)
