"""Fault injection: make the next N calls of an action fail like AWS does.

AWS throttles with HTTP 400 and the code `Throttling` (query protocol) or
`ThrottlingException` (JSON protocol), and fails internally with HTTP 500
`InternalFailure`; botocore retries both. A resource in the middle of an
operation is refused with HTTP 400 `InvalidDBClusterStateFault`, which
botocore does not retry and neither may we (it is a business error). Tests
arm faults through the lab's control endpoint `POST /_lab/faults`.

An endpoint that cannot be reached (a network outage, a regional API outage)
is played by `unreachable_seconds` (`POST /_lab/settings`): for that long,
every AWS call has its connection closed before any answer, which botocore
reports as `ConnectionClosedError`. The control API keeps answering.
(The error codes are the RDS API reference's common errors, AWS-FACTS S13.)
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass

KINDS = ("throttle", "500", "invalid-state")


@dataclass
class Fault:
    action: str  # an AWS action name, or "*" for every action
    kind: str  # one of KINDS
    count: int  # how many calls still fail; -1 means "by probability only"
    probability: float = 1.0


class FaultPlan:
    """The faults armed now; consulted once per incoming call."""

    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._unreachable_until = 0.0

    def make_unreachable(self, seconds: float) -> float:
        """Drop every AWS call for `seconds` from now (0 ends an outage); the seconds left."""
        with self._lock:
            self._unreachable_until = time.monotonic() + max(0.0, seconds)
        return self.unreachable_for()

    def unreachable_for(self) -> float:
        """Seconds the outage still lasts (0 when the endpoint answers)."""
        return max(0.0, self._unreachable_until - time.monotonic())

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


# kind: (HTTP status, code in the query protocol, code in the JSON protocol)
_ANSWERS = {
    "throttle": ("400 Bad Request", "Throttling", "ThrottlingException"),
    "500": ("500 Internal Server Error", "InternalFailure", "InternalFailure"),
    "invalid-state": ("400 Bad Request", "InvalidDBClusterStateFault", "InvalidRequestException"),
}


def error_response(kind: str, json_protocol: bool) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the AWS error for a fault kind."""
    status, query_code, json_code = _ANSWERS[kind]
    request_id = str(uuid.uuid4())
    if json_protocol:
        code = json_code
        body = json.dumps({"__type": code, "message": "Injected by the lab"}).encode()
        content_type = "application/x-amz-json-1.1"
    else:
        code = query_code
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>Injected by the lab</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
    return status, headers, body


def drop_connection(environ: dict) -> None:
    """Close the client's connection without an answer, as an unreachable endpoint does.

    Raises ConnectionResetError, which the WSGI server takes as a dropped connection.
    """
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
    raise ConnectionResetError("the lab plays an unreachable AWS endpoint")
