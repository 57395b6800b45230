"""Fixtures of the flow's scenario tests: one Prefect API for the whole session, and a
fresh lab for each scenario with the AWS environment pointed at it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

# No internet here: Prefect's telemetry would otherwise hang the server's shutdown.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

from tests.flow.flowtools import LabSupply  # noqa: E402
from tests.labtools import RunningLab  # noqa: E402


@pytest.fixture(scope="session")
def lab_supply(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSupply]:
    """Fresh labs; the first one starts while the Prefect server does."""
    supply = LabSupply(tmp_path_factory.mktemp("labs"))
    supply.prepare()
    yield supply
    supply.close()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A Prefect server on a temporary SQLite database; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def start_lab(
    lab_supply: LabSupply, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., RunningLab]]:
    """`start_lab(instances=2)`: a fresh lab for this test, the process's AWS environment
    (what the flow reads) pointed at it; it stops when the test ends."""
    with ExitStack() as stack:

        def start(instances: int = 1) -> RunningLab:
            lab = stack.enter_context(lab_supply.lab(instances))
            for name, value in lab.env.items():
                monkeypatch.setenv(name, value)
            return lab

        yield start


@pytest.fixture
def lab(start_lab: Callable[..., RunningLab]) -> RunningLab:
    """A fresh one-instance lab for this test."""
    return start_lab()
