"""The lab's two real PostgreSQL servers: blue and green.

Each server is a data directory, a unix socket directory and a TCP port on
127.0.0.1. The lab's own superuser `lab_admin` logs in over the unix socket
without a password (trust, on the socket only); every other login, the Aurora
master user `postgres` included, goes over TCP with SCRAM-SHA-256 (`lab.scram`
sets those passwords).

This module creates, starts, stops and destroys servers. Which OS user they
run as when we are root, and where their files then live, is `lab.os_user`'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.abc import Params, QueryNoTemplate
from psycopg.conninfo import make_conninfo

from aurora_bg.errors import LabError
from aurora_bg.processes import process_alive
from lab.os_user import (
    give_to,
    lab_os_user,
    make_owned_dir,
    postgres_version,
    reachable_bindir,
    run_program,
    runtime_dir,
    socket_dir_for,
    wheel_bindir,
)

ADMIN_ROLE = "lab_admin"
MASTER_ROLE = "postgres"
SYSTEM_BINDIR_15 = Path("/usr/lib/postgresql/15/bin")
DEMO_SCHEMA_FILE = Path(__file__).with_name("demo_schema.sql")
CONNECT_TIMEOUT_S = 5
ADMIN_STATEMENT_TIMEOUT = "20s"
ADMIN_LOCK_TIMEOUT = "5s"
STOP_TIMEOUT_S = 30


@dataclass
class PgServer:
    """One lab PostgreSQL server, as it lives on disk; running or not."""

    name: str
    bindir: Path
    datadir: Path
    socket_dir: Path
    port: int
    os_user: str | None = None

    @cached_property
    def major(self) -> int:
        """The major version of the binaries in `bindir` (15, 16, ...)."""
        return int(postgres_version(self.bindir).split(".")[0])

    @property
    def log_file(self) -> Path:
        """Where pg_ctl sends the server's log: inside the data directory."""
        return self.datadir / "server.log"

    def start(self, timeout: float = 30) -> int:
        """Start the server and wait until it accepts connections; return its PID.

        Does nothing but return the PID when the server already runs.
        """
        running = self.pid()
        if running is not None:
            return running
        make_owned_dir(self.socket_dir, self.os_user)
        seconds = max(1, int(timeout))
        try:
            self._pg_ctl("start", "-w", "-t", seconds, "-l", self.log_file, timeout=seconds + 5)
        except LabError as exc:
            raise LabError(f"{self.name} did not start: {exc}; see {self.log_file}") from None
        started = self.pid()
        if started is None:
            raise LabError(f"{self.name}: pg_ctl started no postmaster; see {self.log_file}")
        return started

    def stop(self) -> None:
        """Stop the server (fast shutdown) and wait for its postmaster to exit.

        Safe to call twice, or on a server that never started.
        """
        if self.pid() is None:
            return
        # pg_ctl can time out behind a stuck client; the signals of kill_postmaster cannot
        with contextlib.suppress(LabError):
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", STOP_TIMEOUT_S)
        kill_postmaster(self.datadir)

    def restart(self, timeout: float = 30) -> int:
        """Stop the server (fast shutdown) and start it again, as a reboot does; return the new
        postmaster's PID. Settings that only a restart applies take effect."""
        self.stop()
        return self.start(timeout)

    def pid(self) -> int | None:
        """The postmaster's PID, or None when no postmaster runs on `datadir`."""
        return postmaster_pid(self.datadir)

    def is_running(self) -> bool:
        """Whether a postmaster runs on `datadir` now."""
        return self.pid() is not None

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """libpq conninfo for `lab_admin` over the unix socket; it needs no password."""
        return make_conninfo(
            host=str(self.socket_dir),
            port=self.port,
            user=ADMIN_ROLE,
            dbname=dbname,
            connect_timeout=CONNECT_TIMEOUT_S,
        )

    def tcp_conninfo_params(self) -> dict[str, Any]:
        """Where password logins (the `postgres` role, applications) connect."""
        return {"host": "127.0.0.1", "port": self.port}

    def to_dict(self) -> dict[str, Any]:
        """The server as lab.json records it; `from_dict` reads it back."""
        return {
            "name": self.name,
            "bindir": str(self.bindir),
            "datadir": str(self.datadir),
            "socket_dir": str(self.socket_dir),
            "port": self.port,
            "os_user": self.os_user,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PgServer:
        return cls(
            name=d["name"],
            bindir=Path(d["bindir"]),
            datadir=Path(d["datadir"]),
            socket_dir=Path(d["socket_dir"]),
            port=int(d["port"]),
            os_user=d.get("os_user"),
        )

    def _pg_ctl(self, *args: Any, timeout: float = STOP_TIMEOUT_S + 5) -> None:
        command = [self.bindir / "pg_ctl", "-D", self.datadir, *args]
        run_program(command, self.os_user, timeout=timeout)


def default_bindir(role: Literal["blue", "green"]) -> Path:
    """Blue runs PostgreSQL 15 when the machine has it, else 16; green always 16 (wheel)."""
    if role == "blue" and (SYSTEM_BINDIR_15 / "postgres").exists():
        return SYSTEM_BINDIR_15
    return wheel_bindir()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def create_server(
    name: str, bindir: Path, lab_dir: Path, port: int | None = None, databases: int = 2
) -> PgServer:
    """Create a fresh, stopped server called `name` for the lab in `lab_dir`.

    Any previous server of that name is stopped and its data wiped. The server
    has `lab_admin` (trust on the socket) and `postgres` (LOGIN SUPERUSER, no
    password until `lab.scram.set_role_password`). Its replication limits leave room
    for a Blue/Green deployment of `databases` databases (`replication_limits`).
    """
    lab_dir = Path(lab_dir).resolve()
    lab_dir.mkdir(parents=True, exist_ok=True)
    os_user = lab_os_user()
    runtime = runtime_dir(lab_dir, name, os_user)
    server = PgServer(
        name=name,
        bindir=reachable_bindir(Path(bindir), os_user),
        datadir=runtime / "data",
        socket_dir=socket_dir_for(runtime, lab_dir, name),
        port=port or free_port(),
        os_user=os_user,
    )
    _wipe(server, runtime)
    make_owned_dir(runtime, os_user, mode=0o755)
    _initdb(server)
    _write_config(server, databases)
    _create_master_role(server)
    return server


def destroy_server(server: PgServer) -> None:
    """Stop the server and delete its data and socket directories."""
    server.stop()
    kill_postmaster(server.datadir)
    for path in (server.datadir, server.socket_dir):
        shutil.rmtree(path, ignore_errors=True)
    for parent in (server.datadir.parent, server.datadir.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only succeeds when nothing else lives there


def connect_admin(
    server: PgServer, dbname: str = "postgres", statement_timeout: str = ADMIN_STATEMENT_TIMEOUT
) -> psycopg.Connection:
    """An autocommit `lab_admin` session whose statements and lock waits are bounded."""
    options = f"-c statement_timeout={statement_timeout} -c lock_timeout={ADMIN_LOCK_TIMEOUT}"
    return psycopg.connect(server.admin_conninfo(dbname), autocommit=True, options=options)


def seed_demo_schema(server: PgServer, dbname: str = "app") -> None:
    """Create database `dbname` with the demo schema and rows; a seeded database is left as is."""
    with connect_admin(server) as conn:
        if not database_exists(conn, dbname):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with connect_admin(server, dbname) as conn:
        if single_value(conn, "SELECT to_regclass('public.customers')") is None:
            conn.execute(DEMO_SCHEMA_FILE.read_text())


def single_value(
    conn: psycopg.Connection, query: QueryNoTemplate, params: Params | None = None
) -> Any:
    """The first column of the row a one-row query (an aggregate, a function call) returns."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LabError("a one-row query returned no row")
    return row[0]


def database_exists(conn: psycopg.Connection, dbname: str) -> bool:
    """Whether the server `conn` is connected to has a database called `dbname`."""
    found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
    return found is not None


def postmaster_pid(datadir: Path) -> int | None:
    """PID from `datadir/postmaster.pid` when that process is alive (zombies count as gone)."""
    try:
        first_line = (Path(datadir) / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line)
    except (OSError, ValueError):
        return None
    return pid if process_alive(pid) and _runs_in(pid, Path(datadir)) else None


def kill_postmaster(datadir: Path, timeout: float = 10) -> None:
    """Immediate shutdown of whatever postmaster runs on `datadir`; SIGKILL if it lingers."""
    pid = postmaster_pid(datadir)
    if pid is None:
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process_alive(pid):
                return
            time.sleep(0.05)
    raise LabError(f"postmaster {pid} on {datadir} survived SIGKILL")


def _wipe(server: PgServer, runtime: Path) -> None:
    kill_postmaster(server.datadir)
    shutil.rmtree(runtime, ignore_errors=True)
    shutil.rmtree(server.socket_dir, ignore_errors=True)


def _initdb(server: PgServer) -> None:
    run_program(
        [
            server.bindir / "initdb",
            "-D",
            server.datadir,
            "-U",
            ADMIN_ROLE,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # a lab rebuilds its data; durability buys nothing here
        ],
        server.os_user,
    )


def replication_limits(databases: int) -> dict[str, int]:
    """The lab's replication limits for a deployment of `databases` databases.

    A deployment needs one slot, one walsender and one apply worker per database, plus
    the launcher (AWS-FACTS S1, S2, S12); while a table is first copied, its sync worker
    takes one more slot, walsender and worker. The lab's servers get that much and a
    margin, so that only a lowered parameter group (lab/fidelity/parameter_groups.py)
    makes a deployment fail for want of capacity.
    """
    return {
        "max_replication_slots": max(16, 2 * databases + 4),
        "max_wal_senders": max(16, 2 * databases + 4),
        "max_worker_processes": max(16, 2 * databases + 8),
        "max_logical_replication_workers": max(8, databases + 4),
    }


def _write_config(server: PgServer, databases: int) -> None:
    hba = server.datadir / "pg_hba.conf"
    hba.write_text(
        "# TYPE  DATABASE     USER       ADDRESS        METHOD\n"
        f"local   all          {ADMIN_ROLE}                 trust\n"
        f"local   replication  {ADMIN_ROLE}                 trust\n"
        "host    all          all        127.0.0.1/32   scram-sha-256\n"
    )
    conf = server.datadir / "postgresql.conf"
    with conf.open("a") as out:
        out.write(_lab_settings(server, databases))
    for path in (hba, conf):
        give_to(path, server.os_user)


def _lab_settings(server: PgServer, databases: int) -> str:
    socket_dir = str(server.socket_dir).replace("'", "''")
    limits = "\n".join(f"{name} = {value}" for name, value in replication_limits(databases).items())
    return f"""
# --- aurora-bg lab (later lines win) ---
listen_addresses = '127.0.0.1'
port = {server.port}
unix_socket_directories = '"{socket_dir}"'
unix_socket_permissions = 0700      # trust on the socket: only the server's OS user (and root)
max_connections = 50
shared_buffers = '16MB'
wal_level = logical
rds.logical_replication = on        # Aurora's parameter, shown by SHOW as on a cluster
{limits}
max_sync_workers_per_subscription = 4
wal_receiver_status_interval = '1s'
password_encryption = 'scram-sha-256'
log_statement = 'none'
log_min_error_statement = 'panic'   # failing statements' text stays out of the log
logging_collector = off             # pg_ctl -l writes server.log inside the data dir
fsync = off                         # a lab rebuilds its data; durability buys nothing here
synchronous_commit = on             # as Aurora runs it, and a Blue/Green prerequisite (S2)
full_page_writes = off
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
"""


def _create_master_role(server: PgServer) -> None:
    """Create `postgres` in single-user mode: cheaper than a start/stop cycle."""
    statement = f"CREATE ROLE {MASTER_ROLE} LOGIN SUPERUSER;\n"
    result = run_program(
        [server.bindir / "postgres", "--single", "-D", server.datadir, "postgres"],
        server.os_user,
        input=statement,
    )
    if "ERROR" in result.stdout + result.stderr:
        raise LabError(f"{server.name}: cannot create role {MASTER_ROLE} in single-user mode")


def _runs_in(pid: int, datadir: Path) -> bool:
    """Whether `pid` is the postmaster of `datadir` (it chdirs there), not a recycled PID."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(datadir)
    except OSError:
        return True  # cannot look closer (not Linux, or not our process): trust the PID file
