"""What every part of the suite shares: one Prefect API for the session, and a marker per
part, set from the directory a test lives in.

The parts, fastest first: `unit` (no lab, no server: seconds), `validation` (real
PostgreSQL pairs), `terraform` (Terraform core and the AWS API in a thread), `lab` (the
lab itself), `scenarios` (the whole flow on fresh labs), `prefect_ui` (a real Prefect
server, its worker and its UI). `pytest -m unit` runs the first; `-m "unit or smoke"`
adds one plain upgrade of a lab from end to end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# No internet here: Prefect's telemetry would otherwise hang the server's shutdown. Set
# before Prefect is first imported, which reads it once.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

TESTS = Path(__file__).resolve().parent
PARTS = ("unit", "validation", "terraform", "lab", "scenarios", "prefect_ui")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the part of the suite its directory is (tests/<part>/...)."""
    for item in items:
        relative = item.path.resolve().relative_to(TESTS)
        part = relative.parts[0] if len(relative.parts) > 1 else None
        if part not in PARTS:
            raise pytest.UsageError(
                f"{relative} is in no part of the suite: tests live in tests/<part>/, "
                f"part one of {', '.join(PARTS)}"
            )
        item.add_marker(part)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A Prefect API on a temporary SQLite database for the whole session; yields its URL.

    The process's Prefect settings point at it while it runs. Tests that need a
    server of their own, as an operator runs it, use tests/prefect_ui's instead.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    # A loaded machine starts the server slowly (its first migrations above all).
    with prefect_test_harness(server_startup_timeout=300):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The AWS API alone (moto, without the lab's fidelity layer) in a thread on
    127.0.0.1 for the session; yields its URL. Tests that reset it say so."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
