"""Fault injection: make the next N calls of an action fail like AWS does.

AWS throttles with HTTP 400 and the code `Throttling` (query protocol) or
`ThrottlingException` (JSON protocol), and fails internally with HTTP 500
`InternalFailure`; botocore retries both. Tests arm faults through the lab's
control endpoint `POST /_lab/faults`.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from dataclasses import dataclass

KINDS = ("throttle", "500")


@dataclass
class Fault:
    action: str  # an AWS action name, or "*" for every action
    kind: str  # "throttle" or "500"
    count: int  # how many calls still fail; -1 means "by probability only"
    probability: float = 1.0


class FaultPlan:
    """The faults armed now; consulted once per incoming call."""

    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def arm(self, action: str, kind: str, count: int = 1, probability: float = 1.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, not {kind!r}")
        with self._lock:
            self._faults.append(Fault(action, kind, count, probability))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, action: str) -> str | None:
        """The fault kind this call of `action` must suffer, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.action not in (action, "*") or fault.count == 0:
                    continue
                if self._random.random() >= fault.probability:
                    continue
                if fault.count > 0:
                    fault.count -= 1
                return fault.kind
        return None


def error_response(kind: str, json_protocol: bool) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the AWS error for a fault kind."""
    status = "400 Bad Request" if kind == "throttle" else "500 Internal Server Error"
    request_id = str(uuid.uuid4())
    if json_protocol:
        code = "ThrottlingException" if kind == "throttle" else "InternalFailure"
        body = json.dumps({"__type": code, "message": "Injected by the lab"}).encode()
        content_type = "application/x-amz-json-1.1"
    else:
        code = "Throttling" if kind == "throttle" else "InternalFailure"
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>Injected by the lab</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
    return status, headers, body
