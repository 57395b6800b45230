"""Every AWS API attempt: paced by a shared Prefect rate limit, and counted.

A fleet of upgrades shares one account's API quota, so every HTTP attempt of
every run (botocore's own retries included: they spend the same quota) first
takes a slot of one Prefect global concurrency limit in rate-limit mode, named
by the environment variable below. Without that variable nothing is asked of
the Prefect API: a single run stays exactly as it was.

The counting answers "how many calls did this cluster's upgrade make" for the
fleet report, without the lab: `counting_calls()` binds a counter to the
current context, which the run's tasks (called in the same thread) inherit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

RATE_LIMIT_VARIABLE = "AURORA_BG_AWS_RATE_LIMIT"


class CallCount:
    """AWS API attempts made while it was bound (thread-safe: children may share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


_counter: ContextVar[CallCount | None] = ContextVar("aurora_bg_aws_calls", default=None)


def rate_limit_name() -> str | None:
    """The Prefect rate limit every AWS call takes a slot of, if one is configured."""
    return os.environ.get(RATE_LIMIT_VARIABLE) or None


def before_send(**_: Any) -> None:
    """botocore `before-send` hook: runs once per HTTP attempt, just before it leaves."""
    name = rate_limit_name()
    if name:
        from prefect.concurrency.sync import rate_limit

        rate_limit(name)
    counter = _counter.get()
    if counter is not None:
        counter.add()


def register(client: Any) -> Any:
    """Hook `client` so each of its attempts is paced and counted; returns it."""
    client.meta.events.register("before-send", before_send)
    return client


@contextmanager
def counting_calls() -> Iterator[CallCount]:
    """Count the AWS attempts made in this context (and the tasks it calls)."""
    counter = CallCount()
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)


@contextmanager
def paced_by(name: str | None) -> Iterator[None]:
    """Set the rate limit name for this process while the block runs (None: unchanged)."""
    if not name:
        yield
        return
    previous = os.environ.get(RATE_LIMIT_VARIABLE)
    os.environ[RATE_LIMIT_VARIABLE] = name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RATE_LIMIT_VARIABLE, None)
        else:
            os.environ[RATE_LIMIT_VARIABLE] = previous
