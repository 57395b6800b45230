"""The configuration rewrite on the runbook's layout (docs/runbook.md) and on four other ways
to write it.

Each result must parse, pass `terraform fmt -check` (real Terraform core) and
leave every line outside the edited values and deleted blocks byte-identical.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import hcl2
import pytest
from python_terraform import Terraform

from aurora_bg.errors import PreconditionFailed
from tasks.terraform.hcl import load_config, parse_blocks
from tasks.terraform.rewrite import (
    RewriteTarget,
    plan_rewrite,
    read_import_file,
    render_import_file,
    write_import_file,
    write_rewrite,
)
from tests.support.terraform_builders import FIXTURES, snapshot, terraform

NEW_VERSION = "16.2"
CLUSTER_16 = "test-aurora-postgresql16-cluster"
INSTANCE_16 = "test-aurora-postgresql16-instance"


@dataclass(frozen=True)
class Layout:
    fixture: str
    cluster: str
    instances: tuple[str, ...]
    edited: frozenset[str]  # attribute names whose value may change
    deleted: frozenset[str]  # resource blocks that must disappear
    expected: tuple[tuple[str, str], ...]  # (file, text the result must contain)


LAYOUTS = [
    Layout(
        "runbook",
        "aws_rds_cluster.test",
        ("aws_rds_cluster_instance.test",),
        frozenset({"engine_version", "db_cluster_parameter_group_name", "db_parameter_group_name"}),
        frozenset({"aws_rds_cluster_parameter_group.test15", "aws_db_parameter_group.test15"}),
        (
            ("main.tf", 'engine_version                  = "16.2"'),
            ("main.tf", "= aws_rds_cluster_parameter_group.test16.name"),
            ("main.tf", "db_parameter_group_name = aws_db_parameter_group.test16.name"),
            ("main.tf", "engine_version          = aws_rds_cluster.test.engine_version"),
        ),
    ),
    Layout(
        "renamed",
        "aws_rds_cluster.orders",
        ("aws_rds_cluster_instance.writer",),
        frozenset({"engine_version", "db_cluster_parameter_group_name", "db_parameter_group_name"}),
        frozenset({"aws_rds_cluster_parameter_group.pg15", "aws_db_parameter_group.pg15_members"}),
        (
            ("database.tf", '"16.2" # bumped by the Blue/Green upgrade'),
            ("database.tf", "= aws_rds_cluster_parameter_group.pg16.id"),
            ("database.tf", "= aws_db_parameter_group.pg16_members.name # members"),
            ("parameters.tf", "// Parameter groups, one pair per PostgreSQL major version."),
        ),
    ),
    Layout(
        "counted",
        "aws_rds_cluster.test",
        tuple(f"aws_rds_cluster_instance.members[{i}]" for i in range(3)),
        frozenset({"engine_version", "db_cluster_parameter_group_name", "db_parameter_group_name"}),
        frozenset({"aws_rds_cluster_parameter_group.test15", "aws_db_parameter_group.test15"}),
        (
            ("main.tf", 'engine_version          = "16.2"'),
            ("main.tf", "db_parameter_group_name = aws_db_parameter_group.test16.name"),
        ),
    ),
    Layout(
        "literal_names",
        "aws_rds_cluster.test",
        ("aws_rds_cluster_instance.test",),
        frozenset({"engine_version", "db_cluster_parameter_group_name", "db_parameter_group_name"}),
        # The cluster group stays: `depends_on` still names it.
        frozenset({"aws_db_parameter_group.fifteen"}),
        (
            ("main.tf", f'db_cluster_parameter_group_name = "{CLUSTER_16}"'),
            ("main.tf", f'db_parameter_group_name = "{INSTANCE_16}"'),
            ("main.tf", 'resource "aws_rds_cluster_parameter_group" "fifteen"'),
        ),
    ),
    Layout(
        "from_variables",
        "aws_rds_cluster.this",
        ('aws_rds_cluster_instance.this["rds-1"]', 'aws_rds_cluster_instance.this["rds-2"]'),
        frozenset({"default", "cluster_parameter_group", "instance_parameter_group"}),
        frozenset(),
        (
            ("variables.tf", 'default     = "16.2"'),
            ("variables.tf", f'cluster_parameter_group  = "{CLUSTER_16}"'),
            ("variables.tf", f'instance_parameter_group = "{INSTANCE_16}"'),
            ("main.tf", "engine_version                  = var.engine_version"),
        ),
    ),
]


def target_for(layout: Layout) -> RewriteTarget:
    groups = dict.fromkeys(layout.instances, INSTANCE_16)
    return RewriteTarget(layout.cluster, layout.instances, NEW_VERSION, CLUSTER_16, groups)


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def deleted_lines(path: Path, text: str, deleted: frozenset[str]) -> set[int]:
    """Line numbers of the deleted blocks and of the comment lines right above them."""
    lines = text.splitlines()
    found: set[int] = set()
    for block in parse_blocks(path, text):
        if block.kind == "resource" and block.address in deleted:
            first = text.count("\n", 0, block.start)
            found.update(range(first, text.count("\n", 0, block.end) + 1))
            while first > 0 and lines[first - 1].lstrip().startswith(("#", "//", "/*")):
                first -= 1
                found.add(first)
    return found


def assert_only_expected_lines_changed(path: Path, before: str, after: str, layout: Layout):
    """Outside the deleted blocks every line is kept byte for byte, except edited values.

    Blank lines are compared by count only: deleting a block also takes one of
    the blank lines that separated it from its neighbours.
    """
    dropped = deleted_lines(path, before, layout.deleted)
    kept = [line for n, line in enumerate(before.splitlines()) if n not in dropped]
    old = [line for line in kept if line.strip()]
    new = [line for line in after.splitlines() if line.strip()]
    assert len(old) == len(new), f"{path.name}: lines added or lost"
    for old_line, new_line in zip(old, new, strict=True):
        if old_line == new_line:
            continue
        name, _, _ = old_line.partition("=")
        assert name.strip() in layout.edited, (old_line, new_line)
        assert new_line.startswith(name + "="), (old_line, new_line)  # alignment kept
    blank_before = sum(1 for line in kept if not line.strip())
    blank_after = sum(1 for line in after.splitlines() if not line.strip())
    assert blank_before - len(layout.deleted) <= blank_after <= blank_before


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.fixture)
def test_rewrite_changes_only_version_groups_and_old_blocks(
    layout: Layout, tmp_path: Path, terraform_bin: str
):
    directory = copy_fixture(layout.fixture, tmp_path)
    before = {p: p.read_text() for p in directory.glob("*.tf")}
    tf = Terraform(working_dir=str(directory), terraform_bin_path=terraform_bin)

    result = write_rewrite(plan_rewrite(load_config(directory), target_for(layout)), tf)

    assert result.action == "rewritten"
    after = {p: p.read_text() for p in directory.glob("*.tf")}
    for path, text in after.items():
        hcl2.loads(text)  # still valid HCL
        assert_only_expected_lines_changed(path, before[path], text, layout)
    for file, expected in layout.expected:
        assert expected in after[directory / file], (file, expected)
    remaining = {b.address for b in load_config(directory).blocks if b.kind == "resource"}
    assert not (layout.deleted & remaining)
    assert "15.4" not in "".join(after.values())
    check = terraform(terraform_bin, directory, "fmt", "-check", "-no-color")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.fixture)
def test_rewrite_twice_changes_nothing_the_second_time(
    layout: Layout, tmp_path: Path, terraform_bin: str
):
    directory = copy_fixture(layout.fixture, tmp_path)
    tf = Terraform(working_dir=str(directory), terraform_bin_path=terraform_bin)
    write_rewrite(plan_rewrite(load_config(directory), target_for(layout)), tf)
    files = snapshot(directory)

    second = write_rewrite(plan_rewrite(load_config(directory), target_for(layout)), tf)

    assert second.action == "already-done"
    assert snapshot(directory) == files


def test_runbook_rewrite_matches_the_manual_repair(tmp_path: Path, terraform_bin: str):
    """docs/runbook.md step 7: version, both references to the 16 groups, 15 groups deleted."""
    directory = copy_fixture("runbook", tmp_path)
    rewrite = plan_rewrite(load_config(directory), target_for(LAYOUTS[0]))

    assert rewrite.changes == [
        'aws_rds_cluster.test.engine_version: "15.4" -> "16.2"',
        "aws_rds_cluster.test.db_cluster_parameter_group_name: "
        "aws_rds_cluster_parameter_group.test15.name -> "
        "aws_rds_cluster_parameter_group.test16.name",
        "aws_rds_cluster_instance.test.db_parameter_group_name: "
        "aws_db_parameter_group.test15.name -> aws_db_parameter_group.test16.name",
        "delete aws_db_parameter_group.test15, which nothing uses any more",
        "delete aws_rds_cluster_parameter_group.test15, which nothing uses any more",
    ]


def test_computed_engine_version_stops_before_any_change(tmp_path: Path):
    directory = copy_fixture("runbook", tmp_path)
    main = directory / "main.tf"
    main.write_text(main.read_text().replace('"15.4"', '"${var.major}.4"'))
    files = snapshot(directory)

    with pytest.raises(PreconditionFailed) as stopped:
        plan_rewrite(load_config(directory), target_for(LAYOUTS[0]))

    assert 'set it to "16.2" by hand' in str(stopped.value)
    assert "\n" not in str(stopped.value)
    assert snapshot(directory) == files


def test_variable_without_default_says_where_to_set_the_version(tmp_path: Path):
    directory = copy_fixture("from_variables", tmp_path)
    variables = directory / "variables.tf"
    variables.write_text(variables.read_text().replace('  default     = "15.4"\n', ""))

    with pytest.raises(PreconditionFailed, match=r'var\.engine_version.*set it to "16\.2"'):
        plan_rewrite(load_config(directory), target_for(LAYOUTS[4]))


def test_counted_instances_on_different_groups_stop(tmp_path: Path):
    directory = copy_fixture("counted", tmp_path)
    layout = LAYOUTS[2]
    groups = dict.fromkeys(layout.instances, INSTANCE_16)
    groups[layout.instances[0]] = "test-aurora-postgresql15-instance"
    target = RewriteTarget(layout.cluster, layout.instances, NEW_VERSION, CLUSTER_16, groups)

    with pytest.raises(PreconditionFailed, match="use different parameter groups"):
        plan_rewrite(load_config(directory), target)


def test_cluster_inside_a_module_stops_with_what_to_edit(tmp_path: Path):
    directory = copy_fixture("runbook", tmp_path)
    target = RewriteTarget("module.db.aws_rds_cluster.this", (), NEW_VERSION, CLUSTER_16, {})

    with pytest.raises(PreconditionFailed, match="lives in a module"):
        plan_rewrite(load_config(directory), target)


def test_group_without_a_declaring_block_becomes_its_literal_name(tmp_path: Path):
    directory = copy_fixture("runbook", tmp_path)
    target = RewriteTarget(
        "aws_rds_cluster.test",
        ("aws_rds_cluster_instance.test",),
        NEW_VERSION,
        "custom-cluster-group",
        {"aws_rds_cluster_instance.test": INSTANCE_16},
    )

    rewrite = plan_rewrite(load_config(directory), target)

    assert 'db_cluster_parameter_group_name = "custom-cluster-group"' in "".join(
        rewrite.rewritten.values()
    )


def test_import_file_is_valid_hcl_fmt_clean_and_reads_back(tmp_path: Path, terraform_bin: str):
    imports = [
        ("aws_rds_cluster.test", "provisioning-rds"),
        ("aws_rds_cluster_instance.test[0]", "rds-1"),
        ('aws_rds_cluster_instance.this["rds-2"]', "rds-2"),
    ]

    first = write_import_file(tmp_path, "provisioning-rds", imports)
    second = write_import_file(tmp_path, "provisioning-rds", imports)

    assert (first.action, second.action) == ("written", "already-done")
    text = (tmp_path / "import.tf").read_text()
    assert text == render_import_file("provisioning-rds", imports)
    assert len(hcl2.loads(text)["import"]) == 3
    assert read_import_file(tmp_path) == imports
    check = terraform(terraform_bin, tmp_path, "fmt", "-check", "-no-color", "import.tf")
    assert check.returncode == 0, check.stdout + check.stderr
