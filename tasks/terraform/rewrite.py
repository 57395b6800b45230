"""Terraform configuration: point it at the upgraded cluster, and write import.tf.

Every change is a replacement of one span found by `tasks.terraform.hcl`, so
everything else in a file stays byte-identical: comments, blank lines,
ordering. `terraform fmt` then runs on the touched files.

What is rewritten (docs/runbook.md, step 7): the cluster's `engine_version` (the
literal, the variable's `default` or the local it comes from), the cluster's
`db_cluster_parameter_group_name` and each instance resource's
`db_parameter_group_name` (to the resource whose `name` is the group in use, or
to the literal name), and the old parameter-group resources once nothing uses
them. Anything else is reported, never guessed.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from python_terraform import Terraform

from aurora_bg.errors import BadInput, InvalidState, PreconditionFailed
from aurora_bg.results import StepResult
from tasks.terraform.cli import first_line_of_error, run_terraform
from tasks.terraform.hcl import ConfigFiles, HclBlock, literal_value, parse_blocks
from tasks.terraform.state import CLUSTER_TYPE

IMPORT_FILE = "import.tf"
CLUSTER_GROUP_TYPE = "aws_rds_cluster_parameter_group"
INSTANCE_GROUP_TYPE = "aws_db_parameter_group"
GROUP_TYPES = {
    "db_cluster_parameter_group_name": CLUSTER_GROUP_TYPE,
    "db_parameter_group_name": INSTANCE_GROUP_TYPE,
}
_VARIABLE = re.compile(r"^var\.([A-Za-z_][\w-]*)$")
_LOCAL = re.compile(r"^local\.([A-Za-z_][\w-]*)$")
_RESOURCE_REF = re.compile(r"^([a-z][a-z0-9_]*)\.([A-Za-z_][\w-]*)\.([A-Za-z_]\w*)$")
_ADDRESS = re.compile(r"^([a-z][a-z0-9_]*)\.([A-Za-z_][\w-]*)(\[.+\])?$")


# --- what to change ------------------------------------------------------------------


@dataclass(frozen=True)
class RewriteTarget:
    """Where the cluster lives in the configuration and what AWS reports now."""

    cluster_address: str
    instance_addresses: tuple[str, ...]
    engine_version: str
    cluster_parameter_group: str
    # instance address -> the DB parameter group its AWS instance uses
    instance_parameter_groups: dict[str, str]


@dataclass(frozen=True)
class Edit:
    """Replace `start:end` of the file at `path` with `replacement`."""

    path: Path
    start: int
    end: int
    replacement: str


@dataclass
class ConfigRewrite:
    """The planned new text of each file, and one sentence per change."""

    original: dict[Path, str]
    rewritten: dict[Path, str]
    changes: list[str] = field(default_factory=list)

    @property
    def touched(self) -> list[Path]:
        return [p for p, text in self.rewritten.items() if text != self.original[p]]


def resource_of(address: str) -> tuple[str, str]:
    """`aws_rds_cluster_instance.test[0]` -> (`aws_rds_cluster_instance`, `test`).

    Raises PreconditionFailed for addresses inside modules: their configuration is
    the module's inputs, which this rewrite does not edit.
    """
    if address.startswith("module."):
        raise PreconditionFailed(
            f"{address} lives in a module; update the module's engine version and parameter "
            "group inputs by hand"
        )
    match = _ADDRESS.match(address)
    if not match:
        raise BadInput(f"not a resource address: {address}")
    return match[1], match[2]


def plan_rewrite(config: ConfigFiles, target: RewriteTarget) -> ConfigRewrite:
    """Compute the new text of every file; nothing is written.

    Raises PreconditionFailed when a value cannot be rewritten safely (a computed
    expression, a variable without default, two instances of one resource on
    different groups): the message says what to change by hand.
    """
    cluster = _resource_block(config, target.cluster_address)
    edits: list[Edit] = []
    changes: list[str] = []
    old_groups: set[tuple[str, str]] = set()
    version, cluster_group = target.engine_version, target.cluster_parameter_group
    version_edits, _ = _value_edits(config, cluster, "engine_version", version, changes)
    edits += version_edits
    edits += _group_edits(
        config, cluster, "db_cluster_parameter_group_name", cluster_group, changes, old_groups
    )
    for block, group in _instance_blocks(config, target):
        engine = block.attributes.get("engine_version")
        follows = engine and _RESOURCE_REF.match(engine.value.strip())
        # `aws_rds_cluster.x.engine_version` follows the cluster: nothing to write.
        if not (follows and follows[1] == CLUSTER_TYPE):
            version_edits, _ = _value_edits(config, block, "engine_version", version, changes)
            edits += version_edits
        edits += _group_edits(config, block, "db_parameter_group_name", group, changes, old_groups)
    rewritten = _apply(config.texts, edits)
    in_use = {target.cluster_parameter_group, *target.instance_parameter_groups.values()}
    stale = {(kind, name) for kind, name in old_groups if name not in in_use}
    deletions = _unused_old_groups(rewritten, stale)
    changes += [f"delete {block.address}, which nothing uses any more" for _, block in deletions]
    rewritten = _apply(rewritten, [edit for edit, _ in deletions])
    return ConfigRewrite(dict(config.texts), rewritten, changes)


def _resource_block(config: ConfigFiles, address: str) -> HclBlock:
    block = config.resource(*resource_of(address))
    if block is None:
        raise PreconditionFailed(f"no resource block for {address} in the configuration")
    return block


def _instance_blocks(config: ConfigFiles, target: RewriteTarget) -> list[tuple[HclBlock, str]]:
    """Each instance resource block once (count/for_each share one) with its group."""
    blocks: dict[str, HclBlock] = {}
    groups: dict[str, set[str]] = {}
    for address in target.instance_addresses:
        block = _resource_block(config, address)
        blocks[block.address] = block
        groups.setdefault(block.address, set()).add(target.instance_parameter_groups[address])
    for address, names in groups.items():
        if len(names) > 1:
            raise PreconditionFailed(
                f"the instances of {address} use different parameter groups "
                f"({', '.join(sorted(names))}); one resource block cannot express that"
            )
    return [(blocks[address], names.pop()) for address, names in groups.items()]


def _value_edits(
    config: ConfigFiles, block: HclBlock, name: str, new: str, changes: list[str]
) -> tuple[list[Edit], str | None]:
    """Set `name` to the literal `new` where it is written: literal, var default or local.

    Returns the edits and the old literal value (None when the attribute is absent).
    """
    attribute = block.attributes.get(name)
    if attribute is None:
        return [], None
    where, holder, value = f"{block.address}.{name}", block, attribute
    expression = attribute.value.strip()
    for kind, pattern in (("variable", _VARIABLE), ("local", _LOCAL)):
        match = pattern.match(expression)
        if match:
            found = config.named(kind, match[1])
            if found is None:
                raise PreconditionFailed(
                    f"{where} comes from {expression}, which has no value in the configuration; "
                    f'set it to "{new}" where it is given'
                )
            holder, value = found
            where = f"{expression} (used by {block.address}.{name})"
    old = literal_value(value.value)
    if old is None:
        raise PreconditionFailed(
            f'{where} = {value.value.strip()} is not a literal; set it to "{new}" by hand'
        )
    if old == new:
        return [], old
    changes.append(f'{where}: "{old}" -> "{new}"')
    return [Edit(holder.path, value.value_start, value.value_end, json.dumps(new))], old


def _group_edits(
    config: ConfigFiles,
    block: HclBlock,
    name: str,
    new_group: str,
    changes: list[str],
    old_groups: set[tuple[str, str]],
) -> list[Edit]:
    """Point `name` at the group in use: by reference when the config references groups.

    Adds the group it pointed at before to `old_groups` (by type and name).
    """
    attribute = block.attributes.get(name)
    if attribute is None:
        return []
    group_type = GROUP_TYPES[name]
    reference = _RESOURCE_REF.match(attribute.value.strip())
    if not (reference and reference[1] == group_type):
        edits, old = _value_edits(config, block, name, new_group, changes)
        if old is not None:
            old_groups.add((group_type, old))
        return edits
    current = config.resource(group_type, reference[2])
    current_name = current.literal("name") if current else None
    if current_name == new_group:
        return []
    if current_name:
        old_groups.add((group_type, current_name))
    declared = [b for b in config.resources(group_type) if b.literal("name") == new_group]
    if declared:
        replacement = f"{group_type}.{declared[0].labels[1]}.{reference[3]}"
    else:
        # No block declares the group in use: its literal name is still exact.
        replacement = json.dumps(new_group)
    changes.append(f"{block.address}.{name}: {attribute.value.strip()} -> {replacement}")
    return [Edit(block.path, attribute.value_start, attribute.value_end, replacement)]


def _apply(texts: dict[Path, str], edits: list[Edit]) -> dict[Path, str]:
    unique = {(e.path, e.start, e.end): e for e in edits}
    if len({(e.path, e.start, e.end, e.replacement) for e in edits}) != len(unique):
        raise PreconditionFailed("one value would need two different new values; edit it by hand")
    result = dict(texts)
    for edit in sorted(unique.values(), key=lambda e: e.start, reverse=True):
        text = result[edit.path]
        result[edit.path] = text[: edit.start] + edit.replacement + text[edit.end :]
    return result


def _unused_old_groups(
    texts: dict[Path, str], old_groups: set[tuple[str, str]]
) -> list[tuple[Edit, HclBlock]]:
    """Old group blocks that no expression references, by address or by name."""
    blocks = [b for path, text in texts.items() for b in parse_blocks(path, text)]
    found = []
    for group_type, group_name in sorted(old_groups):
        for block in blocks:
            if block.kind != "resource" or block.labels[0] != group_type:
                continue
            if block.literal("name") != group_name:
                continue
            by_address = re.compile(rf"\b{re.escape(block.address)}\b")
            used = any(
                by_address.search(expression) or literal_value(expression) == group_name
                for other in blocks
                if other is not block
                for expression in other.expressions
            )
            if not used:
                found.append((_deletion(block, texts[block.path]), block))
    return found


def _deletion(block: HclBlock, text: str) -> Edit:
    """The block's lines, its comment lines just above, and one surplus blank line."""
    start = text.rfind("\n", 0, block.start) + 1
    while start > 0:
        previous = text.rfind("\n", 0, start - 1) + 1
        line = text[previous:start].strip()
        if line.endswith("*/"):
            # A /* … */ comment: take it whole when it starts its own line.
            opening = text.rfind("/*", 0, start)
            previous = text.rfind("\n", 0, opening) + 1
            if opening < 0 or text[previous:opening].strip():
                break
        elif not line.startswith(("#", "//")):
            break
        start = previous
    end = text.find("\n", block.end)
    end = len(text) if end == -1 else end + 1
    blank_before = start == 0 or text[:start].endswith("\n\n")
    if blank_before and text[end:].startswith("\n"):
        end += 1
    return Edit(block.path, start, end, "")


# --- writing -------------------------------------------------------------------------


def render_diff(rewrite: ConfigRewrite, root: Path) -> str:
    """The unified diff of every changed file, paths relative to `root`."""
    chunks: list[str] = []
    for path in sorted(rewrite.rewritten):
        before, after = rewrite.original.get(path, ""), rewrite.rewritten[path]
        if before == after:
            continue
        name = path.relative_to(root) if path.is_relative_to(root) else path
        chunks.extend(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"a/{name}",
                f"b/{name}",
            )
        )
    return "".join(chunks)


def write_rewrite(rewrite: ConfigRewrite, tf: Terraform) -> StepResult:
    """Write the changed files and `terraform fmt` them; the plan's text becomes the files'.

    Returns `rewritten` (with one sentence per change) or `already-done`.
    Raises InvalidState when `terraform fmt` rejects a file.
    """
    touched = rewrite.touched
    if not touched:
        return StepResult("already-done", "the configuration already matches AWS", {})
    for path in touched:
        path.write_text(rewrite.rewritten[path])
    for path in touched:
        code, _, err = run_terraform(tf, "fmt", str(path))
        if code != 0:
            raise InvalidState(f"terraform fmt refused {path.name}: {first_line_of_error(err)}")
        rewrite.rewritten[path] = path.read_text()
    return StepResult(
        "rewritten",
        f"{len(rewrite.changes)} change(s) in {', '.join(p.name for p in touched)}",
        {"changes": list(rewrite.changes), "files": [str(p) for p in touched]},
    )


def render_import_file(cluster_identifier: str, imports: list[tuple[str, str]]) -> str:
    """import.tf: one `import` block per (address, AWS id)."""
    lines = [
        f"# Brings {cluster_identifier} back under Terraform after its Blue/Green switchover.",
        "# Delete this file once `terraform apply` has imported these resources.",
    ]
    for address, identifier in imports:
        lines += ["", "import {", f"  to = {address}", f"  id = {json.dumps(identifier)}", "}"]
    return "\n".join(lines) + "\n"


def read_import_file(terraform_dir: Path) -> list[tuple[str, str]]:
    """The (address, id) pairs of import.tf, empty when there is none."""
    path = Path(terraform_dir) / IMPORT_FILE
    if not path.is_file():
        return []
    pairs = []
    for block in parse_blocks(path, path.read_text()):
        if block.kind == "import" and "to" in block.attributes:
            identifier = block.literal("id") or ""
            pairs.append((block.attributes["to"].value.strip(), identifier))
    return pairs


def write_import_file(
    terraform_dir: Path, cluster_identifier: str, imports: list[tuple[str, str]]
) -> StepResult:
    """Write import.tf unless it already holds exactly these blocks."""
    path = Path(terraform_dir) / IMPORT_FILE
    text = render_import_file(cluster_identifier, imports)
    facts = {"path": str(path), "imports": [list(pair) for pair in imports]}
    if path.is_file() and path.read_text() == text:
        return StepResult(
            "already-done", f"{IMPORT_FILE} already imports {len(imports)} resource(s)", facts
        )
    path.write_text(text)
    return StepResult("written", f"{IMPORT_FILE} imports {len(imports)} resource(s)", facts)
