"""Phase 1, preflight: every read-only check before anything changes.

`run` runs them all; `aws_checks` (engine, versions, groups, other deployments,
the password), `parameters` (blue's parameter group and capacity), `topology`
(what AWS supports around the cluster) and `database_checks` (inside every
database of blue) each own one part; `model` holds the checks and the result.
"""

from tasks.preflight.model import (
    AFTER_SWITCHOVER,
    BEFORE_SWITCHOVER,
    FRESH,
    Preflight,
    PreflightCheck,
)
from tasks.preflight.run import run_preflight

__all__ = [
    "AFTER_SWITCHOVER",
    "BEFORE_SWITCHOVER",
    "FRESH",
    "Preflight",
    "PreflightCheck",
    "run_preflight",
]
