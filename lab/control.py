"""`aurora-bg lab up | down | status | env`: start and stop exactly what the lab runs.

`up` starts, on 127.0.0.1 only: two PostgreSQL servers (blue and green), the
AWS API process (moto + fidelity layer), seeds blue's application databases
(`app`, `app_2`, …) with the demo schema, then creates docs/runbook.md's topology
through the API and writes the Terraform directory. It records every PID in
`lab.json` so that `down` stops exactly those, and is safe to repeat.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from aurora_bg.errors import LabError
from aurora_bg.processes import process_alive

REGION = "ap-northeast-1"
DBNAME = "app"
STARTUP_LIMIT_SECONDS = 30
MAX_CLUSTERS = 50
MAX_DATABASES = 20
# initdb and server starts run this many at a time: enough to overlap their I/O waits on
# a small machine, few enough not to starve it.
SERVER_STARTERS = 4


def lab_file(lab_dir: Path) -> Path:
    return Path(lab_dir) / "lab.json"


def read_lab(lab_dir: Path) -> dict[str, Any] | None:
    path = lab_file(lab_dir)
    return json.loads(path.read_text()) if path.exists() else None


def write_lab(lab_dir: Path, info: dict[str, Any]) -> None:
    path = lab_file(lab_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(path)


def application_databases(count: int) -> list[str]:
    """`app`, `app_2`, … `app_<count>`: the application databases `up` seeds on blue."""
    return [DBNAME] + [f"{DBNAME}_{index}" for index in range(2, count + 1)]


def record_server_pid(lab_dir: Path, name: str, pid: int) -> None:
    """Record that server `name` now runs as postmaster `pid` (after a restart)."""
    info = read_lab(lab_dir)
    if info is not None:
        info["pids"][name] = pid
        write_lab(lab_dir, info)


def is_alive(pid: int | None) -> bool:
    """Whether a recorded PID still runs (a zombie counts as gone)."""
    if not pid:
        return False
    return process_alive(pid)


def env_lines(info: dict[str, Any]) -> list[str]:
    """The environment that points boto3 (and the flow) at this lab: the root key, or
    the keys of the user holding the shipped IAM policy when enforcement is on."""
    keys = info.get("iam") or {}
    return [
        f"export AWS_ENDPOINT_URL={info['endpoint_url']}",
        f"export AWS_REGION={info['region']}",
        f"export AWS_DEFAULT_REGION={info['region']}",
        f"export AWS_ACCESS_KEY_ID={keys.get('AWS_ACCESS_KEY_ID', 'lab')}",
        f"export AWS_SECRET_ACCESS_KEY={keys.get('AWS_SECRET_ACCESS_KEY', 'lab')}",
    ]


def env_dict(info: dict[str, Any]) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in env_lines(info))


def status(lab_dir: Path) -> dict[str, Any]:
    """Each process the lab started, alive or not."""
    info = read_lab(lab_dir)
    if info is None:
        return {"lab_dir": str(lab_dir), "running": False, "processes": {}}
    processes = {name: {"pid": pid, "alive": is_alive(pid)} for name, pid in info["pids"].items()}
    return {
        "lab_dir": str(lab_dir),
        "running": all(p["alive"] for p in processes.values()) and bool(processes),
        "endpoint_url": info.get("endpoint_url"),
        "processes": processes,
    }


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise LabError(
                f"port {port} on 127.0.0.1 is taken; choose another with --port"
            ) from error


def _check_writable(lab_dir: Path) -> None:
    try:
        lab_dir.mkdir(parents=True, exist_ok=True)
        probe = lab_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise LabError(f"lab directory {lab_dir} is not writable: {error.strerror}") from error


def _clients(info: dict[str, Any]) -> dict[str, Any]:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="lab", aws_secret_access_key="lab", region_name=info["region"]
    )
    return {
        name: session.client(name, endpoint_url=info["endpoint_url"])
        for name in ("rds", "ec2", "ssm")
    }


def _start_aws_process(lab_dir: Path, port: int) -> subprocess.Popen:
    (lab_dir / "server.port").unlink(missing_ok=True)
    log = (lab_dir / "aws-api.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "lab.server", "--lab-dir", str(lab_dir), "--port", str(port)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # `lab up` returns; the API lives on until `lab down`
    )


def _wait_for_port(lab_dir: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    port_file = lab_dir / "server.port"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (lab_dir / "aws-api.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise LabError(f"the lab's AWS API process exited: {' '.join(tail) or 'no output'}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.05)
    raise LabError(f"the lab's AWS API did not listen within {STARTUP_LIMIT_SECONDS} s")


def up(
    lab_dir: Path,
    instances: int = 1,
    provisioning_delay: float = 0.0,
    port: int = 0,
    clusters: int = 1,
    iam: bool = False,
    databases: int = 1,
) -> dict[str, Any]:
    """Start the lab, or say it is running. Raises LabError with one line on failure.

    `databases` application databases (`app`, `app_2`, … `app_<databases>`) are seeded
    on each blue server with the demo schema; a deployment replicates them all, and
    `postgres` too.

    `clusters` > 1 creates that many runbook clusters (`provisioning-rds`,
    `provisioning-rds-2`, …), each played by its own blue and green PostgreSQL
    servers; the Terraform directory covers the first cluster only.

    `iam` switches IAM enforcement on once the lab is set up, and points `env` at a user
    holding only deployments/iam-policy.json (lab/fidelity/iam.py says what the lab can enforce).
    """
    from lab import postgres, terraform_cli
    from lab.terraform_dir import write_terraform_dir
    from lab.topology import create_clusters, server_pair

    lab_dir = Path(lab_dir).resolve()
    current = status(lab_dir)
    if any(p["alive"] for p in current["processes"].values()):
        return {**(read_lab(lab_dir) or {}), "already_running": True}
    if instances < 1:
        raise LabError("--instances must be at least 1")
    if not 1 <= clusters <= MAX_CLUSTERS:
        raise LabError(f"--clusters must be between 1 and {MAX_CLUSTERS}")
    if provisioning_delay < 0:
        raise LabError("--provisioning-delay must be 0 or more seconds")
    if not 1 <= databases <= MAX_DATABASES:
        raise LabError(f"--databases must be between 1 and {MAX_DATABASES}")
    seeded = application_databases(databases)
    if port:
        _check_port_free(port)
    _check_writable(lab_dir)
    for stale in ("calls.jsonl", "server.port"):
        (lab_dir / stale).unlink(missing_ok=True)

    started: dict[str, Any] = {}
    info: dict[str, Any] = {
        "lab_dir": str(lab_dir),
        "region": REGION,
        "dbname": DBNAME,
        "databases": seeded,
        "instances": instances,
        "clusters": clusters,
        "provisioning_delay": provisioning_delay,
        "pids": {},
    }
    began = time.monotonic()
    try:
        pairs = [server_pair(i) for i in range(clusters)]
        sides: tuple[Literal["blue", "green"], ...] = ("blue", "green")
        roles = {pair[side]: postgres.default_bindir(side) for pair in pairs for side in sides}
        with ThreadPoolExecutor(SERVER_STARTERS) as pool:
            servers = dict(
                zip(
                    roles,
                    pool.map(
                        # the application databases and `postgres`
                        lambda r: postgres.create_server(
                            r, roles[r], lab_dir, databases=len(seeded) + 1
                        ),
                        roles,
                    ),
                    strict=True,
                )
            )
        info["servers"] = {name: server.to_dict() for name, server in servers.items()}
        if clusters > 1:  # read by the AWS API process: which servers play which cluster
            info["server_pairs"] = pairs
        write_lab(lab_dir, info)
        process = _start_aws_process(lab_dir, port)
        started["aws"] = process
        info["pids"]["aws"] = process.pid
        with ThreadPoolExecutor(SERVER_STARTERS) as pool:
            for name, pid in zip(
                servers, pool.map(lambda s: s.start(), servers.values()), strict=True
            ):
                started[name] = servers[name]
                info["pids"][name] = pid
        write_lab(lab_dir, info)

        def seed(server: postgres.PgServer) -> None:
            # one after the other: CREATE DATABASE copies template1, which another
            # CREATE DATABASE on the same server may be reading
            for name in seeded:
                postgres.seed_demo_schema(server, name)

        with ThreadPoolExecutor(SERVER_STARTERS) as pool:
            list(pool.map(seed, [servers[pair["blue"]] for pair in pairs]))
        info["endpoint_url"] = f"http://127.0.0.1:{_wait_for_port(lab_dir, process)}"
        clients = _clients(info)
        topologies = create_clusters(
            clients["rds"], clients["ec2"], clients["ssm"], instances, clusters
        )
        info["topology"] = topologies[0].as_dict()
        if clusters > 1:
            info["fleet"] = [t.as_dict() for t in topologies]
        info["terraform_dir"] = str(
            write_terraform_dir(
                lab_dir / "terraform", clients["rds"], clients["ssm"], clients["ec2"]
            )
        )
        # The Terraform core the lab's state was written for, as one executable for
        # python-terraform: deployments/lab.yaml points at .lab/bin/terraform.
        info["terraform_bin"] = str(terraform_cli.write_executable(lab_dir / "bin"))
        info["versions"] = {name: server.major for name, server in servers.items()}
        info["startup_seconds"] = round(time.monotonic() - began, 2)
        write_lab(lab_dir, info)
        if iam:
            from lab.fidelity.iam import grant

            info["iam"] = grant(info)
            write_lab(lab_dir, info)
        (lab_dir / "env").write_text("\n".join(env_lines(info)) + "\n")
        return info
    except LabError:
        _stop_started(started)
        raise
    except Exception as error:
        _stop_started(started)
        raise LabError(f"the lab did not start: {type(error).__name__}: {error}") from error


def ensure_prefect_server(lab_dir: Path) -> dict[str, Any]:
    """The lab's Prefect server (started once, recorded in lab.json); returns its URLs."""
    from lab import prefect_server

    lab_dir = Path(lab_dir).resolve()
    info = read_lab(lab_dir)
    if info is None:
        raise LabError(f"no lab in {lab_dir}; start one with: aurora-bg lab up")
    known = info.get("prefect")
    if (
        known
        and is_alive(info["pids"].get("prefect"))
        and prefect_server.is_healthy(known["api_url"])
    ):
        return known
    started = prefect_server.start(lab_dir)
    info["pids"]["prefect"] = started.pop("pid")
    info["prefect"] = started
    write_lab(lab_dir, info)
    return started


def _stop_started(started: dict[str, Any]) -> None:
    for name, thing in started.items():
        if name == "aws":
            _terminate(thing.pid)
            thing.wait(timeout=10)
        else:
            thing.stop()


def _terminate(pid: int, grace: float = 5.0) -> None:
    if not is_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_alive(pid):
        os.kill(pid, signal.SIGKILL)


def down(lab_dir: Path) -> dict[str, Any]:
    """Stop exactly the processes `up` started (by PID). Safe to repeat."""
    from lab.os_user import forget_runtime_outside
    from lab.postgres import PgServer

    lab_dir = Path(lab_dir).resolve()
    info = read_lab(lab_dir)
    if info is None:
        return {"lab_dir": str(lab_dir), "stopped": []}
    stopped = []
    servers = info.get("servers", {})
    for name, pid in info["pids"].items():  # the AWS API and, if started, the Prefect server
        if name not in servers and is_alive(pid):
            _terminate(pid)
            stopped.append(name)
    for name, data in servers.items():
        server = PgServer.from_dict(data)
        if is_alive(info["pids"].get(name)) or server.is_running():
            server.stop()
            stopped.append(name)
        pid = info["pids"].get(name)
        if is_alive(pid):
            _terminate(pid)
    forget_runtime_outside(lab_dir)
    return {"lab_dir": str(lab_dir), "stopped": stopped}
