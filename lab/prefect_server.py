"""A Prefect server that belongs to the lab, so a rehearsal has a UI to look at.

`aurora-bg demo` starts it (SQLite under `<lab dir>/prefect`, 127.0.0.1
only) when no PREFECT_API_URL is set, records its PID in lab.json beside the
others, and `lab down` stops it. A deterministic server of our own also
avoids leaving a temporary one behind when a command ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from aurora_bg.errors import LabError
from lab.postgres import free_port

STARTUP_LIMIT_SECONDS = 90


def prefect_executable() -> str:
    return str(Path(sys.executable).parent / "prefect")


def is_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start(lab_dir: Path, startup_limit: float = STARTUP_LIMIT_SECONDS) -> dict[str, Any]:
    """Start the server and wait until it answers; returns pid, api_url and ui_url.

    `startup_limit` is for callers that know the machine is busy (benchmarks).
    """
    home = Path(lab_dir) / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
    }
    env.pop("PREFECT_API_URL", None)
    log = (Path(lab_dir) / "prefect-server.log").open("ab")
    process = subprocess.Popen(
        [prefect_executable(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + startup_limit
    while not is_healthy(api_url):
        if process.poll() is not None:
            raise LabError(
                f"the lab's Prefect server exited; see {Path(lab_dir) / 'prefect-server.log'}"
            )
        if time.monotonic() > deadline:
            process.terminate()
            raise LabError(f"the lab's Prefect server did not answer within {startup_limit:g} s")
        time.sleep(0.25)
    return {"pid": process.pid, "api_url": api_url, "ui_url": f"http://127.0.0.1:{port}"}
