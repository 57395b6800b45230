"""The two pauses: a form in the Prefect UI (approve/reject + comment).

The pause is Prefect's own (a Paused state carrying the form's schema, resumed
by the UI's "Resume" button or `resume_flow_run`). The wait is ours rather than
`pause_flow_run`'s because that one only ends on resume or timeout: a run
cancelled while paused would sit there until the timeout and then take the way
out for the wrong reason. Here the same poll that looks for the resume also
sees a cancel.
"""

from __future__ import annotations

import time
from typing import Literal, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_paused_state
from prefect.states import Paused, Running
from prefect.utilities.engine import propose_state_sync

from aurora_bg.errors import Rejected, RunCancelled
from flows.cancellation import is_cancel_state

APPROVAL_POLL_SECONDS = 0.5  # approval → switchover call within ~1 s, at two reads a second


class Approval(RunInput):
    """The form a person fills in the Prefect UI to resume a paused run."""

    decision: Literal["approve", "reject"] = "approve"
    comment: str = ""


def ask(number: int, title: str, description: str, timeout: int) -> Approval:
    """Pause for a person; a reject or a timeout raises Rejected, a cancel RunCancelled.

    `number` counts the run's pauses from 1, as Prefect's own pauses do: it names the
    pause's form inputs (`paused-1-decision`, …) that the UI and the API resume.
    """
    logger = get_run_logger()
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("a pause needs a flow run")
    run_id = context.flow_run.id
    form = Approval.with_initial_data(description=description)
    proposed: State[None] = Paused(timeout_seconds=timeout, reschedule=False, pause_key=str(number))
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = {name: key for name, key in keyset.items()}

    with get_client(sync_client=True) as client:
        reply = propose_state_sync(client=client, state=proposed, flow_run_id=run_id)
        state: State | None = reply  # then, while paused, the answer (None: no state)
        if reply.is_paused():
            form.save(keyset)
            logger.info("Paused: %s. Resume from the Prefect UI (approve/reject).", title)
            state = _wait_for_answer(client, run_id, timeout)
        if state is not None and is_cancel_state(state.type.value):
            raise RunCancelled(f"the run was cancelled from Prefect while paused at '{title}'")
        if state is None or not state.is_running():
            _running_again(client, run_id)
            raise Rejected(f"nobody answered '{title}' within {timeout} s")
    # In a sync flow Prefect's dispatching `load` returns the form itself; its annotation
    # also admits the coroutine an async caller would get.
    answer = cast(Approval, form.load(keyset))
    if answer.decision != "approve":
        comment = f": {answer.comment}" if answer.comment else ""
        raise Rejected(f"'{title}' was rejected{comment}")
    logger.info("Approved: %s%s", title, f" ({answer.comment})" if answer.comment else "")
    return answer


def _wait_for_answer(client: SyncPrefectClient, run_id: UUID, timeout: float) -> State | None:
    """The run's state once it is resumed, cancelled, or the pause has timed out."""
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(APPROVAL_POLL_SECONDS)
        state = client.read_flow_run(run_id).state
        if state is not None and (state.is_running() or is_cancel_state(state.type.value)):
            return state
        if time.monotonic() >= deadline:
            return state


def _running_again(client: SyncPrefectClient, run_id: UUID) -> None:
    """After a pause timed out the API still holds the run as Paused, and it answers any
    later state with its own "never resumed" failure: the way out would run in a paused
    run and the final state would lose its reason. Set the run Running again (forced:
    a timed-out pause can no longer be resumed)."""
    client.set_flow_run_state(run_id, Running(), force=True)
