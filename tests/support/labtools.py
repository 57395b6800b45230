"""What the tests check about a lab on top of driving it with `lab.harness`.

`checked_lab(dir)` is `lab.harness.running_lab` plus the check every test lab gets once
it stopped: none of the processes it started is still alive, and it left no data
outside its directory (`assert_nothing_running`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab import control
from lab.harness import RunningLab, running_lab


def process_alive(pid: int | None) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    return control.is_alive(pid)


def _leftovers(info: dict[str, Any]) -> list[str]:
    """Processes of this lab still alive: the PIDs it recorded and its postmasters."""
    from lab.postgres import postmaster_pid

    alive = [f"{name} ({pid})" for name, pid in info.get("pids", {}).items() if process_alive(pid)]
    for name, server in info.get("servers", {}).items():
        pid = postmaster_pid(Path(server["datadir"]))
        if pid is not None:
            alive.append(f"{name} postmaster ({pid})")
    return alive


def processes_using(path: Path) -> list[int]:
    """PIDs whose command line names `path` (or a path under it) or whose cwd is under it."""
    target = str(Path(path).resolve())
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if int(proc.name) == os.getpid() or not process_alive(int(proc.name)):
            continue
        if (
            cwd == target
            or cwd.startswith(target + "/")
            or any(arg == target or arg.startswith(target + "/") for arg in cmdline)
        ):
            found.append(int(proc.name))
    return found


def assert_nothing_running(lab_dir: Path) -> None:
    """No process recorded in `lab_dir/lab.json` (nor any of its postmasters) is alive, and
    no process runs in `lab_dir` or names it on its command line."""
    from lab.os_user import lab_runtime_outside

    info = control.read_lab(lab_dir) or {}
    leftovers = _leftovers(info) + [f"pid {pid}" for pid in processes_using(lab_dir)]
    assert not leftovers, f"still running after lab down: {', '.join(leftovers)}"
    outside = lab_runtime_outside(lab_dir)
    assert not outside.exists(), f"lab down left the lab's data in {outside}"


@contextmanager
def checked_lab(
    lab_dir: Path, instances: int = 1, provisioning_delay: float = 0.0
) -> Iterator[RunningLab]:
    """A fresh lab in `lab_dir` for the block (`lab.harness.running_lab`); once it has
    stopped, however the block ended, `assert_nothing_running`."""
    try:
        with running_lab(lab_dir, instances, provisioning_delay) as lab:
            yield lab
    finally:
        assert_nothing_running(Path(lab_dir))
