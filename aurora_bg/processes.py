"""Whether a process still runs on this machine, for the lab and the run lock alike."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie nobody reaped yet counts as gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists() and _answers_signal_zero(pid)
    except OSError:
        return _answers_signal_zero(pid)
    return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _answers_signal_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
