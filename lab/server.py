"""The lab's AWS API process: moto behind the fidelity layer, on 127.0.0.1.

Started by `aurora-bg lab up` as `python -m lab.server --lab-dir DIR`. It
reads the PostgreSQL servers from `DIR/lab.json`, installs the fidelity
layer, serves the AWS API plus a small control API under `/_lab/`, and
writes its port to `DIR/server.port` once it listens.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lab.fidelity.call_log import CallLog, describe_request
from lab.fidelity.faults import FaultPlan, drop_connection, error_response
from lab.fidelity.world import LabWorld

_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>|\"__type\"\s*:\s*\"(?:[^#\"]*#)?([^\"]+)\"")


class LoggedResponse:
    """A response body that records its call once the body has been sent."""

    def __init__(self, body: bytes, on_close: Any) -> None:
        self._body = body
        self._on_close = on_close

    def __iter__(self) -> Any:
        yield self._body

    def close(self) -> None:
        self._on_close()


class LabApplication:
    """WSGI app: control API, fault injection and call log around moto."""

    def __init__(self, lab_world: LabWorld, calls: CallLog, faults: FaultPlan) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.world = lab_world
        self.calls = calls
        self.faults = faults
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if environ.get("PATH_INFO", "").startswith("/_lab/"):
            return self.control(environ, body, start_response)
        import io

        environ["wsgi.input"] = io.BytesIO(body)
        # Stamped on arrival: the entry is written only after the answer has been sent, so a
        # call made before a client's `since` must not be dated after it.
        call = {"time": time.time(), **describe_request(environ, body)}
        if self.faults.unreachable_for() > 0:
            self.calls.record({**call, "status": 0, "error": "injected unreachable"})
            drop_connection(environ)
        kind = self.faults.take(call["action"])
        if kind is not None:
            status, headers, payload = error_response(kind, bool(environ.get("HTTP_X_AMZ_TARGET")))
            start_response(status, headers)
            entry = {**call, "status": int(status[:3]), "error": f"injected {kind}"}
            return LoggedResponse(payload, lambda: self.calls.record(entry))
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Any:
            seen["status"] = int(status[:3])
            return start_response(status, headers, exc_info)

        result = self.moto(environ, capture)
        payload = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        entry = {**call, "status": seen.get("status", 0)}
        if entry["status"] >= 400:
            match = _ERROR_CODE.search(payload)
            entry["error"] = (match.group(1) or match.group(2)).decode() if match else "unknown"
        return LoggedResponse(payload, lambda: self.calls.record(entry))

    def control(self, environ: dict[str, Any], body: bytes, start_response: Any) -> Any:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        request = json.loads(body or b"{}")
        if path == "/_lab/health":
            answer: Any = {"ok": True}
        elif path == "/_lab/calls":
            answer = self.calls.entries()
        elif path == "/_lab/faults" and method == "DELETE":
            self.faults.clear()
            answer = {"cleared": True}
        elif path == "/_lab/faults":
            self.faults.arm(
                request["action"],
                request.get("kind", "throttle"),
                int(request.get("count", 1)),
                float(request.get("probability", 1.0)),
            )
            answer = {"armed": request}
        elif path == "/_lab/settings":
            if "provisioning_delay" in request:
                self.world.provisioning_delay = float(request["provisioning_delay"])
            if "unreachable_seconds" in request:
                self.faults.make_unreachable(float(request["unreachable_seconds"]))
            answer = {
                "provisioning_delay": self.world.provisioning_delay,
                "unreachable_seconds": self.faults.unreachable_for(),
            }
        elif path == "/_lab/endpoints":
            answer = self.world.proxy.ports()
        elif path == "/_lab/iam":
            from lab.fidelity import iam

            if "enforce" in request:
                iam.set_enforcement(bool(request["enforce"]))
            answer = {"enforced": iam.is_enforced()}
        elif path == "/_lab/deployment-status-times":
            from lab.fidelity.deployments import status_times

            answer = {d: dict(times) for d, times in list(status_times.items())}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no such control path"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer, default=str).encode()]


def build_world(lab_dir: Path) -> LabWorld:
    from lab.postgres import PgServer

    info = json.loads((lab_dir / "lab.json").read_text())
    servers = {name: PgServer.from_dict(data) for name, data in info["servers"].items()}
    # A lab of several clusters gives each its own pair of servers (lab/topology.py).
    pairs = info.get("server_pairs") or [{"cluster": "", "blue": "blue", "green": "green"}]
    return LabWorld(
        servers=servers,
        region=info["region"],
        provisioning_delay=float(info.get("provisioning_delay", 0.0)),
        blue_server_of={p["cluster"]: p["blue"] for p in pairs if p["cluster"]},
        green_server_of={p["blue"]: p["green"] for p in pairs},
        lab_dir=lab_dir,
    )


def serve(lab_dir: Path, port: int) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    from lab import fidelity
    from lab.fidelity import iam

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """The call log records every call; the access log would only repeat it."""

    lab_world = build_world(lab_dir)
    fidelity.install(lab_world)
    # The lab's own key acts as the account's root user: IAM enforcement (off unless
    # asked for through /_lab/iam) applies to every other key, as in AWS.
    iam.install_root_key()
    app = LabApplication(lab_world, CallLog(lab_dir / "calls.jsonl"), FaultPlan())
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    (lab_dir / "server.port").write_text(str(server.server_port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        lab_world.proxy.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    serve(args.lab_dir.resolve(), args.port)


if __name__ == "__main__":
    main()
