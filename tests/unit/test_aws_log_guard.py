"""The AWS libraries' DEBUG records stay out of every log, whatever logging configuration
comes after the guard: Prefect's own setup, `dictConfig`, `basicConfig(level=DEBUG)` and
DEBUG set on every logger. The call goes through botocore's real code path to a moto
server on 127.0.0.1, with a planted secret as the master password; a capturing handler
added last (so without the guard's handler filter) must see no record holding it.

A search over nothing proves nothing: with the guard taken off, the same call under the
same configuration logs the secret, and a DEBUG record of another logger is captured.
"""

from __future__ import annotations

import logging
import logging.config
import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from prefect.logging.configuration import setup_logging
from prefect.settings import (
    PREFECT_LOGGING_EXTRA_LOGGERS,
    PREFECT_LOGGING_LEVEL,
    temporary_settings,
)

from tasks import aws, aws_log_guard

REGION = "us-east-1"


class Capture(logging.Handler):
    """Keeps every record's formatted text, exception included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.name} {logging.Formatter().format(record)} {record.args}")

    def holding(self, value: str) -> list[str]:
        return [text for text in self.texts if value in text]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Every logger's level, handlers, filters, propagation and state as they were."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [
        (logger, logger.level, list(logger.handlers), list(logger.filters), logger.propagate)
        for logger in loggers
    ]
    disabled = {logger.name: logger.disabled for logger in loggers}
    try:
        yield
    finally:
        for logger, level, handlers, filters, propagate in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.filters[:] = filters
            logger.propagate = propagate
            logger.disabled = disabled[logger.name]
        aws_log_guard.install()


def configure_everything_to_debug() -> None:
    """What a run may meet after the guard: Prefect's logging setup (sending botocore's
    and urllib3's records to its handlers), a dictConfig and a basicConfig at DEBUG,
    and DEBUG set on every logger there is."""
    with temporary_settings(
        updates={
            PREFECT_LOGGING_LEVEL: "DEBUG",
            PREFECT_LOGGING_EXTRA_LOGGERS: "botocore,urllib3,boto3",
        }
    ):
        setup_logging(incremental=False)
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {name: {"level": "DEBUG"} for name in aws_log_guard.GUARDED_LOGGERS},
        }
    )
    logging.basicConfig(level=logging.DEBUG, force=True)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
    logging.getLogger().setLevel(logging.DEBUG)


def raw_rds_client(endpoint: str) -> Any:
    """A plain boto3 client (not tasks.aws's): the guard must hold without its re-install."""
    return boto3.client(
        "rds",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


CLUSTER = "guarded"


def set_password(rds: Any, password: str) -> None:
    """ModifyDBCluster with `password` in its body, as the password phase sends it."""
    try:
        rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)
    except ClientError:  # the first call of the module makes it
        rds.create_db_cluster(
            DBClusterIdentifier=CLUSTER,
            Engine="aurora-postgresql",
            MasterUsername="postgres",
            MasterUserPassword="first-password",
        )
    rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword=password, ApplyImmediately=True
    )


def take_the_guard_off() -> None:
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            logger.removeFilter(aws_log_guard.WIRE_FILTER)
            for handler in logger.handlers:
                handler.removeFilter(aws_log_guard.WIRE_FILTER)


def test_no_record_holds_the_password_after_any_later_configuration(
    moto_server: str, restored_logging: None
) -> None:
    aws_log_guard.install()
    configure_everything_to_debug()
    capture = Capture()
    logging.getLogger().addHandler(capture)
    rds = raw_rds_client(moto_server)

    secret = f"planted-{secrets.token_hex(12)}"
    set_password(rds, secret)
    canary = f"canary-{secrets.token_hex(8)}"
    logging.getLogger("tests.unit.canary").debug("a DEBUG record of another logger: %s", canary)

    assert capture.holding(secret) == []
    assert capture.holding(canary), "the capture saw no DEBUG record at all"

    # Without the guard the same configuration logs the request body, password included.
    take_the_guard_off()
    control = f"control-{secrets.token_hex(12)}"
    set_password(rds, control)
    assert capture.holding(control), "botocore logged no body: the test proves nothing"


def test_each_client_covers_loggers_and_handlers_made_since(
    moto_server: str, restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_everything_to_debug()
    late_logger = logging.getLogger("botocore.made_after_the_guard")
    late_logger.setLevel(logging.DEBUG)
    capture = Capture()
    late_logger.addHandler(capture)

    for variable, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(variable, value)
    rds = aws.client("rds")  # what every task does before its first call

    secret = f"planted-{secrets.token_hex(12)}"
    late_logger.debug("body: %s", secret)
    set_password(rds, secret)
    assert capture.holding(secret) == []
    assert aws_log_guard.WIRE_FILTER in capture.filters
    assert aws_log_guard.WIRE_FILTER in late_logger.filters
