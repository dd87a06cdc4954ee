"""TOLLGATE_REDIS_WAIT_REPLICAS / TOLLGATE_REDIS_WAIT_TIMEOUT_MS reach the ledger's settings."""

from __future__ import annotations

import pytest

from core.env import SettingsError
from rating.durable import Durability, NotDurable
from runtime.settings import Settings


def test_waiting_is_off_by_default() -> None:
    assert not Settings.from_env({}).ledger.durability.on


def test_the_settings_turn_waiting_on() -> None:
    env = {"TOLLGATE_REDIS_WAIT_REPLICAS": "1", "TOLLGATE_REDIS_WAIT_TIMEOUT_MS": "250"}
    assert Settings.from_env(env).ledger.durability == Durability(1, 250)


@pytest.mark.parametrize(
    "env",
    [{"TOLLGATE_REDIS_WAIT_REPLICAS": "-1"}, {"TOLLGATE_REDIS_WAIT_TIMEOUT_MS": "0"}],
)
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_fewer_acknowledgements_than_asked_are_not_done() -> None:
    Durability(2, 100).check("finish", 2)
    with pytest.raises(NotDurable, match="finish: 1 of 2 replica"):
        Durability(2, 100).check("finish", 1)
