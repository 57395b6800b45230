"""Who the lab's PostgreSQL servers run as, where their files live, how their programs run.

PostgreSQL refuses to run as root. When we are root, the servers run as an
unprivileged OS user (`postgres` when the machine has one, else a system user
`aurora-bg-lab` created on first use). That user may be unable to reach the lab
dir (under a private home, say) or the binaries (a wheel inside a private
virtualenv): then the server's data and socket, and a copy of the binaries, move
under /tmp/aurora-bg-lab, which every such user can traverse. A lab's share of
that place is `/tmp/aurora-bg-lab/<hash of the lab dir>`, which `lab down`
removes. When we are not root, everything stays where it is and runs as us.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from aurora_bg.errors import LabError

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


def postgres_version(bindir: Path) -> str:
    """The version of `bindir/postgres`, e.g. "16.2"."""
    out = run_program([Path(bindir) / "postgres", "--version"]).stdout
    found = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", out)
    if found is None:
        raise LabError(f"cannot read the PostgreSQL version of {bindir}")
    return found.group(1)


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


def runtime_dir(lab_dir: Path, name: str, os_user: str | None) -> Path:
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


def socket_dir_for(runtime: Path, lab_dir: Path, name: str) -> Path:
    """The unix socket directory of server `name`: beside its data unless that path is too
    long for a socket address, then in the lab's share of the shared root."""
    preferred = runtime / "run"
    if len(str(preferred)) <= MAX_SOCKET_DIR_CHARS:
        return preferred
    return lab_runtime_outside(lab_dir) / f"{name}-run"


def reachable_bindir(bindir: Path, os_user: str | None) -> Path:
    """`bindir`, or a cached copy of its installation that `os_user` can execute."""
    if os_user is None or _can_reach(os_user, bindir / "postgres"):
        return bindir
    cached = _cached_install_copy(bindir)
    if not _can_reach(os_user, cached / "postgres"):
        raise LabError(f"OS user {os_user} cannot execute {bindir}/postgres nor its copy")
    return cached


def make_owned_dir(path: Path, os_user: str | None, mode: int = 0o700) -> None:
    """Create `path` (and its parents) with `mode`, owned by `os_user` when given."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    give_to(path, os_user)


def give_to(path: Path, os_user: str | None) -> None:
    """Make `os_user` (when given) the owner of `path`."""
    if os_user is not None:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


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


def _short_hash(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


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
