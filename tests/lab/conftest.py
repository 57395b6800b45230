"""Fixtures for tests that run against the lab."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.labtools import RunningLab, running_lab


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab (one instance) for the tests of a module that leave it as they found it."""
    with running_lab(tmp_path_factory.mktemp("shared-lab")) as lab:
        yield lab


@pytest.fixture
def start_lab(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningLab]]:
    """Start fresh labs for one test (`start_lab(instances=2)`); all stop when it ends."""
    with ExitStack() as stack:

        def start(instances: int = 1, provisioning_delay: float = 0.0) -> RunningLab:
            lab_dir: Path = tmp_path_factory.mktemp("lab")
            return stack.enter_context(running_lab(lab_dir, instances, provisioning_delay))

        yield start
