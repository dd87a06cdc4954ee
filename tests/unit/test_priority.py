"""TOLLGATE_NICE: the CPU priority of serve (the calls' path)."""

from __future__ import annotations

import os

import pytest

from core.env import SettingsError
from core.priority import PrioritySettings, apply_priority


def test_unset_or_empty_keeps_the_inherited_priority() -> None:
    assert PrioritySettings.from_env({}).nice is None
    assert PrioritySettings.from_env({"TOLLGATE_NICE": ""}).nice is None
    assert apply_priority(PrioritySettings()) is None


@pytest.mark.parametrize("raw", ["-21", "20", "high", "1.5"])
def test_bad_values_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        PrioritySettings.from_env({"TOLLGATE_NICE": raw})
    assert caught.value.variable == "TOLLGATE_NICE"


def test_applies_a_value_and_reports_the_one_in_force() -> None:
    current = os.getpriority(os.PRIO_PROCESS, 0)
    settings = PrioritySettings.from_env({"TOLLGATE_NICE": str(current)})
    assert settings.nice == current
    assert apply_priority(settings) == current  # the same value needs no privilege
