"""Labs and a Prefect server for the benchmarks: started here, always stopped here."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab import control, prefect_server
from tests.labtools import RunningLab

# the benchmarks run on a shared machine: give the Prefect server time to start
PREFECT_STARTUP_LIMIT_S = 600


@contextmanager
def fresh_lab(lab_dir: Path, provisioning_delay: float = 0.0) -> Iterator[RunningLab]:
    """A lab nobody used, stopped on the way out whatever happens."""
    info = control.up(lab_dir, 1, provisioning_delay)
    try:
        yield RunningLab(info=info, dir=Path(info["lab_dir"]))
    finally:
        control.down(lab_dir)


@contextmanager
def prefect_api(work_dir: Path) -> Iterator[str]:
    """A Prefect server on SQLite under `work_dir`, 127.0.0.1 only; yields its API URL."""
    started = prefect_server.start(work_dir, PREFECT_STARTUP_LIMIT_S)
    try:
        yield started["api_url"]
    finally:
        _stop_group(started["pid"])


def _stop_group(pid: int) -> None:
    # the server runs in a session of its own (uvicorn children included)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def run_process(args: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Run `args`; returns exit code, stdout and wall-clock seconds (stderr goes to `log`)."""
    started = time.perf_counter()
    with log.open("ab") as err:
        done = subprocess.run(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=timeout,
            check=False,
        )
    return {
        "code": done.returncode,
        "stdout": done.stdout.decode(errors="replace"),
        "seconds": time.perf_counter() - started,
    }
