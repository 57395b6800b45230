"""Operators' checks from a YAML file: what the file may say, read without any database."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aurora_bg.errors import BadInput
from tasks.validation.custom import load_checks_file

EXAMPLE = Path(__file__).resolve().parents[2] / "deployments" / "checks.example.yaml"


def checks_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_example_file_loads_with_every_kind_of_expectation() -> None:
    checks = load_checks_file(EXAMPLE)

    assert [c.expect.kind for c in checks] == [
        "equals",
        "no_rows",
        "matches_blue",
        "range",
        "range",
    ]
    assert {c.side for c in checks} == {"green", "blue", "both"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "checks:\n  - name: a\n    sql: SELECT 1\n    expect: {equals: 1}\n    colour: red\n",
            "checks[0] ('a').colour: Extra inputs are not permitted",
        ),
        ("checks: [\n", "does not parse at line 2"),
        ("- name: a\n", "the file: Input should be a valid dictionary"),
        (
            "checks:\n  - name: a\n    sql: SELECT 1\n    expect: {equals: 1, at_most: 2}\n",
            "give exactly one expectation, not 2",
        ),
        (
            "checks:\n  - name: a\n    sql: SELECT 1\n    side: both\n    expect: {equals: 1}\n",
            "side 'both' goes with expect 'matches_blue'",
        ),
        (
            "checks:\n  - name: a\n    sql: SELECT 1\n    expect: everything\n",
            "'everything' is not an expectation",
        ),
        (
            "checks:\n"
            "  - {name: a, sql: SELECT 1, expect: no_rows}\n"
            "  - {name: a, sql: SELECT 2, expect: no_rows}\n",
            "check names must be unique: a",
        ),
        (
            "checks:\n  - name: a\n    sql: SELECT 1\n    expect: no_rows\n    severity: fatal\n",
            "checks[0] ('a').severity",
        ),
    ],
)
def test_unusable_file_is_bad_input_naming_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = checks_file(tmp_path, text)

    with pytest.raises(BadInput) as caught:
        load_checks_file(path)

    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot be read"):
        load_checks_file(tmp_path / "nowhere.yaml")
