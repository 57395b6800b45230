"""A log of every AWS API call the lab answers, with secrets removed.

Tests read it to assert facts such as "no mutating call happened"; the crash
matrix watches it to know when a call has returned. Each line of
`calls.jsonl` is one call: time, service, action, parameters, HTTP status and
error code. Any parameter whose name speaks of a password or a secret value
is replaced before anything is written.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"password|secretstring|secretbinary", re.IGNORECASE)
# Flags that only name a password hold no secret; the crash matrix counts the password
# switches by this one (false: the password leaves Secrets Manager, true: it comes back).
_NOT_SECRET_KEYS = frozenset({"ManageMasterUserPassword"})
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")

# Describe/List/Get calls change nothing; everything else is a mutation.
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Check", "Validate")


def is_mutating(action: str) -> bool:
    """True when an AWS action changes state (by AWS's own naming convention)."""
    return not action.startswith(READ_ONLY_PREFIXES)


def _is_secret_key(key: str) -> bool:
    return key not in _NOT_SECRET_KEYS and _SECRET_KEY.search(key) is not None


def redact(value: Any) -> Any:
    """Return `value` with every secret-looking field replaced by REDACTED."""
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def describe_request(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Service, action and redacted parameters of one botocore request."""
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(2) if scope else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    params: dict[str, Any]
    if target:  # JSON protocol: Secrets Manager, SSM, KMS
        action = target.rsplit(".", 1)[-1]
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
    else:  # query protocol: RDS, EC2
        pairs = parse_qsl(body.decode("utf-8", "replace")) + parse_qsl(
            environ.get("QUERY_STRING", "")
        )
        params = dict(pairs)
        action = params.pop("Action", "")
        params.pop("Version", None)
    return {"service": service, "action": action, "params": redact(params)}


class CallLog:
    """Append-only call log kept in memory and in `<lab dir>/calls.jsonl`."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        entry = {"time": time.time(), **entry}
        line = json.dumps(entry, default=str)
        with self._lock:
            self._entries.append(entry)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as handle:
                    handle.write(line + "\n")

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)


def read_call_log(lab_dir: Path) -> list[dict[str, Any]]:
    """Every call recorded so far by the lab running in `lab_dir`."""
    path = Path(lab_dir) / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mutating_calls(entries: list[dict[str, Any]], since: float = 0.0) -> list[dict[str, Any]]:
    """The calls among `entries` (made after `since`) that change AWS state."""
    return [e for e in entries if e["time"] >= since and is_mutating(e["action"])]
