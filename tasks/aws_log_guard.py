"""Keep the AWS libraries' chatter below WARNING out of every log, whatever comes later.

botocore logs each request's body at DEBUG ("Making request ... with params"), and
ModifyDBCluster's body carries the master password. Setting the libraries' loggers to
WARNING once is not enough: `logging.config.dictConfig` (which Prefect's
`setup_logging` uses) resets the level of existing loggers, `logging.basicConfig`
and a user's `setLevel(DEBUG)` lower it, and none of them is ours to forbid.

What survives them is a `logging.Filter`: no standard configuration call removes a
filter from a logger, and a logger's filter sees every record made by that logger
before any level or handler does. A logger's filter does not see its children's
records, so the filter goes on every logger of the guarded families, and on every
handler present (those catch records of a child logger created after the guard ran).
`install` is idempotent and cheap; `tasks.aws.client` runs it again each time a task
asks for a client, so loggers and handlers created since the last run are covered
before the next AWS call.
"""

from __future__ import annotations

import logging

# The families whose DEBUG and INFO records may hold request or response bodies.
GUARDED_LOGGERS = ("botocore", "boto3", "urllib3")
# The lowest level a guarded record may have and still be emitted.
LOWEST_LEVEL = logging.WARNING


def is_guarded(logger_name: str) -> bool:
    """Whether `logger_name` is one of the guarded loggers or a child of one."""
    return any(
        logger_name == family or logger_name.startswith(family + ".") for family in GUARDED_LOGGERS
    )


class AwsWireFilter(logging.Filter):
    """Drops records of the guarded loggers below WARNING; lets every other record pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= LOWEST_LEVEL or not is_guarded(record.name)


# One instance, so that `addFilter` (which skips a filter already present) keeps
# repeated installs from stacking copies.
WIRE_FILTER = AwsWireFilter()


def install() -> None:
    """Attach the filter to every guarded logger and to every handler now present, and
    set the guarded loggers' levels to WARNING (which saves building the records).

    After it, no record below WARNING of a guarded logger existing at this point reaches
    any handler, whatever levels or handlers a later configuration sets.
    """
    for family in GUARDED_LOGGERS:
        logging.getLogger(family).setLevel(LOWEST_LEVEL)
    loggers = [logging.getLogger()] + [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        if is_guarded(logger.name):
            logger.addFilter(WIRE_FILTER)
            if logger.level != logging.NOTSET and logger.level < LOWEST_LEVEL:
                logger.setLevel(LOWEST_LEVEL)
        for handler in list(logger.handlers):
            handler.addFilter(WIRE_FILTER)
