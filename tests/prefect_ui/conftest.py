"""Fixtures: a real Prefect server (SQLite in a temporary PREFECT_HOME), the project's
deployments registered on it by `aurora-bg deploy`, and per test a fresh lab with a
process worker whose environment points at it. Everything started is stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from lab.harness import RunningLab
from tests.support.labtools import checked_lab
from tests.support.operate import (
    ENVIRONMENT_SCHEDULE,
    REPO,
    PrefectServer,
    Webhook,
    Worker,
    lab_parameter_data,
    run_cli,
    stop_tree,
)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """`prefect server start --host 127.0.0.1 --port <free>`, this process's client pointed at
    it for the session; stopped (with everything it started) at the end."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from lab import prefect_server as starter

    # Generous: a loaded machine can keep the server's first migrations busy for minutes.
    started = starter.start(tmp_path_factory.mktemp("prefect-server"), startup_limit=300)
    server = PrefectServer(started["api_url"], started["ui_url"], started["pid"])
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        survivors = stop_tree(server.pid)
        assert not survivors, f"the Prefect server left processes behind: {survivors}"


@pytest.fixture(scope="session")
def environment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's environment file (no Terraform phase) with a schedule of its own."""
    path = tmp_path_factory.mktemp("environment") / "lab-ui.yaml"
    path.write_text(yaml.safe_dump({**lab_parameter_data(), "schedule": ENVIRONMENT_SCHEDULE}))
    return path


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer, environment_file: Path) -> str:
    """`aurora-bg deploy --environment FILE` against the server; returns what it printed."""
    done = run_cli(
        "deploy",
        "--environment",
        str(environment_file),
        env={"PREFECT_API_URL": prefect_server.api_url},
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture
def start_operated_lab(
    prefect_server: PrefectServer, deployed: str, tmp_path: Path
) -> Iterator[Callable[[], tuple[RunningLab, Worker]]]:
    """`lab, worker = start_operated_lab()`: a fresh lab and a process worker whose
    environment points at it; both stop when the test ends, even on failure."""
    with ExitStack() as stack:

        def start() -> tuple[RunningLab, Worker]:
            lab = stack.enter_context(checked_lab(tmp_path / "lab"))
            worker = Worker(prefect_server.api_url, lab, tmp_path / "worker")
            stack.callback(worker.stop)
            return lab, worker

        yield start


@pytest.fixture
def aws_env_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[RunningLab], None]:
    """Point this process's AWS environment (what the flow's tasks read) at a lab."""

    def point(lab: RunningLab) -> None:
        for name, value in lab.env.items():
            monkeypatch.setenv(name, value)

    return point


@pytest.fixture
def paused_run_notifications(prefect_server: PrefectServer) -> Iterator[Webhook]:
    """deployments/notify-paused.example.yaml installed on the server, its notification
    going through a custom-webhook block to a listener of this test; removed at the end."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            received.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    listener = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    hook = Webhook(f"http://127.0.0.1:{listener.server_address[1]}/paused", received)
    block = CustomWebhookNotificationBlock(
        name="aurora-bg-paused", url=hook.url, json_data={"text": "{{subject}}\n{{body}}"}
    )
    block_id = block.save("aurora-bg-paused-test", overwrite=True)
    spec = yaml.safe_load((REPO / "deployments" / "notify-paused.example.yaml").read_text())
    spec["actions"][0]["block_document_id"] = str(block_id)
    with get_client(sync_client=True) as client:
        automation_id = client.create_automation(AutomationCore.model_validate(spec))
    try:
        yield hook
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(automation_id)
        listener.shutdown()
        listener.server_close()
        thread.join(timeout=5)
