"""The lab's PostgreSQL servers and blue→green replication of every database, against
real servers."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from lab.os_user import run_program, shared_runtime_root, wheel_bindir
from lab.postgres import (
    MASTER_ROLE,
    SYSTEM_BINDIR_15,
    PgServer,
    create_server,
    default_bindir,
    destroy_server,
    free_port,
    seed_demo_schema,
)
from lab.replication import (
    PUBLICATION,
    block_writes,
    cancel_switchover,
    finish_switchover,
    initial_sync_done,
    is_caught_up,
    open_write_transactions,
    replicated_databases,
    replication_lag_bytes,
    reset_green,
    start_replication,
    subscription_name,
    unblock_writes,
)
from lab.scram import set_role_password

WAIT_S = 15.0
AS_ROOT = os.geteuid() == 0
DATABASES = ["app", "app_2", "postgres"]  # what a deployment of the pair replicates


@dataclass
class PgPair:
    blue: PgServer
    green: PgServer
    password: str  # the `postgres` role's, set on blue


@pytest.fixture(scope="module")
def pg_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgPair]:
    lab_dir = tmp_path_factory.mktemp("pg-lab")
    blue = create_server("blue", default_bindir("blue"), lab_dir)
    green = create_server("green", default_bindir("green"), lab_dir)
    pids: list[int] = []
    try:
        pids = [blue.start(), green.start()]
        seed_demo_schema(blue)
        seed_demo_schema(blue, "app_2")
        password = secrets.token_urlsafe(18)
        set_role_password(blue, MASTER_ROLE, password)
        yield PgPair(blue, green, password)
    finally:
        for server in (blue, green):
            destroy_server(server)
        assert not [pid for pid in pids if process_alive(pid)], "a postmaster outlived the tests"


@pytest.fixture
def replicating(pg_pair: PgPair) -> Iterator[PgPair]:
    """Green freshly following blue, whatever an earlier test left behind."""
    unblock_writes(pg_pair.blue)
    reset_green(pg_pair.blue, pg_pair.green)
    start_replication(pg_pair.blue, pg_pair.green)
    assert _wait_until(lambda: initial_sync_done(pg_pair.green))
    yield pg_pair
    unblock_writes(pg_pair.blue)


# --- servers -------------------------------------------------------------------


def test_blue_runs_postgres_15_when_the_machine_has_it_and_green_runs_16(pg_pair: PgPair) -> None:
    expected_blue = 15 if (SYSTEM_BINDIR_15 / "postgres").exists() else 16
    assert pg_pair.blue.major == expected_blue
    assert pg_pair.green.major == 16
    for server in (pg_pair.blue, pg_pair.green):
        with psycopg.connect(server.admin_conninfo()) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) // 10000 == server.major


def test_both_servers_listen_on_127_0_0_1_and_nowhere_else(pg_pair: PgPair) -> None:
    for server in (pg_pair.blue, pg_pair.green):
        assert _tcp_listen_addresses(server.port) == {"127.0.0.1"}
        with psycopg.connect(server.admin_conninfo()) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"


def test_a_password_set_as_a_verifier_lets_postgres_log_in_over_tcp(pg_pair: PgPair) -> None:
    with _login(pg_pair.blue, pg_pair.password, "app") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == MASTER_ROLE
        method = conn.execute(
            "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = %s", [MASTER_ROLE]
        ).fetchone()[0]
    assert method == "SCRAM-SHA-256$"


def test_a_non_ascii_password_works_like_libpq_prepares_it(pg_pair: PgPair) -> None:
    password = "Ünïcødé-ﬁ-" + secrets.token_hex(4)  # NFKC maps the ligature: SASLprep matters
    set_role_password(pg_pair.blue, "lab_probe", password)
    with _login(pg_pair.blue, password, user="lab_probe") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "lab_probe"


def test_a_wrong_password_is_refused(pg_pair: PgPair) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _login(pg_pair.blue, pg_pair.password + "x")


def test_lab_admin_cannot_log_in_over_tcp(pg_pair: PgPair) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**pg_pair.blue.tcp_conninfo_params(), user="lab_admin", connect_timeout=5)


def test_the_plaintext_password_is_in_no_file_under_the_data_dirs(pg_pair: PgPair) -> None:
    blue, green = pg_pair.blue, pg_pair.green
    start_replication(blue, green)  # green copies blue's roles, passwords included
    _login(blue, pg_pair.password).close()
    with pytest.raises(psycopg.OperationalError):
        _login(blue, pg_pair.password + "-wrong")
    for server in (blue, green):
        with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    secret = pg_pair.password.encode()
    leaks = [
        path
        for server in (blue, green)
        for root in (server.datadir, server.socket_dir)
        for path in root.rglob("*")
        if path.is_file() and secret in path.read_bytes()
    ]
    assert leaks == []


def test_stop_leaves_no_postmaster_and_can_be_called_again(tmp_path: Path) -> None:
    server = create_server("blue", wheel_bindir(), tmp_path / "lab")
    server.stop()  # never started: nothing to do
    pid = server.start()
    assert server.is_running() and process_alive(pid)
    server.stop()
    assert server.pid() is None
    assert not process_alive(pid)
    server.stop()
    destroy_server(server)


def test_a_server_rebuilt_from_its_dict_controls_the_same_postmaster(tmp_path: Path) -> None:
    server = create_server("green", wheel_bindir(), tmp_path / "lab", port=free_port())
    try:
        pid = server.start()
        rebuilt = PgServer.from_dict(server.to_dict())
        assert rebuilt == server
        assert rebuilt.pid() == pid
        rebuilt.stop()
        assert server.pid() is None
    finally:
        destroy_server(server)


def test_create_server_on_a_used_name_stops_the_old_server_and_starts_empty(tmp_path: Path) -> None:
    first = create_server("blue", wheel_bindir(), tmp_path / "lab")
    old_pid = first.start()
    seed_demo_schema(first)
    second = create_server("blue", wheel_bindir(), tmp_path / "lab")
    try:
        assert not process_alive(old_pid)
        second.start()
        with psycopg.connect(second.admin_conninfo()) as conn:
            databases = conn.execute("SELECT datname FROM pg_database").fetchall()
        assert ("app",) not in databases
    finally:
        destroy_server(second)


def test_a_lab_dir_its_os_user_can_reach_holds_the_data_itself() -> None:
    lab_dir = Path(tempfile.mkdtemp(prefix="aurora-bg-reachable-", dir="/tmp"))
    lab_dir.chmod(0o755)
    server = create_server("blue", wheel_bindir(), lab_dir)
    try:
        assert server.datadir.is_relative_to(lab_dir)
        assert server.socket_dir.is_relative_to(lab_dir)
        assert (server.os_user is not None) == AS_ROOT
        server.start()
        assert server.is_running()
    finally:
        destroy_server(server)
        shutil.rmtree(lab_dir)


def test_a_lab_dir_its_os_user_cannot_traverse_moves_the_data_to_tmp(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    server = create_server("green", wheel_bindir(), private / "lab")
    try:
        if AS_ROOT:  # the servers' OS user cannot enter `private`: their files move
            assert server.datadir.is_relative_to(shared_runtime_root())
            assert server.socket_dir.is_relative_to(shared_runtime_root())
        else:  # we are that user and can enter it: nothing moves
            assert server.datadir.is_relative_to(private / "lab")
        server.start()
        assert server.is_running()
    finally:
        destroy_server(server)


def test_binaries_the_os_user_cannot_execute_run_from_a_cached_copy(tmp_path: Path) -> None:
    wheel_package = wheel_bindir().parent.parent
    private = tmp_path / "venv"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    shutil.copytree(wheel_package / "pginstall", private / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(wheel_package.parent / "pgserver.libs", private / "pgserver.libs")
    unreachable = private / "pgserver" / "pginstall" / "bin"
    server = create_server("blue", unreachable, tmp_path / "lab")
    try:
        if AS_ROOT:
            assert server.bindir.is_relative_to(shared_runtime_root())
            assert server.bindir.parent.parent.parent.name.startswith("pginstall-16.2")
        else:
            assert server.bindir == unreachable
        server.start()
        assert server.major == 16
        select = [server.bindir / "psql", "-XAt", "-c", "SELECT 1", "-d", server.admin_conninfo()]
        assert run_program(select).stdout.strip() == "1"  # the copy found its own libpq
    finally:
        destroy_server(server)
        if AS_ROOT:
            shutil.rmtree(server.bindir.parent.parent.parent, ignore_errors=True)


# --- replication ------------------------------------------------------------------


def test_green_has_blues_tables_and_rows_after_start_replication(replicating: PgPair) -> None:
    tables = ["customers", "products", "orders", "audit_log"]
    assert _row_counts(replicating.green, tables) == _row_counts(replicating.blue, tables)
    assert _row_counts(replicating.green, ["orders"])["orders"] == 200


def test_a_row_inserted_on_blue_later_appears_on_green(replicating: PgPair) -> None:
    marker = secrets.token_hex(8)
    with _login(replicating.blue, replicating.password, "app", autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', %s)", [marker])
    assert _wait_until(lambda: _audit_rows(replicating.green, marker) == 1)


def test_a_postgres_session_on_green_is_read_only_and_its_insert_fails(
    replicating: PgPair,
) -> None:
    for dbname in ("app", "postgres"):
        with _login(replicating.green, replicating.password, dbname) as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    with (
        _login(replicating.green, replicating.password, "app") as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'write on green')")


def test_start_replication_again_changes_nothing(replicating: PgPair) -> None:
    start_replication(replicating.blue, replicating.green)
    assert _subscription_names(replicating.green) == {subscription_name(d) for d in DATABASES}
    assert _row_counts(replicating.green, ["orders"]) == _row_counts(replicating.blue, ["orders"])


def test_every_database_is_replicated_with_rds_named_objects_one_subscription_each(
    replicating: PgPair,
) -> None:
    blue, green = replicating.blue, replicating.green
    assert replicated_databases(blue) == DATABASES
    assert _subscription_names(green) == {
        "rds_bg_sub_app",
        "rds_bg_sub_app_2",
        "rds_bg_sub_postgres",
    }
    assert set(_slot_names(blue)) == {"rds_bg_sub_app", "rds_bg_sub_app_2", "rds_bg_sub_postgres"}
    for dbname in DATABASES:
        with psycopg.connect(blue.admin_conninfo(dbname)) as conn:
            assert conn.execute("SELECT pubname FROM pg_publication").fetchall() == [(PUBLICATION,)]
    marker = secrets.token_hex(8)
    with _login(blue, replicating.password, "app_2", autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', %s)", [marker])
    assert _wait_until(lambda: _audit_rows(green, marker, "app_2") == 1)
    assert _audit_rows(green, marker, "app") == 0


def test_a_database_name_slots_cannot_hold_is_folded_and_stays_unique() -> None:
    assert subscription_name("app_2") == "rds_bg_sub_app_2"
    folded = {subscription_name(name) for name in ("App-2", "app-2", "a" * 63)}
    assert len(folded) == 3
    for name in folded:
        assert name.startswith("rds_bg_sub_") and len(name) <= 63
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_an_open_write_on_blue_keeps_green_from_being_caught_up_until_it_commits(
    replicating: PgPair,
) -> None:
    blue, green = replicating.blue, replicating.green
    assert _wait_until(lambda: is_caught_up(blue, green))
    with _login(blue, replicating.password, "app") as writer:
        writer.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'in flight')")
        block_writes(blue)
        assert open_write_transactions(blue) == 1
        assert not is_caught_up(blue, green)
        writer.commit()
    assert open_write_transactions(blue) == 0
    assert _wait_until(lambda: is_caught_up(blue, green))
    assert replication_lag_bytes(blue, green) == 0


def test_block_writes_reaches_sessions_that_were_already_open(replicating: PgPair) -> None:
    with _login(replicating.blue, replicating.password, "app", autocommit=True) as conn:
        block_writes(replicating.blue)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'blocked')")
        cancel_switchover(replicating.blue)
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'unblocked')")


def test_finish_switchover_makes_green_the_writable_primary(replicating: PgPair) -> None:
    blue, green, password = replicating.blue, replicating.green, replicating.password
    block_writes(blue)
    assert _wait_until(lambda: is_caught_up(blue, green))
    bystander = _login(green, password, "app")
    finish_switchover(blue, green)
    finish_switchover(blue, green)  # idempotent
    with pytest.raises(psycopg.OperationalError):
        bystander.execute("SELECT 1")  # AWS drops connections at switchover
    with _login(green, password, "app", autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
        conn.execute("INSERT INTO orders (customer_id, sku, quantity) VALUES (1, 'SKU-001', 1)")
    with (
        _login(blue, password, "app") as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'old blue')")
    assert _subscription_names(green) == set()
    assert _slot_names(blue) == []


def test_reset_green_forgets_the_deployment_and_replication_can_start_again(
    replicating: PgPair,
) -> None:
    blue, green = replicating.blue, replicating.green
    reset_green(blue, green)
    reset_green(blue, green)  # idempotent
    assert _subscription_names(green) == set()
    assert _slot_names(blue) == []
    for dbname in DATABASES:
        with psycopg.connect(blue.admin_conninfo(dbname)) as conn:
            publications = conn.execute("SELECT pubname FROM pg_publication").fetchall()
        assert (PUBLICATION,) not in publications
    with psycopg.connect(green.admin_conninfo()) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'app'").fetchone() is None
        assert conn.execute("SELECT count(*) FROM pg_class WHERE oid >= 16384").fetchone() == (0,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
    with _login(green, replicating.password) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"

    start_replication(blue, green)
    assert _wait_until(lambda: initial_sync_done(green))
    assert _row_counts(green, ["orders"]) == _row_counts(blue, ["orders"])


# --- helpers ----------------------------------------------------------------------


def _login(
    server: PgServer, password: str, dbname: str = "postgres", *, user: str = MASTER_ROLE, **kw
) -> psycopg.Connection:
    """A client session over TCP with a password, the way applications connect."""
    params = server.tcp_conninfo_params()
    return psycopg.connect(
        **params, user=user, password=password, dbname=dbname, connect_timeout=5, **kw
    )


def _wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _row_counts(server: PgServer, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(server.admin_conninfo("app")) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _audit_rows(server: PgServer, action: str, dbname: str = "app") -> int:
    with psycopg.connect(server.admin_conninfo(dbname)) as conn:
        query = "SELECT count(*) FROM audit_log WHERE action = %s"
        return conn.execute(query, [action]).fetchone()[0]


def _subscription_names(green: PgServer) -> set[str]:
    with psycopg.connect(green.admin_conninfo()) as conn:
        return {row[0] for row in conn.execute("SELECT subname FROM pg_subscription")}


def _slot_names(blue: PgServer) -> list[str]:
    with psycopg.connect(blue.admin_conninfo()) as conn:
        return [row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots")]


def _tcp_listen_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on `port`, read from /proc/net/tcp{,6}."""
    found = set()
    for table, decode in (("tcp", _ipv4_from_hex), ("tcp6", lambda _: "ipv6")):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(decode(address))
    return found


def _ipv4_from_hex(address: str) -> str:
    return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_green_starts_with_blue_sequence_values_and_the_switchover_does_not_move_them(
    tmp_path,
) -> None:
    """Aurora's green is a clone (blue's sequence values at creation); replication
    and the switchover leave sequences where they were."""
    blue = create_server("blue", default_bindir("blue"), tmp_path)
    green = create_server("green", default_bindir("green"), tmp_path)
    try:
        blue.start()
        green.start()
        seed_demo_schema(blue, "app")

        def last_value(server: PgServer) -> int:
            with psycopg.connect(server.admin_conninfo("app")) as conn:
                return conn.execute(
                    "SELECT last_value FROM pg_sequences WHERE sequencename = 'orders_order_id_seq'"
                ).fetchone()[0]

        start_replication(blue, green)
        at_creation = last_value(blue)
        assert last_value(green) == at_creation
        with psycopg.connect(blue.admin_conninfo("app"), autocommit=True) as conn:
            conn.execute("INSERT INTO orders (customer_id, sku, quantity) VALUES (1, 'SKU-001', 1)")
        assert _wait_until(lambda: initial_sync_done(green))
        block_writes(blue)
        assert _wait_until(lambda: is_caught_up(blue, green))
        finish_switchover(blue, green)
        assert last_value(blue) == at_creation + 1
        assert last_value(green) == at_creation
    finally:
        destroy_server(blue)
        destroy_server(green)
