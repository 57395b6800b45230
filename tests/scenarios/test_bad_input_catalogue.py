"""Bad input, catalogued: every wrong input ends in one line naming the field and the fix.

Each case feeds one invalid input to a real surface: the `aurora-bg` console
script in a subprocess (run, approve, deploy, terraform-reconcile, lab up), a
parameters file, a validation checks file, a deployment environment file, a
Terraform directory, or a flow run created through the Prefect API of a real
server (the deployments registered by `aurora-bg deploy`, the run executed as a
worker executes it). The case passes when the input is refused with exactly one
line (on stderr, or as the failed run's message), no traceback anywhere, and,
for the inputs that reach AWS, no mutating call in the lab's call log.

One lab serves the whole module: no case may change it, and the last test
proves that none did. Each case adds its row to docs/bad-inputs.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.harness import RunningLab
from tests.support.doc_tables import DocTable
from tests.support.labtools import checked_lab

REPO = Path(__file__).resolve().parents[2]
AURORA_BG = str(Path(sys.executable).parent / "aurora-bg")
FLOW = "aurora-blue-green-upgrade"
CLI_TIMEOUT_S = 300
RUN_TIMEOUT_S = 300
UNKNOWN_RUN_ID = "00000000-0000-4000-8000-000000000000"
GROUPS = {
    "target_cluster_parameter_group": "test-aurora-postgresql16-cluster",
    "target_instance_parameter_group": "test-aurora-postgresql16-instance",
}


# --- what a case is -----------------------------------------------------------------


@dataclass
class Context:
    """What the cases build their inputs in: the lab, a scratch dir, the Prefect API."""

    lab: RunningLab
    work: Path
    api_url: str
    case: str = ""  # the running case's name: its files are named after it (stable docs)

    def file(self, name: str, text: str) -> Path:
        path = self.work / name
        path.write_text(text)
        return path

    def params_file(self, name: str, **changes: Any) -> Path:
        """The lab's parameters (no Terraform phase) with `changes`, as a YAML file."""
        return self.file(f"{name}.yaml", yaml.safe_dump({**lab_parameters(), **changes}))


@dataclass
class Outcome:
    """What a surface answered: the lines a person reads, and whether it refused."""

    refused: bool
    lines: list[str]
    everything: str  # all the output, searched for tracebacks


@dataclass
class Case:
    surface: str
    shown: str  # the input, in a few words, for the docs table
    attempt: Callable[[Context], Outcome]
    expect: tuple[str, ...]  # fragments of the line: the field and the fix
    reaches_aws: bool = False
    order: int = field(default=0)


def lab_parameters() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "deployments" / "lab.yaml").read_text())
    data["terraform"] = {"enabled": False}
    return data


def aurora_bg(ctx: Context, *args: str) -> Outcome:
    """The console script in a subprocess, pointed at the lab and the Prefect server."""
    done = subprocess.run(
        [AURORA_BG, *args],
        cwd=REPO,
        env={**os.environ, **ctx.lab.env, "PREFECT_API_URL": ctx.api_url},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    errors = done.stderr.strip().splitlines()
    return Outcome(done.returncode != 0, errors, done.stdout + done.stderr)


def cli(*args: str) -> Callable[[Context], Outcome]:
    """`aurora-bg ARGS`; `{work}` in an argument is the scratch dir."""
    return lambda ctx: aurora_bg(ctx, *(a.format(work=ctx.work) for a in args))


def run_with(**changes: Any) -> Callable[[Context], Outcome]:
    """`aurora-bg run --params-file F`, F = the lab's parameters with `changes`."""

    def attempt(ctx: Context) -> Outcome:
        path = ctx.params_file(ctx.case, **changes)
        return aurora_bg(ctx, "run", "--params-file", str(path))

    return attempt


def run_args(cluster: str = "provisioning-rds", version: str = "16.2", **groups: str):
    """`aurora-bg run` with its parameters as options."""
    chosen = {**GROUPS, **groups}
    return cli(
        "run",
        "--cluster-identifier",
        cluster,
        "--target-engine-version",
        version,
        "--target-cluster-parameter-group",
        chosen["target_cluster_parameter_group"],
        "--target-instance-parameter-group",
        chosen["target_instance_parameter_group"],
    )


def params_text(text: str) -> Callable[[Context], Outcome]:
    def attempt(ctx: Context) -> Outcome:
        path = ctx.file(f"{ctx.case}.yaml", text)
        return aurora_bg(ctx, "run", "--params-file", str(path))

    return attempt


def with_checks(text: str | None) -> Callable[[Context], Outcome]:
    """A run whose validation.checks_file holds `text` (None: the file does not exist)."""

    def attempt(ctx: Context) -> Outcome:
        name = f"{ctx.case}-checks.yaml"
        checks = ctx.file(name, text) if text is not None else ctx.work / name
        validation = {**lab_parameters()["validation"], "checks_file": str(checks)}
        return run_with(validation=validation)(ctx)

    return attempt


def checks(sql: str, extra: str = "") -> str:
    return f"checks:\n  - name: mine\n    sql: {sql}\n    expect: no_rows\n{extra}"


def environment(text: str | None = None, **changes: Any) -> Callable[[Context], Outcome]:
    """`aurora-bg deploy --environment F --check` with the lab's parameters and `changes`."""

    def attempt(ctx: Context) -> Outcome:
        body = text if text is not None else yaml.safe_dump({**lab_parameters(), **changes})
        path = ctx.file(f"{ctx.case}.yaml", body)
        return aurora_bg(ctx, "deploy", "--environment", str(path), "--check")

    return attempt


def schedule(**fields: str) -> dict[str, Any]:
    return {"cron": "0 2 * * 0", "timezone": "Asia/Tokyo", **fields}


def terraform(prepare: Callable[[Context, Path], None], cluster: str = "provisioning-rds"):
    """`aurora-bg terraform-reconcile` on a directory `prepare` builds from the lab's."""

    def attempt(ctx: Context) -> Outcome:
        directory = ctx.work / ctx.case
        prepare(ctx, directory)
        return aurora_bg(
            ctx,
            "terraform-reconcile",
            "--terraform-dir",
            str(directory),
            "--cluster-identifier",
            cluster,
            "--terraform-bin",
            str(ctx.lab.dir / "bin" / "terraform"),
        )

    return attempt


def lab_terraform(ctx: Context) -> Path:
    return Path(ctx.lab.info.get("terraform_dir") or ctx.lab.dir / "terraform")


def nothing_there(ctx: Context, directory: Path) -> None:
    pass


def empty_dir(ctx: Context, directory: Path) -> None:
    directory.mkdir()


def config_only(ctx: Context, directory: Path) -> None:
    directory.mkdir()
    (directory / "main.tf").write_text((lab_terraform(ctx) / "main.tf").read_text())


def state_of(text_of: Callable[[str], str]) -> Callable[[Context, Path], None]:
    def prepare(ctx: Context, directory: Path) -> None:
        config_only(ctx, directory)
        state = (lab_terraform(ctx) / "terraform.tfstate").read_text()
        (directory / "terraform.tfstate").write_text(text_of(state))

    return prepare


def whole_state(ctx: Context, directory: Path) -> None:
    state_of(lambda state: state)(ctx, directory)


def missing_binary(ctx: Context, directory: Path) -> Outcome:
    whole_state(ctx, directory)
    return aurora_bg(
        ctx,
        "terraform-reconcile",
        "--terraform-dir",
        str(directory),
        "--cluster-identifier",
        "provisioning-rds",
        "--terraform-bin",
        str(ctx.work / "no-such-dir" / "terraform"),
    )


# --- flow runs through the Prefect API ------------------------------------------------


def through_api(**changes: Any) -> Callable[[Context], Outcome]:
    """A run of the registered `upgrade` deployment with the lab's parameters and
    `changes` (a value None drops the field), created through the API as the UI's Run
    button does, then executed as a worker executes it (`python -m prefect.engine`).
    A refusal by the server (its parameter schema) is the line; else the run's message."""

    def attempt(ctx: Context) -> Outcome:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import PrefectHTTPStatusError

        parameters = {k: v for k, v in {**lab_parameters(), **changes}.items() if v is not None}
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(f"{FLOW}/upgrade")
            try:
                run = client.create_flow_run_from_deployment(
                    deployment.id, parameters={"parameters": parameters}
                )
            except PrefectHTTPStatusError as error:
                detail = error.response.json().get("detail", "")
                return Outcome(error.response.status_code == 409, [detail], str(detail))
        engine = subprocess.run(
            [sys.executable, "-m", "prefect.engine"],
            cwd=REPO,
            env={
                **os.environ,
                **ctx.lab.env,
                "PREFECT_API_URL": ctx.api_url,
                "PREFECT__FLOW_RUN_ID": str(run.id),
                "AURORA_BG_CHECKOUT": str(REPO),
            },
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        assert state is not None and state.is_final(), f"{state}\n{engine.stderr[-2000:]}"
        message = state.message or ""
        return Outcome(state.is_failed(), message.splitlines(), message)

    return attempt


# --- the catalogue ----------------------------------------------------------------------

RUN = "aurora-bg run"
PARAMS = "parameters file (run --params-file)"
CHECKS = "validation.checks_file"
ENVIRONMENT = "environment file (deploy --environment F --check)"
API = "flow run through the Prefect API"
TERRAFORM = "aurora-bg terraform-reconcile"
WINDOW = {"start": "02:00", "end": "04:00", "timezone": "Asia/Tokyo"}

CASES: dict[str, Case] = {
    # the command line
    "run-malformed-cluster": Case(
        RUN,
        "--cluster-identifier 1st-cluster",
        run_args(cluster="1st-cluster"),
        ("cluster_identifier: must start with a letter", "'1st-cluster'"),
    ),
    "run-missing-options": Case(
        RUN,
        "--cluster-identifier only",
        cli("run", "--cluster-identifier", "provisioning-rds"),
        ("target_engine_version: Field required (add it)",),
    ),
    "run-version-not-major-minor": Case(
        RUN,
        "--target-engine-version 16",
        run_args(version="16"),
        ("target_engine_version: must look like 16.2",),
    ),
    "run-unknown-option": Case(
        RUN,
        "--cluster provisioning-rds (no such option)",
        cli("run", "--cluster", "provisioning-rds"),
        ("No such option: --cluster", "aurora-bg run --help"),
    ),
    "run-unknown-cluster": Case(
        RUN,
        "--cluster-identifier no-such-cluster",
        run_args(cluster="no-such-cluster"),
        ("no DB cluster named no-such-cluster", "check cluster_identifier"),
        reaches_aws=True,
    ),
    "run-same-version": Case(
        RUN,
        "--target-engine-version 15.4 (blue's own version)",
        run_args(version="15.4"),
        ("current 15.4, target 15.4", "choose a target_engine_version newer"),
        reaches_aws=True,
    ),
    "run-older-version": Case(
        RUN,
        "--target-engine-version 15.2 (older than blue)",
        run_args(version="15.2"),
        ("current 15.4, target 15.2", "choose a target_engine_version newer"),
        reaches_aws=True,
    ),
    "run-mysql-version": Case(
        RUN,
        "--target-engine-version 8.0 (an Aurora MySQL version)",
        run_args(version="8.0"),
        ("target is a valid upgrade", "choose one of the versions AWS lists"),
        reaches_aws=True,
    ),
    "run-version-aws-does-not-offer": Case(
        RUN,
        "--target-engine-version 16.9 (no such upgrade)",
        run_args(version="16.9"),
        ("AWS lists", "choose one of the versions AWS lists"),
        reaches_aws=True,
    ),
    "run-cluster-group-wrong-family": Case(
        RUN,
        "--target-cluster-parameter-group test-aurora-postgresql15-cluster",
        run_args(target_cluster_parameter_group="test-aurora-postgresql15-cluster"),
        (
            "family aurora-postgresql15",
            "use a cluster parameter group of family aurora-postgresql16",
        ),
        reaches_aws=True,
    ),
    "run-instance-group-missing": Case(
        RUN,
        "--target-instance-parameter-group no-such-group",
        run_args(target_instance_parameter_group="no-such-group"),
        ("no-such-group: does not exist", "create no-such-group with family aurora-postgresql16"),
        reaches_aws=True,
    ),
    "approve-malformed-id": Case(
        "aurora-bg approve",
        "approve 1234",
        cli("approve", "1234"),
        ("'1234' is not a flow run id (a UUID)",),
    ),
    "approve-unknown-run": Case(
        "aurora-bg approve",
        f"approve {UNKNOWN_RUN_ID} (no such run)",
        cli("approve", UNKNOWN_RUN_ID),
        ("no flow run", "copy the id from the paused run's page"),
    ),
    "approve-without-id": Case(
        "aurora-bg approve",
        "approve (no run id)",
        cli("approve"),
        ("Missing argument 'run_id'", "aurora-bg approve --help"),
    ),
    "deploy-without-environment": Case(
        "aurora-bg deploy",
        "deploy --check (no --environment)",
        cli("deploy", "--check"),
        ("Missing option '--environment'", "aurora-bg deploy --help"),
    ),
    "terraform-reconcile-without-cluster": Case(
        TERRAFORM,
        "--terraform-dir only",
        cli("terraform-reconcile", "--terraform-dir", "{work}"),
        ("Missing option '--cluster-identifier'", "aurora-bg terraform-reconcile --help"),
    ),
    "lab-up-instances-not-a-number": Case(
        "aurora-bg lab up",
        "--instances two",
        cli("lab", "up", "--dir", "{work}/never-started", "--instances", "two"),
        ("Invalid value for '--instances'", "aurora-bg lab up --help"),
    ),
    "lab-up-no-instances": Case(
        "aurora-bg lab up",
        "--instances 0",
        cli("lab", "up", "--dir", "{work}/never-started", "--instances", "0"),
        ("--instances must be at least 1",),
    ),
    "lab-up-negative-delay": Case(
        "aurora-bg lab up",
        "--provisioning-delay -5",
        cli("lab", "up", "--dir", "{work}/never-started", "--provisioning-delay", "-5"),
        ("--provisioning-delay must be 0 or more seconds",),
    ),
    # parameters files
    "params-not-yaml": Case(
        PARAMS,
        "cluster_identifier: [unclosed",
        params_text("cluster_identifier: [unclosed\n"),
        ("is not valid YAML at line 2",),
    ),
    "params-not-a-mapping": Case(
        PARAMS,
        "a YAML list",
        params_text("- provisioning-rds\n- '16.2'\n"),
        ("must hold a mapping",),
    ),
    "params-missing-file": Case(
        PARAMS,
        "a file that does not exist",
        cli("run", "--params-file", "{work}/no-such-params.yaml"),
        ("no-such-params.yaml does not exist",),
    ),
    "params-wrong-type": Case(
        PARAMS,
        "approval_timeout_seconds: a day",
        run_with(approval_timeout_seconds="a day"),
        ("approval_timeout_seconds: Input should be a valid integer", "(got 'a day')"),
    ),
    "params-misspelt-field": Case(
        PARAMS,
        "target_engine_verison: '16.2' (misspelt)",
        run_with(target_engine_verison="16.2"),
        ("target_engine_verison: Extra inputs are not permitted", "check its spelling"),
    ),
    "params-switchover-timeout-too-short": Case(
        PARAMS,
        "switchover_timeout_seconds: 10",
        run_with(switchover_timeout_seconds=10),
        ("switchover_timeout_seconds: Input should be greater than or equal to 30", "(got 10)"),
    ),
    "params-switchover-timeout-too-long": Case(
        PARAMS,
        "switchover_timeout_seconds: 7200",
        run_with(switchover_timeout_seconds=7200),
        ("switchover_timeout_seconds: Input should be less than or equal to 3600",),
    ),
    "params-approval-timeout-too-short": Case(
        PARAMS,
        "approval_timeout_seconds: 5",
        run_with(approval_timeout_seconds=5),
        ("approval_timeout_seconds: Input should be greater than or equal to 60",),
    ),
    "params-unknown-time-zone": Case(
        PARAMS,
        "switchover_window.timezone: Mars/Olympus",
        run_with(switchover_window={**WINDOW, "timezone": "Mars/Olympus"}),
        ("switchover_window.timezone: unknown time zone 'Mars/Olympus'", "use an IANA name"),
    ),
    "params-window-time-out-of-range": Case(
        PARAMS,
        "switchover_window.start: '25:00'",
        run_with(switchover_window={**WINDOW, "start": "25:00"}),
        ("switchover_window.start: must be a local time HH:MM",),
    ),
    "params-window-without-length": Case(
        PARAMS,
        "switchover_window 02:00–02:00",
        run_with(switchover_window={**WINDOW, "end": "02:00"}),
        ("switchover_window: start and end must differ",),
    ),
    "params-outside-window-choice": Case(
        PARAMS,
        "outside_window: later",
        run_with(outside_window="later"),
        ("outside_window: Input should be 'wait' or 'way-out'",),
    ),
    "params-terraform-without-dir": Case(
        PARAMS,
        "terraform.enabled: true, no working_dir",
        run_with(terraform={"enabled": True}),
        ("terraform.working_dir is required when terraform.enabled is true",),
    ),
    "params-statement-timeout-too-short": Case(
        PARAMS,
        "validation.statement_timeout_ms: 10",
        run_with(validation={"database": "app", "statement_timeout_ms": 10}),
        ("validation.statement_timeout_ms: Input should be greater than or equal to 100",),
    ),
    # validation checks files: refused at preflight, after reading blue, before any change
    "checks-writing-query": Case(
        CHECKS,
        "sql: DELETE FROM orders RETURNING 1",
        with_checks(checks("DELETE FROM orders RETURNING 1")),
        ("check 'mine' writes rows: a check may only read", "correct the checks file"),
        reaches_aws=True,
    ),
    "checks-locking-query": Case(
        CHECKS,
        "sql: SELECT * FROM orders FOR UPDATE",
        with_checks(checks("SELECT * FROM orders FOR UPDATE")),
        ("check 'mine' locks rows", "correct the checks file"),
        reaches_aws=True,
    ),
    "checks-query-does-not-plan": Case(
        CHECKS,
        "sql: SELECT nope FROM nowhere",
        with_checks(checks("SELECT nope FROM nowhere")),
        ('relation "nowhere" does not exist', "correct the checks file"),
        reaches_aws=True,
    ),
    "checks-not-yaml": Case(
        CHECKS,
        "checks: [unclosed",
        with_checks("checks: [unclosed\n"),
        ("does not parse at line 2", "correct the checks file"),
        reaches_aws=True,
    ),
    "checks-unknown-key": Case(
        CHECKS,
        "a check with colour: red",
        with_checks(checks("SELECT 1", "    colour: red\n")),
        ("colour: Extra inputs are not permitted", "correct the checks file"),
        reaches_aws=True,
    ),
    "checks-missing-file": Case(
        CHECKS,
        "a checks file that does not exist",
        with_checks(None),
        ("cannot be read: No such file or directory", "correct the checks file"),
        reaches_aws=True,
    ),
    # deployment environment files
    "environment-bad-cron": Case(
        ENVIRONMENT,
        "schedule.cron: 0 2 * * sundays",
        environment(schedule=schedule(cron="0 2 * * sundays")),
        ("invalid schedule: cron: '0 2 * * sundays' does not parse",),
    ),
    "environment-unknown-time-zone": Case(
        ENVIRONMENT,
        "schedule.timezone: Asia/Tokio",
        environment(schedule=schedule(timezone="Asia/Tokio")),
        ("invalid schedule: timezone: unknown time zone 'Asia/Tokio'", "use an IANA name"),
    ),
    "environment-schedule-without-time-zone": Case(
        ENVIRONMENT,
        "schedule: cron only",
        environment(schedule={"cron": "0 2 * * 0"}),
        ("invalid schedule: timezone: Field required (add it)",),
    ),
    "environment-not-yaml": Case(
        ENVIRONMENT,
        "schedule: {cron: [",
        environment(text="schedule: {cron: [\n"),
        ("is not valid YAML at line",),
    ),
    "environment-wrong-type": Case(
        ENVIRONMENT,
        "switchover_timeout_seconds: five minutes",
        environment(switchover_timeout_seconds="five minutes"),
        ("switchover_timeout_seconds: Input should be a valid integer", "(got 'five minutes')"),
    ),
    # flow runs created through the Prefect API
    "api-timeout-out-of-range": Case(
        API,
        "switchover_timeout_seconds: 10",
        through_api(switchover_timeout_seconds=10),
        ("parameters.switchover_timeout_seconds", "10 is less than the minimum of 30"),
    ),
    "api-missing-field": Case(
        API,
        "no target_engine_version",
        through_api(target_engine_version=None),
        ("'target_engine_version' is a required property",),
    ),
    "api-unknown-time-zone": Case(
        API,
        "switchover_window.timezone: Mars/Olympus",
        through_api(switchover_window={**WINDOW, "timezone": "Mars/Olympus"}),
        ("BadInput: invalid parameters: switchover_window.timezone: unknown time zone",),
    ),
    "api-malformed-cluster": Case(
        API,
        "cluster_identifier: 1st-cluster",
        through_api(cluster_identifier="1st-cluster"),
        ("BadInput: invalid parameters: cluster_identifier: must start with a letter",),
    ),
    "api-unknown-cluster": Case(
        API,
        "cluster_identifier: no-such-cluster",
        through_api(cluster_identifier="no-such-cluster"),
        ("no DB cluster named no-such-cluster", "check cluster_identifier"),
        reaches_aws=True,
    ),
    # Terraform directories
    "terraform-no-directory": Case(
        TERRAFORM,
        "a directory that does not exist",
        terraform(nothing_there),
        ("is not a directory: give the directory that holds the configuration",),
    ),
    "terraform-no-configuration": Case(
        TERRAFORM,
        "an empty directory",
        terraform(empty_dir),
        ("holds no Terraform configuration (*.tf): give the directory",),
    ),
    "terraform-no-state": Case(
        TERRAFORM,
        "main.tf without a state",
        terraform(config_only),
        ("no Terraform state in", "give the directory whose terraform state pull shows"),
    ),
    "terraform-state-without-the-cluster": Case(
        TERRAFORM,
        "a state that manages another cluster",
        terraform(state_of(lambda state: state.replace("provisioning-rds", "other-cluster"))),
        ("cluster provisioning-rds is not in the Terraform state", "check the cluster identifier"),
        reaches_aws=True,
    ),
    "terraform-state-not-json": Case(
        TERRAFORM,
        "terraform.tfstate holding {not json",
        terraform(state_of(lambda state: "{not json\n")),
        ("is not JSON (line 1)", "restore it from terraform.tfstate.backup"),
    ),
    "terraform-unknown-cluster": Case(
        TERRAFORM,
        "--cluster-identifier no-such-cluster",
        terraform(whole_state, cluster="no-such-cluster"),
        ("cluster no-such-cluster does not exist in AWS", "check the cluster identifier"),
        reaches_aws=True,
    ),
    "terraform-missing-binary": Case(
        TERRAFORM,
        "--terraform-bin that does not exist",
        lambda ctx: missing_binary(ctx, ctx.work / ctx.case),
        ("cannot run terraform at", "give the path of the terraform executable"),
    ),
}
for _order, _case in enumerate(CASES.values()):
    _case.order = _order

TABLE = DocTable(
    "bad-inputs",
    "Bad inputs rejected cleanly",
    """
Every wrong input below was fed to the real surface (the `aurora-bg` console
script, a file it reads, or a flow run created through a Prefect server's API)
by `tests/scenarios/test_bad_input_catalogue.py`, against one running lab. Each passes when
the input is refused with exactly one line naming the field and the fix (on
stderr, or as the failed run's message), with no traceback anywhere in the
output, and, for inputs that reach AWS, with no mutating call in the lab's call
log. `<dir>` stands for the directory the case wrote its files in, `<api>` for
the Prefect API.
""",
    ("surface", "input", "the one line"),
    expected=len(CASES),
    figure="bad inputs rejected cleanly",
)


# --- fixtures ---------------------------------------------------------------------------


def world(lab: RunningLab) -> dict[str, Any]:
    """What a case could have changed in the lab, described."""
    rds = lab.rds
    return {
        "clusters": sorted(
            (
                c["DBClusterIdentifier"],
                c["EngineVersion"],
                c["Status"],
                str(c.get("MasterUserSecret")),
            )
            for c in rds.describe_db_clusters()["DBClusters"]
        ),
        "instances": sorted(lab.instance_ids()),
        "deployments": rds.describe_blue_green_deployments()["BlueGreenDeployments"],
        "secrets": sorted(s["ARN"] for s in lab.sm.list_secrets()["SecretList"]),
    }


@dataclass
class Module:
    ctx: Context
    started: float
    before: dict[str, Any]


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[Module]:
    """One lab, the session's Prefect API with the project's deployments registered by
    `aurora-bg deploy`, and a scratch dir, for every case."""
    with checked_lab(tmp_path_factory.mktemp("lab")) as lab:
        work = tmp_path_factory.mktemp("inputs")
        ctx = Context(lab, work, prefect_api)
        registered = aurora_bg(ctx, "deploy", "--environment", str(ctx.params_file("environment")))
        assert not registered.refused, registered.everything
        yield Module(ctx, time.time(), world(lab))


def shown(line: str, ctx: Context) -> str:
    """The line with what differs between runs (dirs, ports) replaced by names."""
    for value, name in (
        (str(ctx.work), "<dir>"),
        (ctx.api_url, "<api>"),
        (str(ctx.lab.dir), "<lab>"),
    ):
        line = line.replace(value, name)
    return line


# --- the tests -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_refused_in_one_line_naming_the_field_and_the_fix(
    module: Module, name: str
) -> None:
    case, ctx = CASES[name], module.ctx
    ctx.case = name
    started = time.time()
    outcome = case.attempt(ctx)
    line = outcome.lines[0] if outcome.lines else ""
    problems = []
    if not outcome.refused:
        problems.append("not refused")
    if len(outcome.lines) != 1:
        problems.append(f"{len(outcome.lines)} lines")
    if "Traceback" in outcome.everything:
        problems.append("a traceback in the output")
    problems += [f"{fragment!r} missing" for fragment in case.expect if fragment not in line]
    if case.reaches_aws:
        if not ctx.lab.calls(since=started):
            problems.append("never asked AWS")
        problems += [f"mutating call {c['action']}" for c in ctx.lab.mutating_calls(since=started)]
    TABLE.add(case.order, not problems, case.surface, case.shown, shown(line, ctx))
    assert not problems, f"{problems}: {outcome.lines or outcome.everything[-2000:]}"


def test_no_case_changed_the_lab(module: Module) -> None:
    lab = module.ctx.lab
    assert lab.mutating_calls(since=module.started) == []
    assert world(lab) == module.before
