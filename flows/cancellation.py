"""Notice a cancel from Prefect while the flow runs in this process.

Prefect's cancel button moves a run to Cancelling. A worker answers by killing
the run's process; a run started in-process (`aurora-bg run`, a test) is told
nothing, and would carry on to the switchover. So the flow watches its own state
in the API: once it reads Cancelling (or Cancelled), the next phase boundary,
poll of a long wait or pause raises RunCancelled, and the flow takes the way
out before the switchover or stops with its report after it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

from aurora_bg.errors import RunCancelled

WATCH_INTERVAL_SECONDS = 1.0
CANCEL_STATES = {"CANCELLING", "CANCELLED"}

_current: ContextVar[CancelWatch | None] = ContextVar("aurora_bg_cancel_watch", default=None)


class CancelWatch:
    """A thread that reads the flow run's state every second until cancel is asked."""

    def __init__(self, flow_run_id: uuid.UUID | str | None) -> None:
        self.flow_run_id = flow_run_id
        self.requested = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cancel-watch", daemon=True)

    def _watch(self) -> None:
        from prefect.client.orchestration import get_client

        if self.flow_run_id is None:
            return
        with get_client(sync_client=True) as client:
            while not self._stop.wait(WATCH_INTERVAL_SECONDS):
                with suppress(Exception):  # the API being briefly away is not a cancel
                    run = client.read_flow_run(uuid.UUID(str(self.flow_run_id)))
                    if run.state is not None and run.state.type.value in CANCEL_STATES:
                        self.requested.set()
                        return

    def check(self, where: str) -> None:
        if self.requested.is_set():
            raise RunCancelled(f"the run was cancelled from Prefect ({where})")


@contextmanager
def watching_for_cancel(flow_run_id: uuid.UUID | str | None) -> Iterator[CancelWatch]:
    watch = CancelWatch(flow_run_id)
    token = _current.set(watch)
    watch._thread.start()
    try:
        yield watch
    finally:
        watch._stop.set()
        _current.reset(token)


def raise_if_cancelled(where: str) -> None:
    """For long waits inside tasks: stop at this poll when the run was cancelled."""
    watch = _current.get()
    if watch is not None:
        watch.check(where)


def is_cancel_state(state_type: str) -> bool:
    return state_type in CANCEL_STATES
