"""Codes and names that come from outside and end up in keys or documents.

Currencies are checked against ISO 4217 as the `pycountry` package ships it (the ISO data
Debian's iso-codes carries); deck names become Redis keys and file names, so they are
identifiers, never paths."""

from __future__ import annotations

import re

import pycountry

# Letters, digits, '_', '-', '.' (not first): never '/', never '..' as a path component.
DECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


def is_currency(code: str) -> bool:
    """An active ISO 4217 alphabetic code ('PLN', 'EUR'), exactly as written."""
    return (
        len(code) == 3
        and code.isascii()
        and code.isupper()
        and pycountry.currencies.get(alpha_3=code) is not None
    )


def is_deck_name(name: str) -> bool:
    return DECK_NAME.fullmatch(name) is not None and ".." not in name
