"""Fixtures for the lab's own tests: labs started plainly, the process environment left
alone (tests reach the lab through `RunningLab`'s clients)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from lab.harness import RunningLab, running_lab
from tests.support.labtools import assert_nothing_running, checked_lab


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab (one instance) for the tests of a module that leave it as they found it."""
    with checked_lab(tmp_path_factory.mktemp("shared-lab")) as lab:
        yield lab


@pytest.fixture
def start_lab(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningLab]]:
    """Start fresh labs for one test (`start_lab(instances=2, provisioning_delay=5)`); all
    stop when it ends. Unlike the scenarios' `start_lab_with_aws_env`, the process's AWS
    environment is not touched."""
    with ExitStack() as stack:

        def start(instances: int = 1, provisioning_delay: float = 0.0) -> RunningLab:
            lab_dir: Path = tmp_path_factory.mktemp("lab")
            return stack.enter_context(checked_lab(lab_dir, instances, provisioning_delay))

        yield start


@pytest.fixture(scope="module")
def two_database_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab started as `lab up --databases 2` (`app` and `app_2`) for a module whose
    tests leave it as they found it; checked like every test lab once it stopped."""
    lab_dir = tmp_path_factory.mktemp("two-database-lab")
    try:
        with running_lab(lab_dir, databases=2) as lab:
            yield lab
    finally:
        assert_nothing_running(lab_dir)
