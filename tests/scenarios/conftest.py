"""Fixtures of the flow's scenario tests: a fresh lab for each scenario, with this
process's AWS environment (what the flow reads) pointed at it. The Prefect API is the
session's (`prefect_api`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from lab.harness import RunningLab
from tests.support.flowtools import LabSupply


@pytest.fixture(scope="session")
def lab_supply(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSupply]:
    """Fresh labs; the first one starts while the Prefect server does."""
    supply = LabSupply(tmp_path_factory.mktemp("labs"))
    supply.prepare()
    yield supply
    supply.close()


@pytest.fixture
def start_lab_with_aws_env(
    lab_supply: LabSupply, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., RunningLab]]:
    """`start_lab_with_aws_env(instances=2)`: a fresh lab for this test, the process's AWS
    environment (what the flow reads) pointed at it; it stops when the test ends."""
    with ExitStack() as stack:

        def start(instances: int = 1) -> RunningLab:
            lab = stack.enter_context(lab_supply.lab(instances))
            for name, value in lab.env.items():
                monkeypatch.setenv(name, value)
            return lab

        yield start


@pytest.fixture
def lab(start_lab_with_aws_env: Callable[..., RunningLab]) -> RunningLab:
    """A fresh one-instance lab for this test, the AWS environment pointed at it."""
    return start_lab_with_aws_env()
