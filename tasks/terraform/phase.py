"""Phase 12: bring Terraform back in line with the upgraded cluster (docs/runbook.md, step 7).

`reconcile` runs the steps in the runbook's order: read the state, guard the
CLI version, read what AWS reports now, find the cluster's addresses in the
state, back the state up, `state rm`, rewrite the configuration, write import.tf, then
`init`, `plan` and (unless plan-only) `apply` the saved plan and delete
import.tf. Every stop before the first change raises a BusinessError with one
line; everything after it ends in a TerraformReport that says what was done and
exactly which commands are left (for instance when the provider cannot be
installed). `reconcile_terraform_task` is the Prefect task around it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from python_terraform import IsFlagged, Terraform

from aurora_bg.errors import BadInput, BusinessError, InvalidState, PreconditionFailed
from aurora_bg.results import StepResult
from tasks.terraform.cli import (
    first_line_of_error,
    missing_provider,
    run_terraform,
    terraform_for,
)
from tasks.terraform.hcl import load_config
from tasks.terraform.plan import summarize_plan
from tasks.terraform.report import TerraformReport, TerraformStatus
from tasks.terraform.rewrite import (
    IMPORT_FILE,
    RewriteTarget,
    plan_rewrite,
    read_import_file,
    render_diff,
    write_import_file,
    write_rewrite,
)
from tasks.terraform.state import (
    CLUSTER_TYPE,
    INSTANCE_TYPE,
    ClusterAddresses,
    ClusterFacts,
    backup_state,
    find_cluster_addresses,
    is_state_current,
    pull_state,
    read_cluster_facts,
    remove_addresses,
)
from tasks.terraform.version import check_cli_version, read_cli_version, read_state_version

__all__ = [
    "TerraformReport",
    "TerraformStatus",
    "init_plan_apply",
    "reconcile",
    "reconcile_terraform_task",
]

PLAN_FILE = "tfplan"
# Statuses after which the flow must not carry on as if Terraform were in line.
STOPPING_STATUSES: dict[TerraformStatus, type[BusinessError]] = {
    TerraformStatus.BLOCKED: PreconditionFailed,
    TerraformStatus.PLAN_FAILED: InvalidState,
    TerraformStatus.APPLY_FAILED: InvalidState,
}


# --- the phase -----------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """What the state holds for the cluster and what has to leave it."""

    cluster_address: str
    instance_addresses: dict[str, str]  # address -> instance identifier
    to_remove: list[str]
    imports: list[tuple[str, str]]
    result: StepResult


def decide_removal(
    found: ClusterAddresses | None, facts: ClusterFacts, terraform_dir: Path
) -> Removal:
    """Which addresses leave the state, and what import.tf must bring back.

    Raises BadInput when the cluster is neither in the state nor in an earlier
    import.tf; PreconditionFailed when a state instance is no longer in the cluster.
    """
    cluster_id = facts.cluster_identifier
    if found is None:
        pending = read_import_file(terraform_dir)
        if cluster_id not in {i for a, i in pending if a.startswith(f"{CLUSTER_TYPE}.")}:
            raise BadInput(
                f"cluster {cluster_id} is not in the Terraform state at {terraform_dir}: check "
                "the cluster identifier, or give the directory whose state manages it"
            )
        cluster_address = next(a for a, i in pending if a.startswith(f"{CLUSTER_TYPE}."))
        instances = {a: i for a, i in pending if a.startswith(f"{INSTANCE_TYPE}.")}
        reason = (
            f"nothing to remove: the state no longer holds {cluster_id} "
            f"and {IMPORT_FILE} brings it back"
        )
        result = StepResult("already-done", reason, {"imports": pending})
        return Removal(cluster_address, instances, [], pending, result)
    instances = {}
    for instance in found.instances:
        if instance.identifier not in facts.instance_parameter_groups:
            raise PreconditionFailed(
                f"{instance.address} ({instance.identifier}) is no longer a member of "
                f"{cluster_id}; remove it from the configuration and the state by hand"
            )
        instances[instance.address] = instance.identifier
    if is_state_current(found, facts):
        reason = f"nothing to remove: the state already holds {cluster_id} as AWS reports it now"
        return Removal(found.cluster.address, instances, [], [], StepResult("already-done", reason))
    imports = [(found.cluster.address, cluster_id), *instances.items()]
    reason = (
        f"the state holds the pre-switchover {cluster_id} "
        f"({found.cluster.attributes.get('engine_version')}); AWS now runs {facts.engine_version}"
    )
    result = StepResult("found", reason, {"addresses": found.all})
    return Removal(found.cluster.address, instances, found.all, imports, result)


def reconcile(
    terraform_dir: str | Path,
    cluster_identifier: str,
    rds_client: Any,
    terraform_bin: str = "terraform",
    plan_only: bool = False,
    allow_newer_cli: bool = False,
    artifacts_dir: str | Path | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TerraformReport:
    """Run phase 12 and return its report.

    Reads facts through `rds_client` and drives `terraform_bin` in
    `terraform_dir`. `plan_only` rewrites the configuration and writes import.tf
    but leaves the state untouched and applies nothing. Plan files and, for
    remote backends, the state backup go to `artifacts_dir` (default
    `<terraform_dir>/.aurora-bg`). Raises BadInput or PreconditionFailed (one
    line, nothing changed) when it cannot start; afterwards it always returns a
    report whose `status` is one of applied, planned, nothing-to-do,
    state-rm-pending, provider-unavailable, init-failed, plan-failed, blocked,
    apply-failed.
    """
    directory = Path(terraform_dir).resolve()
    artifacts = Path(artifacts_dir) if artifacts_dir else directory / ".aurora-bg"
    tf = terraform_for(directory, terraform_bin)
    report = TerraformReport(cluster_identifier, str(directory), plan_only)
    state, state_text = pull_state(tf, directory)
    state_version = read_state_version(tf, directory, state)
    report.step(check_cli_version(read_cli_version(tf), state_version, allow_newer_cli))
    facts = read_cluster_facts(rds_client, cluster_identifier)
    removal = decide_removal(find_cluster_addresses(state, cluster_identifier), facts, directory)
    report.step(removal.result)
    target = RewriteTarget(
        removal.cluster_address,
        tuple(removal.instance_addresses),
        facts.engine_version,
        facts.cluster_parameter_group,
        {a: facts.instance_parameter_groups[i] for a, i in removal.instance_addresses.items()},
    )
    rewrite = plan_rewrite(load_config(directory), target)  # may stop: nothing changed yet
    unmanaged = sorted(set(facts.instance_identifiers) - set(removal.instance_addresses.values()))
    if unmanaged:
        report.step(StepResult("noted", f"not managed by Terraform: {', '.join(unmanaged)}"))

    # From here on things change; the report records each one.
    command = _command_renderer(tf.terraform_bin_path, directory)
    if removal.to_remove:
        report.step(backup_state(directory, state, state_text, artifacts, now))
        if plan_only:
            report.step(StepResult("skipped", "plan only: the state keeps its addresses"))
            report.commands_left.append(command("state", "rm", *removal.to_remove))
        else:
            report.step(remove_addresses(tf, removal.to_remove))
    import_path = directory / IMPORT_FILE
    import_before = import_path.read_text() if import_path.is_file() else ""
    report.step(write_rewrite(rewrite, tf))
    if removal.imports:
        report.step(write_import_file(directory, cluster_identifier, removal.imports))
        rewrite.original.setdefault(import_path, import_before)
        rewrite.rewritten[import_path] = import_path.read_text()
    elif import_path.is_file():
        import_path.unlink()  # left over from an apply that imported everything
        report.step(StepResult("removed", f"{IMPORT_FILE} left over: the state is current"))
    report.diff = render_diff(rewrite, directory)
    return init_plan_apply(tf, report, bool(removal.to_remove), artifacts)


def init_plan_apply(
    tf: Terraform, report: TerraformReport, state_rm_pending: bool, artifacts: Path
) -> TerraformReport:
    """`init`, `plan -out`, then (unless plan-only) `apply` the saved plan and delete import.tf.

    Finishes `report` with the outcome and the commands left. Raises nothing for
    Terraform's refusals: a missing provider, a failed plan or apply, or a plan
    that destroys the cluster or an instance (never applied) are report statuses.
    """
    directory = Path(report.terraform_dir)
    command = _command_renderer(tf.terraform_bin_path, directory)
    pending_import = (directory / IMPORT_FILE).is_file()
    plan_file = artifacts / PLAN_FILE
    later = [command("init"), command("plan", f"-out={PLAN_FILE}"), command("apply", PLAN_FILE)]
    if pending_import:
        later.append(f"rm {shlex.quote(str(directory / IMPORT_FILE))}")
    code, _, err = run_terraform(tf, "init", input=False)
    if code != 0:
        provider = missing_provider(err)
        if provider is None:
            return report.finish(
                TerraformStatus.INIT_FAILED, f"terraform init: {first_line_of_error(err)}", later
            )
        cause = re.search(r"could not connect to [\w.-]+|no such host|[Tt]imeout[^\n]*", err)
        reason = (
            f"terraform init cannot install provider {provider} "
            f"({cause[0] if cause else first_line_of_error(err)}); "
            "the state backup, the rewritten configuration and import.tf are in place"
        )
        return report.finish(TerraformStatus.PROVIDER_UNAVAILABLE, reason, later, provider=provider)
    report.step(StepResult("initialised", "terraform init installed the providers"))
    if report.plan_only and state_rm_pending:
        # A plan before `state rm` would describe the old cluster, not the import.
        reason = "plan only: run the state rm above, then plan and apply"
        return report.finish(TerraformStatus.STATE_RM_PENDING, reason, later[1:])
    artifacts.mkdir(parents=True, exist_ok=True)
    code, plan_text, err = run_terraform(
        tf, "plan", input=False, out=str(plan_file), detailed_exitcode=IsFlagged
    )
    report.plan_text = plan_text
    if code not in (0, 2):
        return report.finish(
            TerraformStatus.PLAN_FAILED, f"terraform plan: {first_line_of_error(err)}", later[1:]
        )
    _, shown, _ = run_terraform(tf, "show", str(plan_file), json=IsFlagged)
    plan = report.plan = summarize_plan(json.loads(shown))
    (artifacts / "tfplan.txt").write_text(plan_text)
    (artifacts / "tfplan-summary.json").write_text(json.dumps(plan.as_dict(), indent=2))
    report.step(StepResult("planned", plan.sentence(), plan.as_dict()))
    if plan.blockers:
        reason = f"the plan destroys {', '.join(plan.blockers)}; nothing applied"
        return report.finish(TerraformStatus.BLOCKED, reason, later[1:])
    if code == 0 and not pending_import:
        return report.finish(TerraformStatus.NOTHING_TO_DO, "Terraform already matches AWS")
    if report.plan_only:
        return report.finish(
            TerraformStatus.PLANNED, "plan only: review the plan, then apply it", later[2:]
        )
    code, _, err = run_terraform(tf, "apply", str(plan_file), input=False)
    if code != 0:
        return report.finish(
            TerraformStatus.APPLY_FAILED, f"terraform apply: {first_line_of_error(err)}", later[1:]
        )
    (directory / IMPORT_FILE).unlink(missing_ok=True)
    return report.finish(
        TerraformStatus.APPLIED, f"applied the saved plan and deleted {IMPORT_FILE}"
    )


def _command_renderer(terraform_bin: str, directory: Path) -> Callable[..., str]:
    def render(*args: str) -> str:
        words = [terraform_bin, f"-chdir={directory}", *args]
        return " ".join(shlex.quote(word) for word in words)

    return render


# --- Prefect -------------------------------------------------------------------------


@task(name="reconcile-terraform", retries=0, cache_policy=NO_CACHE)
def reconcile_terraform_task(
    terraform_dir: str,
    cluster_identifier: str,
    rds_client: Any,
    terraform_bin: str = "terraform",
    plan_only: bool = False,
    allow_newer_cli: bool = False,
) -> TerraformReport:
    """Phase 12 as a task: publishes `<cluster>-terraform-plan` and returns the report.

    Never retried: Terraform's refusals are business errors. Raises the
    BusinessError of `reconcile` when it cannot start, and PreconditionFailed /
    InvalidState after publishing the report when the plan is blocked or fails.
    """
    logger = get_run_logger()
    report = reconcile(
        terraform_dir, cluster_identifier, rds_client, terraform_bin, plan_only, allow_newer_cli
    )
    create_markdown_artifact(
        key=f"{cluster_identifier.lower()}-terraform-plan",
        markdown=report.to_markdown(),
        description=f"Terraform phase: {report.status}",
    )
    for result in report.steps:
        logger.info("%s", result)
    error = STOPPING_STATUSES.get(report.status)
    if error is not None:
        raise error(report.message)
    return report
