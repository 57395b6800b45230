"""The lab's two real PostgreSQL servers: blue and green.

Each server is a data directory, a unix socket directory and a TCP port on
127.0.0.1. The lab's own superuser `lab_admin` logs in over the unix socket
without a password (trust, on the socket only); every other login, the Aurora
master user `postgres` included, goes over TCP with SCRAM-SHA-256.

PostgreSQL refuses to run as root: when we are root the servers run as an
unprivileged OS user, and their data, sockets and (if need be) a copy of the
binaries move under /tmp/aurora-bg-lab when that user cannot reach them where
they are.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import stringprep
import subprocess
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from aurora_bg.errors import LabError
from aurora_bg.processes import process_alive

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
        return self.datadir / "server.log"

    def start(self, timeout: float = 30) -> int:
        """Start the server and wait until it accepts connections; return its PID.

        Does nothing but return the PID when the server already runs.
        """
        running = self.pid()
        if running is not None:
            return running
        _make_owned_dir(self.socket_dir, self.os_user)
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

    def pid(self) -> int | None:
        """The postmaster's PID, or None when no postmaster runs on `datadir`."""
        return postmaster_pid(self.datadir)

    def is_running(self) -> bool:
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


def create_server(name: str, bindir: Path, lab_dir: Path, port: int | None = None) -> PgServer:
    """Create a fresh, stopped server called `name` for the lab in `lab_dir`.

    Any previous server of that name is stopped and its data wiped. The server
    has `lab_admin` (trust on the socket) and `postgres` (LOGIN SUPERUSER, no
    password until `set_role_password`).
    """
    lab_dir = Path(lab_dir).resolve()
    lab_dir.mkdir(parents=True, exist_ok=True)
    os_user = lab_os_user()
    runtime = _runtime_dir(lab_dir, name, os_user)
    server = PgServer(
        name=name,
        bindir=_reachable_bindir(Path(bindir), os_user),
        datadir=runtime / "data",
        socket_dir=_socket_dir_for(runtime, lab_dir, name),
        port=port or free_port(),
        os_user=os_user,
    )
    _wipe(server, runtime)
    _make_owned_dir(runtime, os_user, mode=0o755)
    _initdb(server)
    _write_config(server)
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


def set_role_password(server: PgServer, role: str, password: str, dbname: str = "postgres") -> None:
    """Give `role` this password, creating it LOGIN SUPERUSER when missing.

    Only the SCRAM-SHA-256 verifier, computed here, reaches the server: the
    plaintext never appears in its statements, logs or catalogs.
    """
    verifier = scram_sha256_verifier(password)
    with connect_admin(server, dbname) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )


def seed_demo_schema(server: PgServer, dbname: str = "app") -> None:
    """Create database `dbname` with the demo schema and rows; a seeded database is left as is."""
    with connect_admin(server) as conn:
        if not database_exists(conn, dbname):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with connect_admin(server, dbname) as conn:
        if conn.execute("SELECT to_regclass('public.customers')").fetchone()[0] is None:
            conn.execute(DEMO_SCHEMA_FILE.read_text())


def database_exists(conn: psycopg.Connection, dbname: str) -> bool:
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


def postgres_version(bindir: Path) -> str:
    """The version of `bindir/postgres`, e.g. "16.2"."""
    out = run_program([Path(bindir) / "postgres", "--version"]).stdout
    found = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", out)
    if found is None:
        raise LabError(f"cannot read the PostgreSQL version of {bindir}")
    return found.group(1)


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


def _write_config(server: PgServer) -> None:
    hba = server.datadir / "pg_hba.conf"
    hba.write_text(
        "# TYPE  DATABASE     USER       ADDRESS        METHOD\n"
        f"local   all          {ADMIN_ROLE}                 trust\n"
        f"local   replication  {ADMIN_ROLE}                 trust\n"
        "host    all          all        127.0.0.1/32   scram-sha-256\n"
    )
    conf = server.datadir / "postgresql.conf"
    with conf.open("a") as out:
        out.write(_lab_settings(server))
    for path in (hba, conf):
        _give_to(path, server.os_user)


def _lab_settings(server: PgServer) -> str:
    socket_dir = str(server.socket_dir).replace("'", "''")
    return f"""
# --- aurora-bg lab (later lines win) ---
listen_addresses = '127.0.0.1'
port = {server.port}
unix_socket_directories = '"{socket_dir}"'
unix_socket_permissions = 0700      # trust on the socket: only the server's OS user (and root)
max_connections = 50
shared_buffers = '16MB'
wal_level = logical
max_wal_senders = 16
max_replication_slots = 16
max_worker_processes = 16
max_logical_replication_workers = 8
max_sync_workers_per_subscription = 4
wal_receiver_status_interval = '1s'
password_encryption = 'scram-sha-256'
log_statement = 'none'
log_min_error_statement = 'panic'   # failing statements' text stays out of the log
logging_collector = off             # pg_ctl -l writes server.log inside the data dir
fsync = off
synchronous_commit = off
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


# --- running as an unprivileged OS user, and where the files live -----------

SHARED_RUNTIME_ROOT = Path("/tmp/aurora-bg-lab")
LAB_OS_USER = "aurora-bg-lab"
COMMAND_TIMEOUT_S = 60
MAX_SOCKET_DIR_CHARS = 80  # sun_path holds 107 bytes and "/.s.PGSQL.<port>" follows the dir


def lab_os_user() -> str | None:
    """The OS user the servers run as: None unless we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", LAB_OS_USER):
        if _user_exists(candidate):
            return candidate
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", LAB_OS_USER],
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    if not _user_exists(LAB_OS_USER):  # a concurrent useradd that won the race is fine
        raise LabError(f"cannot create the OS user {LAB_OS_USER}")
    return LAB_OS_USER


def wheel_bindir() -> Path:
    """The binaries of the pgserver wheel (PostgreSQL 16), found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise LabError("the pgserver wheel is not installed: pip install -e '.[lab]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def shared_runtime_root() -> Path:
    """/tmp/aurora-bg-lab (per uid when not root): a place every lab OS user can traverse."""
    euid = os.geteuid()
    root = SHARED_RUNTIME_ROOT if euid == 0 else Path(f"{SHARED_RUNTIME_ROOT}-{euid}")
    root.mkdir(mode=0o755, exist_ok=True)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != euid:
        raise LabError(f"{root} is not a directory of ours; remove it and retry")
    root.chmod(0o755)
    return root


def run_program(
    cmd: list[Any],
    os_user: str | None = None,
    *,
    input: str | None = None,
    timeout: float = COMMAND_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program (as `os_user` when given); LabError on failure or timeout."""
    args = [str(part) for part in cmd]
    program = Path(args[0]).name
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    try:
        return subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            cwd="/",
            env=env,
            **_as_user(os_user),
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()[-800:]
        raise LabError(f"{program} exited with {exc.returncode}: {detail}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{program} did not finish within {timeout:.0f}s") from None


def _as_user(os_user: str | None) -> dict[str, Any]:
    if os_user is None:
        return {}
    entry = pwd.getpwnam(os_user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _can_reach(os_user: str, path: Path) -> bool:
    """Whether `os_user` can traverse to `path` and search/execute it."""
    probe = subprocess.run(
        ["test", "-x", str(path)], cwd="/", timeout=10, capture_output=True, **_as_user(os_user)
    )
    return probe.returncode == 0


def _runtime_dir(lab_dir: Path, name: str, os_user: str | None) -> Path:
    """Where server `name` keeps its data: in the lab dir when its OS user can get there."""
    if os_user is None or _can_reach(os_user, lab_dir):
        base = lab_dir / "postgres"
    else:
        base = lab_runtime_outside(lab_dir)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    return base / name


def lab_runtime_outside(lab_dir: Path) -> Path:
    """Where a lab's servers keep what their OS user cannot keep in the lab dir."""
    return shared_runtime_root() / _short_hash(Path(lab_dir).resolve())


def forget_runtime_outside(lab_dir: Path) -> None:
    """Remove what a stopped lab kept outside its dir: nobody would find it there, and
    every lab that ran as root would otherwise leave its databases behind in /tmp."""
    shutil.rmtree(lab_runtime_outside(lab_dir), ignore_errors=True)


def _socket_dir_for(runtime: Path, lab_dir: Path, name: str) -> Path:
    preferred = runtime / "run"
    if len(str(preferred)) <= MAX_SOCKET_DIR_CHARS:
        return preferred
    return lab_runtime_outside(lab_dir) / f"{name}-run"


def _short_hash(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


def _reachable_bindir(bindir: Path, os_user: str | None) -> Path:
    """`bindir`, or a cached copy of its installation that `os_user` can execute."""
    if os_user is None or _can_reach(os_user, bindir / "postgres"):
        return bindir
    cached = _cached_install_copy(bindir)
    if not _can_reach(os_user, cached / "postgres"):
        raise LabError(f"OS user {os_user} cannot execute {bindir}/postgres nor its copy")
    return cached


def _cached_install_copy(bindir: Path) -> Path:
    """Copy a relocatable installation (the wheel's) once into the shared root; return its bindir.

    The copy keeps the layout the wheel's RPATHs expect: `<root>/pgserver/pginstall/bin`
    finds its libpq in `$ORIGIN/../../../pgserver.libs`.
    """
    version = postgres_version(bindir)
    is_wheel = bindir.resolve() == wheel_bindir().resolve()
    suffix = "" if is_wheel else f"-{_short_hash(bindir.resolve())}"
    cache = shared_runtime_root() / f"pginstall-{version}{suffix}"
    cached_bindir = cache / "pgserver" / "pginstall" / "bin"
    if (cache / ".complete").exists():
        return cached_bindir
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=cache.parent))
    shutil.copytree(bindir.parent, staging / "pgserver" / "pginstall", symlinks=True)
    wheel_libs = bindir.parent.parent.parent / "pgserver.libs"
    if wheel_libs.is_dir():
        shutil.copytree(wheel_libs, staging / "pgserver.libs", symlinks=True)
    (staging / ".complete").touch()
    staging.chmod(0o755)
    shutil.rmtree(cache, ignore_errors=True)  # only ever an incomplete copy at this point
    try:
        staging.rename(cache)
    except OSError:  # a concurrent process completed the same copy first
        shutil.rmtree(staging, ignore_errors=True)
    return cached_bindir


def _make_owned_dir(path: Path, os_user: str | None, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    _give_to(path, os_user)


def _give_to(path: Path, os_user: str | None) -> None:
    if os_user is not None:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _runs_in(pid: int, datadir: Path) -> bool:
    """Whether `pid` is the postmaster of `datadir` (it chdirs there), not a recycled PID."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(datadir)
    except OSError:
        return True  # cannot look closer (not Linux, or not our process): trust the PID file


# --- SCRAM-SHA-256 verifiers --------------------------------------------------

SCRAM_ITERATIONS = 4096
_SASLPREP_PROHIBITED = (
    stringprep.in_table_a1,
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def scram_sha256_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for `password`:
    SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5802/7677), random salt."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _saslprep(password: str) -> bytes:
    """SASLprep (RFC 4013) the way PostgreSQL and libpq apply it: ASCII passes untouched,
    and a password SASLprep rejects is used as its raw UTF-8 bytes."""
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in password
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared or any(check(char) for char in prepared for check in _SASLPREP_PROHIBITED):
        return raw
    if any(stringprep.in_table_d1(char) for char in prepared) and (
        any(stringprep.in_table_d2(char) for char in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        return raw
    return prepared.encode("utf-8")
