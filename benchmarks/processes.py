"""The processes the benchmarks start besides labs (which `lab.harness.running_lab`
starts and stops): a Prefect server, the command line. Always stopped here."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab import prefect_server

# the benchmarks run on a shared machine: give the Prefect server time to start
PREFECT_STARTUP_LIMIT_S = 600


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
