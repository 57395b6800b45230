"""The Prefect UI in a real browser (headless Chromium from Debian, driven by Playwright):
start the upgrade from the deployment's form, approve the paused run from its form.

Screenshots go to test-output/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType

from lab.harness import RunningLab
from tests.support.operate import (
    FLOW,
    SCREENSHOTS,
    PrefectServer,
    Worker,
    wait_ended,
    wait_for_log,
    wait_paused,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_WAIT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install -y chromium)"
)


@pytest.fixture
def page() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_WAIT_MS)
            yield page
        finally:
            browser.close()


def runs_of(deployment_id: uuid.UUID) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def resume_in_the_page(page, ui_url: str, run_id: uuid.UUID, decision: str, comment: str, shot):
    """Open the paused run, press Resume, fill the approval form, submit it."""
    page.goto(f"{ui_url}/v2/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Open menu").click()
    page.get_by_role("menuitem", name="Resume").click()
    # the open dialog, not a closed popover (the UI marks both role=dialog)
    dialog = page.locator("[role=dialog][data-slot=dialog-content][data-state=open]")
    dialog.get_by_text("Decision", exact=False).first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / shot))  # the form as a person first sees it
    if decision != "approve":
        dialog.get_by_role("button", name="Select Decision").click()
        page.get_by_role("option", name=decision, exact=True).click()
    dialog.locator("textarea").fill(comment)
    text = dialog.inner_text()
    dialog.get_by_role("button", name="Resume", exact=True).click()
    return text


def test_the_ui_starts_the_upgrade_from_its_form_and_resumes_it_from_the_approval_form(
    start_operated_lab: Callable[[], tuple[RunningLab, Worker]],
    prefect_server: PrefectServer,
    page,
):
    SCREENSHOTS.mkdir(exist_ok=True)
    lab, worker = start_operated_lab()
    ui = prefect_server.ui_url
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{FLOW}/upgrade")

    # The deployment's run form: the parameter model, prefilled from the environment file.
    page.goto(f"{ui}/v2/deployments/deployment/{deployment.id}/run")
    page.get_by_text("DB cluster identifier of the blue cluster.").wait_for()
    for text in ("Switchover window", "Approved outside the window", "Approval timeout (s)"):
        assert page.get_by_text(text, exact=False).first.is_visible(), text
    assert "provisioning-rds" in [
        field.input_value() for field in page.locator("textarea, input[type=text]").all()
    ]
    page.screenshot(path=str(SCREENSHOTS / "upgrade-run-form.png"), full_page=True)
    for _attempt in range(3):
        with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as created:
            page.get_by_role("button", name="Submit").click()
        # 503: the server's SQLite was busy and nothing was created; a person clicks again.
        if created.value.status != 503:
            break
        time.sleep(1)
    assert created.value.ok, created.value.text()
    run_id = uuid.UUID(created.value.json()["id"])
    assert [run.id for run in runs_of(deployment.id)] == [run_id]

    # First pause: approve in the page.
    wait_paused(run_id, 1, worker)
    shown = resume_in_the_page(
        page, ui, run_id, "approve", "approved in the browser", "approval-form-green-validated.png"
    )
    assert "Green validated for provisioning-rds" in shown
    assert "Test your applications against the green endpoints" in shown
    assert "Decision" in shown and "Comment" in shown

    # The page's answer resumed the run: it reaches the second pause with that comment.
    wait_paused(run_id, 2, worker)
    approved = "Approved: green validated (approved in the browser)"
    assert approved in wait_for_log(run_id, approved)

    # Second pause: reject in the page; the run takes the way out.
    shown = resume_in_the_page(
        page, ui, run_id, "reject", "not tonight", "approval-form-switchover.png"
    )
    assert "Approve the switchover of provisioning-rds to 16.2" in shown
    ended = wait_ended(run_id, worker)
    assert ended.state.type == StateType.FAILED
    assert "'approve switchover' was rejected: not tonight" in ended.state.message
    assert [c for c in lab.calls() if c["action"] == "SwitchoverBlueGreenDeployment"] == []
    assert lab.rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []
