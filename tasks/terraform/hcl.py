"""Reading Terraform's HCL files: where each block and attribute sits.

The files are read with python-hcl2's parser only to learn positions (character
offsets from its Lark tree), so that a rewrite can replace one span and leave
everything else in a file byte-identical. Values are read as source text; only
plain quoted literals are ever interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hcl2.api import parses_to_tree
from lark import Tree
from lark.exceptions import LarkError

from aurora_bg.errors import BadInput

_LITERAL = re.compile(r'^"([^"\\]*)"$')


@dataclass(frozen=True)
class HclAttribute:
    """One `name = expression` of a block, with where its expression sits in the file."""

    name: str
    value: str  # the expression's source text
    value_start: int
    value_end: int


@dataclass(frozen=True)
class HclBlock:
    """One top-level block (`resource`, `variable`, `locals`, `import`…) and its span."""

    path: Path
    kind: str
    labels: tuple[str, ...]
    start: int
    end: int
    attributes: dict[str, HclAttribute]
    expressions: tuple[str, ...]  # every expression inside, nested blocks included

    @property
    def address(self) -> str:
        return ".".join(self.labels)

    def literal(self, attribute: str) -> str | None:
        found = self.attributes.get(attribute)
        return literal_value(found.value) if found else None


@dataclass
class ConfigFiles:
    """The top-level blocks of every `*.tf` file in a directory, with their positions."""

    texts: dict[Path, str]
    blocks: list[HclBlock]

    def resources(self, resource_type: str) -> list[HclBlock]:
        return [b for b in self.blocks if b.kind == "resource" and b.labels[0] == resource_type]

    def resource(self, resource_type: str, name: str) -> HclBlock | None:
        matches = [b for b in self.resources(resource_type) if b.labels[1] == name]
        return matches[0] if matches else None

    def named(self, kind: str, name: str) -> tuple[HclBlock, HclAttribute] | None:
        """`variable "name"`'s default, or the local `name`."""
        for block in self.blocks:
            if kind == "variable" and block.kind == "variable" and block.labels == (name,):
                default = block.attributes.get("default")
                return (block, default) if default else None
            if kind == "local" and block.kind == "locals" and name in block.attributes:
                return block, block.attributes[name]
        return None


def literal_value(expression: str) -> str | None:
    """The string of a plain quoted literal (no interpolation), else None."""
    match = _LITERAL.match(expression.strip())
    if not match or "${" in match[1] or "%{" in match[1]:
        return None
    return match[1]


def load_config(terraform_dir: Path) -> ConfigFiles:
    """Parse every `*.tf` file. Raises BadInput when one is not valid HCL."""
    texts, blocks = {}, []
    for path in sorted(Path(terraform_dir).glob("*.tf")):
        text = path.read_text()
        texts[path] = text
        blocks.extend(parse_blocks(path, text))
    return ConfigFiles(texts, blocks)


def parse_blocks(path: Path, text: str) -> list[HclBlock]:
    """The top-level blocks of one file's text. Raises BadInput when it is not valid HCL."""
    try:
        tree = parses_to_tree(text)
    except LarkError as exc:
        raise BadInput(f"cannot parse {path}: {str(exc).splitlines()[0]}") from exc
    body = tree.children[0]
    return [_block(path, text, node) for node in _children(body, "block")]


def _children(node: Tree, data: str) -> list[Tree]:
    return [c for c in node.children if isinstance(c, Tree) and c.data == data]


def _span(node: Tree, text: str) -> str:
    return text[node.meta.start_pos : node.meta.end_pos]


def _block(path: Path, text: str, node: Tree) -> HclBlock:
    heads = [c for c in node.children if isinstance(c, Tree) and c.data in ("identifier", "string")]
    kind, *labels = (_span(h, text).strip('"') for h in heads)
    body = _children(node, "body")[0]
    attributes = {}
    for attribute in _children(body, "attribute"):
        name, expression = _span(attribute.children[0], text), attribute.children[-1]
        attributes[name] = HclAttribute(
            name, _span(expression, text), expression.meta.start_pos, expression.meta.end_pos
        )
    expressions = tuple(
        _span(a.children[-1], text) for a in body.iter_subtrees() if a.data == "attribute"
    )
    return HclBlock(
        path, kind, tuple(labels), node.meta.start_pos, node.meta.end_pos, attributes, expressions
    )
