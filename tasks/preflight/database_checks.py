"""Preflight's look inside blue: every database, read-only, before anything changes.

Logs in with the master credentials (`tasks.password.master_credentials`: the
managed secret's value read, never written, or the operator's secret), lists
the databases the deployment would replicate, opens one read-only session per
database (statement and lock timeouts on every one) and runs AWS's SQL
prerequisites (`tasks.validation.prerequisites`), the capacity formula and
`synchronous_commit` (`tasks.preflight.parameters`) and the operator's checks
file. Preflight always looks at every database: the deployment replicates them
all, whatever `validation.databases` narrows later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aurora_bg.errors import AuroraBGError, TransientError
from aurora_bg.params import UpgradeParameters
from tasks.password import master_credentials
from tasks.preflight.model import PreflightCheck
from tasks.preflight.parameters import capacity_checks, synchronous_commit_check
from tasks.validation.custom import problems_with_checks_file
from tasks.validation.databases import database_sessions, list_databases
from tasks.validation.model import open_session
from tasks.validation.prerequisites import check_prerequisites, read_capacity
from tasks.validation.session import Endpoint

LOCK_TIMEOUT_MS = 2000  # a check never queues behind an application's lock for longer


@dataclass
class InsideBlue:
    """What preflight found inside blue: its checks, and facts for the later phases."""

    checks: list[PreflightCheck] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def look_inside_blue(
    params: UpgradeParameters,
    cluster: dict[str, Any],
    sm: Any,
    *,
    unlogged_replicated: bool,
    prerequisites: bool = True,
) -> InsideBlue:
    """The SQL checks of every database (when `prerequisites`) and the checks file.

    A login or a query that fails for good is one failed row naming why; a
    server that cannot be reached raises TransientError (the task retries).
    """
    found = InsideBlue()
    if not prerequisites and params.validation.checks_file is None:
        return found
    endpoint = Endpoint(cluster["Endpoint"], int(cluster["Port"]))
    try:
        user, password = master_credentials(cluster, params, sm)
        if prerequisites:
            _check_every_database(
                found, params, cluster, endpoint, user, password, unlogged_replicated
            )
        if params.validation.checks_file is not None:
            found.checks.append(_checks_file_check(params, endpoint, user, password))
    except TransientError:
        raise
    except AuroraBGError as error:
        found.checks.append(
            PreflightCheck(
                "blue's databases readable",
                False,
                f"could not read blue: {error}",
                "fix what the detail names (the login, the secret or its permission), then rerun",
            )
        )
    return found


def _check_every_database(
    found: InsideBlue,
    params: UpgradeParameters,
    cluster: dict[str, Any],
    endpoint: Endpoint,
    user: str,
    password: str,
    unlogged_replicated: bool,
) -> None:
    """List the databases from `validation.database`, then check each in its own session."""
    group = cluster.get("DBClusterParameterGroup", "blue's cluster parameter group")
    timeout_ms = params.validation.statement_timeout_ms
    with open_session(
        "blue",
        endpoint,
        user,
        password,
        params.validation.database,
        read_only=True,
        statement_timeout_ms=timeout_ms,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
    ) as first:
        databases = list_databases(first)
        capacity = read_capacity(first)
    found.facts["databases"] = databases
    found.checks += capacity_checks(capacity, len(databases), group)
    found.checks.append(synchronous_commit_check(capacity, group))
    with database_sessions(
        "blue",
        endpoint,
        user,
        password,
        databases,
        statement_timeout_ms=timeout_ms,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
    ) as sessions:
        found.checks += [
            PreflightCheck.of(check)
            for check in check_prerequisites(sessions, unlogged_replicated=unlogged_replicated)
        ]


def _checks_file_check(
    params: UpgradeParameters, endpoint: Endpoint, user: str, password: str
) -> PreflightCheck:
    """The operator's checks file parses, has known keys only, and each query plans on
    blue (EXPLAIN in a read-only session, never run) without writing."""
    path = params.validation.checks_file
    if path is None:
        raise ValueError("no checks file to check")
    problems = problems_with_checks_file(path, endpoint, user, password, params.validation.database)
    return PreflightCheck(
        "validation checks file",
        not problems,
        "; ".join(problems) or f"{path}: every check plans on blue, read-only",
        "correct the checks file (see deployments/checks.example.yaml), then rerun",
    )
