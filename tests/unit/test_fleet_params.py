"""The fleet's parameters: every cluster's upgrade parameters checked before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aurora_bg.fleet_params import FleetParameters
from aurora_bg.params import one_line

SETTINGS = {
    "target_engine_version": "16.2",
    "target_cluster_parameter_group": "test-aurora-postgresql16-cluster",
    "target_instance_parameter_group": "test-aurora-postgresql16-instance",
}


def fleet(**fields: Any) -> FleetParameters:
    return FleetParameters.model_validate({"settings": SETTINGS, **fields})


def refusal(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        fleet(**fields)
    return one_line(caught.value)


def test_an_override_replaces_a_setting_for_its_cluster_only() -> None:
    params = fleet(clusters=["a", "b"], overrides={"b": {"switchover_timeout_seconds": 120}})
    assert params.for_cluster("a").switchover_timeout_seconds == 300
    assert params.for_cluster("b").switchover_timeout_seconds == 120
    assert params.for_cluster("b").target_engine_version == "16.2"


def test_clusters_and_tag_together_are_refused_naming_both() -> None:
    assert "either clusters (a list) or tag (key=value)" in refusal(clusters=["a"], tag="k=v")


def test_a_tag_without_a_value_is_refused_with_an_example() -> None:
    assert "tag: must look like key=value" in refusal(tag="fleet")


def test_an_invalid_override_names_the_cluster_and_the_field() -> None:
    message = refusal(clusters=["a", "b"], overrides={"b": {"switchover_timeout_seconds": 5}})
    assert "b: invalid parameters: switchover_timeout_seconds" in message


def test_an_override_of_the_cluster_name_is_refused() -> None:
    message = refusal(clusters=["a"], overrides={"a": {"cluster_identifier": "z"}})
    assert "overrides.a: cluster_identifier cannot be overridden" in message


def test_an_override_for_a_cluster_outside_the_list_is_refused() -> None:
    assert "overrides names c, which is not in clusters" in refusal(
        clusters=["a"], overrides={"c": {}}
    )
