"""notify's pure parts: money in texts, thresholds setting, backoff, the webhook signature."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from core.env import SettingsError
from notify.errors import NotifyError
from notify.settings import NotifySettings
from notify.templates import money, render
from notify.webhook import signature


def test_money_is_cut_to_the_grosz_in_each_languages_convention() -> None:
    assert money(9_999_999, "PLN", "pl") == "9,99 PLN"
    assert money(9_999_999, "PLN", "en") == "9.99 PLN"
    assert money(-1, "PLN", "en") == "-0.01 PLN"  # below zero never reads as zero
    assert money(1_234_567_890_000, "PLN", "pl") == "1\u00a0234\u00a0567,89 PLN"


def test_thresholds_setting() -> None:
    s = NotifySettings.from_env({"TOLLGATE_NOTIFY_THRESHOLDS": "0, 20.5,10"})
    assert s.thresholds == (20_500_000, 10_000_000, 0)
    with pytest.raises(SettingsError) as err:
        NotifySettings.from_env({"TOLLGATE_NOTIFY_THRESHOLDS": "10,abc"})
    assert err.value.variable == "TOLLGATE_NOTIFY_THRESHOLDS"
    with pytest.raises(SettingsError):
        NotifySettings.from_env({"TOLLGATE_NOTIFY_LANGUAGE": "de"})


def test_backoff_doubles_up_to_the_cap() -> None:
    s = NotifySettings(retry_base_s=60, retry_max_s=300)
    assert [s.backoff_s(n) for n in range(1, 6)] == [60, 120, 240, 300, 300]


def test_signature_is_hmac_of_time_and_body() -> None:
    body = b'{"a": 1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k", 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_render_names_what_is_missing() -> None:
    with pytest.raises(NotifyError) as err:
        render("low_balance", "en", {"account": "a", "currency": "PLN"})
    assert err.value.field == "data"
    subject, _ = render(
        "balance_negative", "pl", {"account": "a", "currency": "PLN", "balance_micro": -5}
    )
    assert subject == "Ujemne saldo konta a"
