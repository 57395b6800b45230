"""`aurora-bg deploy --environment FILE --check` reads the file without any server: the
shipped environment files pass, and a file that is not YAML or is missing fails in one
line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.operate import REPO, run_cli


def test_a_file_that_is_not_yaml_or_missing_fails_in_one_line(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster_identifier: [unclosed\n")
    for path, expected in (
        (broken, "is not valid YAML at line"),
        (tmp_path / "missing.yaml", "does not exist"),
    ):
        done = run_cli("deploy", "--environment", str(path), "--check")
        assert done.returncode != 0 and expected in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("name", ["lab.yaml", "production.example.yaml"])
def test_the_shipped_environment_files_pass_the_check(name: str):
    done = run_cli("deploy", "--environment", str(REPO / "deployments" / name), "--check")
    assert done.returncode == 0, done.stderr
    assert "aurora-blue-green-upgrade/upgrade on work pool aurora-bg: run by hand" in done.stdout
    assert "maintenance-window on work pool aurora-bg: cron " in done.stdout
    assert "(inactive)" in done.stdout
