"""One run per cluster: a Prefect global concurrency limit of 1, held through a lease.

Two upgrades of the same cluster at once would fight over one deployment and one
password, so every run takes the slot of `aurora-bg-cluster-<cluster>` before
preflight and keeps it (renewing its lease) until it ends. A second run finds the
slot taken and refuses, naming the first, before it has touched anything.

A lease, not a plain slot, so that a run whose process died (SIGKILL, lost
machine) cannot block the cluster forever: Prefect revokes a lease nobody renews
(`LEASE_SECONDS`, the server's minimum). Who holds the lease is recorded in a
Prefect variable (flow run, host, process, lease id). That record lets a rerun
on the holder's own host see at once that the holder's process is gone and take
the lease over instead of waiting for it to expire; a holder on another host is
waited for until its lease would have expired.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from aurora_bg.errors import PreconditionFailed
from aurora_bg.processes import process_alive

LEASE_SECONDS = 60.0  # the shortest lease the Prefect server grants
RENEW_EVERY_SECONDS = LEASE_SECONDS / 3
# A holder on another host may have died without a word: its lease expires within
# LEASE_SECONDS, and the server's repossessor frees it within its loop (15 s).
WAIT_FOR_REMOTE_HOLDER_SECONDS = LEASE_SECONDS + 30
RETRY_SECONDS = 2.0


def limit_name(cluster: str) -> str:
    return f"aurora-bg-cluster-{cluster}"


def record_name(cluster: str) -> str:
    return f"aurora-bg-lock-{cluster}"


@dataclass(frozen=True)
class Holder:
    flow_run_id: str
    flow_run_name: str
    host: str
    pid: int
    lease_id: str

    @classmethod
    def from_record(cls, record: Any) -> Holder | None:
        try:
            return cls(**{k: record[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None

    def is_dead_here(self) -> bool:
        """True only when the holder ran on this host and its process is gone."""
        return self.host == socket.gethostname() and not process_alive(self.pid)


@contextmanager
def one_run_per_cluster(
    cluster: str, flow_run_id: uuid.UUID | str, flow_run_name: str
) -> Iterator[Holder]:
    """Hold the cluster's slot for the duration of the block, or raise PreconditionFailed."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        _ensure_limit(client, cluster)
        lease_id = _acquire(client, cluster, str(flow_run_id))
        holder = Holder(
            str(flow_run_id), flow_run_name, socket.gethostname(), os.getpid(), lease_id
        )
        _write_record(cluster, holder)
        stop = threading.Event()
        renewer = threading.Thread(
            target=_renew, args=(lease_id, stop), name=f"lease-{cluster}", daemon=True
        )
        renewer.start()
        try:
            yield holder
        finally:
            stop.set()
            renewer.join(timeout=5)
            _forget_record(cluster, holder)
            with suppress(Exception):  # an expired lease is already free
                client.release_concurrency_slots_with_lease(uuid.UUID(lease_id))


def _ensure_limit(client: Any, cluster: str) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:  # read first: a refused create makes the server log a constraint error
        client.read_global_concurrency_limit_by_name(limit_name(cluster))
        return
    except ObjectNotFound:
        pass
    with suppress(ObjectAlreadyExists):  # another run created it meanwhile
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=limit_name(cluster), limit=1, active=True)
        )


def _acquire(client: Any, cluster: str, flow_run_id: str) -> str:
    """The lease id once the slot is ours; PreconditionFailed when a live run holds it."""
    from httpx import HTTPStatusError
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder

    holder = ConcurrencyLeaseHolder(type="flow_run", id=uuid.UUID(flow_run_id))
    deadline = time.monotonic() + WAIT_FOR_REMOTE_HOLDER_SECONDS
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[limit_name(cluster)],
                slots=1,
                mode="concurrency",
                lease_duration=LEASE_SECONDS,
                holder=holder,
            )
            return str(response.json()["lease_id"])
        except HTTPStatusError as error:
            if error.response.status_code != 423:
                raise
        current = Holder.from_record(_read_record(cluster))
        if current is not None and current.flow_run_id == flow_run_id:
            raise PreconditionFailed(f"this run already holds {cluster}")
        if current is not None and current.is_dead_here():
            _take_over(client, cluster, current, flow_run_id)
            continue
        if current is not None and current.host == socket.gethostname():
            raise PreconditionFailed(_refusal(client, cluster, current))
        if time.monotonic() > deadline:
            raise PreconditionFailed(_refusal(client, cluster, current))
        time.sleep(RETRY_SECONDS)


def _take_over(client: Any, cluster: str, dead: Holder, flow_run_id: str) -> None:
    """Free the slot of a run whose process is gone, and say so on that run."""
    from prefect.logging import get_logger
    from prefect.states import Crashed

    get_logger("aurora_bg.run_lock").warning(
        "Flow run %s held %s but its process %s on %s is gone: taking over its slot.",
        dead.flow_run_name,
        cluster,
        dead.pid,
        dead.host,
    )
    with suppress(Exception):  # it may have expired meanwhile
        client.release_concurrency_slots_with_lease(uuid.UUID(dead.lease_id))
    with suppress(Exception):
        run = client.read_flow_run(uuid.UUID(dead.flow_run_id))
        if run.state is not None and not run.state.is_final():
            client.set_flow_run_state(
                run.id,
                Crashed(
                    message=f"process {dead.pid} on {dead.host} is gone; run {flow_run_id} "
                    f"took over {cluster}"
                ),
                force=True,
            )
    _forget_record(cluster, dead)


def _refusal(client: Any, cluster: str, holder: Holder | None) -> str:
    if holder is None:
        return (
            f"another run holds {cluster} (its Prefect concurrency slot "
            f"{limit_name(cluster)} is taken); wait for it to end or cancel it, then run again"
        )
    state = "unknown state"
    with suppress(Exception):
        run = client.read_flow_run(uuid.UUID(holder.flow_run_id))
        state = run.state.name if run.state else state
    return (
        f"another run is upgrading {cluster}: flow run '{holder.flow_run_name}' "
        f"({holder.flow_run_id}), {state}, process {holder.pid} on {holder.host}; "
        "wait for it to end or cancel it in the Prefect UI, then run again"
    )


def _renew(lease_id: str, stop: threading.Event) -> None:
    from prefect.client.orchestration import get_client
    from prefect.logging import get_logger

    with get_client(sync_client=True) as client:
        while not stop.wait(RENEW_EVERY_SECONDS):
            try:
                client.renew_concurrency_lease(uuid.UUID(lease_id), LEASE_SECONDS)
            except Exception as error:  # keep trying: the next renewal may get through
                get_logger("aurora_bg.run_lock").warning("renewing the run's lease: %s", error)


def _read_record(cluster: str) -> Any:
    from prefect.variables import Variable

    return Variable.get(record_name(cluster), default=None)


def _write_record(cluster: str, holder: Holder) -> None:
    from prefect.variables import Variable

    Variable.set(record_name(cluster), holder.__dict__, overwrite=True)


def _forget_record(cluster: str, holder: Holder) -> None:
    """Remove the record only while it is still this holder's."""
    from prefect.variables import Variable

    current = Holder.from_record(_read_record(cluster))
    if current is not None and current.lease_id == holder.lease_id:
        with suppress(Exception):
            Variable.unset(record_name(cluster))
