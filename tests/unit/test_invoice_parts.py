"""The pieces of a legal invoice that need no database: VAT rate codes and totals per rate,
VAT rules by prefix, the amount in words, seller settings (NIP, IBAN)."""

from __future__ import annotations

import pytest

from billing.parties import PartyError, SellerSettings, valid_iban, valid_nip, valid_vat_id
from billing.pdf import money
from billing.settings import BillingSettings, parse_vat_rules
from billing.vat import RateTotal, rate_code, totals_by_rate
from billing.words import amount_in_words
from runtime.settings import SettingsError

GROSZ = 10_000
SELLER = {
    "TOLLGATE_SELLER_NAME": "Łączność Sp. z o.o.",
    "TOLLGATE_SELLER_ADDRESS": "ul. Źródlana 5|00-950 Warszawa",
    "TOLLGATE_SELLER_NIP": "526-000-12-46",
    "TOLLGATE_SELLER_IBAN": "PL61 1090 1014 0000 0712 1981 2874",
}


def test_rate_codes_have_one_spelling() -> None:
    assert [rate_code(t) for t in ("23", "23%", " 8 ", "5.50", "0", "ZW", "np")] == [
        "23",
        "23",
        "8",
        "5.5",
        "0",
        "zw",
        "np",
    ]
    for bad in ("", "23.456", "101", "-5", "n/a"):
        with pytest.raises(ValueError, match="VAT rate"):
            rate_code(bad)


def test_totals_are_split_once_per_rate_and_ordered_like_the_form() -> None:
    # three 23% lines of 0.01 each: split on their sum (0.03 -> VAT 0.01), not per line (0)
    lines = [
        ("np", 50 * GROSZ),
        ("23", GROSZ),
        ("zw", 7 * GROSZ),
        ("23", GROSZ),
        ("23", GROSZ),
        ("8", 108 * GROSZ),
    ]
    assert totals_by_rate(lines) == (
        RateTotal("23", 2 * GROSZ, GROSZ, 3 * GROSZ),
        RateTotal("8", 100 * GROSZ, 8 * GROSZ, 108 * GROSZ),
        RateTotal("zw", 7 * GROSZ, 0, 7 * GROSZ),
        RateTotal("np", 50 * GROSZ, 0, 50 * GROSZ),
    )
    # a credit note mirrors an invoice
    assert totals_by_rate([("23", -123 * GROSZ)]) == (
        RateTotal("23", -100 * GROSZ, -23 * GROSZ, -123 * GROSZ),
    )


def test_vat_rules_pick_the_longest_prefix() -> None:
    s = BillingSettings(vat_rules=parse_vat_rules("*=np, 48=23, 4870=zw"))
    assert s.rate_for_prefix("4860") == "23"
    assert s.rate_for_prefix("48701") == "zw"
    assert s.rate_for_prefix("4420") == "np"
    assert BillingSettings().rate_for_prefix("4420") == "23"
    with pytest.raises(SettingsError, match="TOLLGATE_BILLING_VAT_RULES"):
        parse_vat_rules("48:23")
    with pytest.raises(SettingsError, match="VAT rate"):
        parse_vat_rules("48=7x")


def test_amount_in_words() -> None:
    assert amount_in_words(123_450_000, "PLN") == (
        "sto dwadzieścia trzy złote, czterdzieści pięć groszy"
    )
    assert amount_in_words(-2 * 1_000_000, "PLN") == "dwa złote, zero groszy"
    assert amount_in_words(1_010_000, "CZK") == "jeden CZK 01/100"
    assert money(1_234_567_890_000) == "1 234 567,89"
    assert money(-10_000) == "-0,01"


def test_seller_from_env_checks_nip_and_iban() -> None:
    seller = SellerSettings.from_env(SELLER)
    assert seller is not None
    assert (seller.nip, seller.iban) == ("5260001246", "PL61109010140000071219812874")
    assert seller.address == ("ul. Źródlana 5", "00-950 Warszawa")
    assert SellerSettings.from_env({}) is None
    with pytest.raises(SettingsError, match="TOLLGATE_SELLER_IBAN"):
        SellerSettings.from_env({**SELLER, "TOLLGATE_SELLER_IBAN": "PL61109010140000071219812875"})
    with pytest.raises(SettingsError, match="TOLLGATE_SELLER_NIP"):
        SellerSettings.from_env({**SELLER, "TOLLGATE_SELLER_NIP": "5260001247"})
    with pytest.raises(SettingsError, match="TOLLGATE_SELLER_ADDRESS"):
        SellerSettings.from_env({k: v for k, v in SELLER.items() if "ADDRESS" not in k})
    env = {**SELLER, "TOLLGATE_BILLING_VAT_RULES": "1=np"}
    assert BillingSettings.from_env(env).seller == seller


def test_tax_ids() -> None:
    assert valid_nip("PL 526-000-12-46") == valid_nip("526 000 12 46") == "5260001246"
    assert valid_vat_id("DE 136,695,976") == "DE136695976"
    with pytest.raises(PartyError, match="nip: not a valid NIP"):
        valid_nip("1234567890")
    with pytest.raises(PartyError, match="iban"):
        valid_iban("DE00 0000")
