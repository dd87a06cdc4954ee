"""Tax identifiers: the Polish NIP and EU VAT ids, checked with python-stdnum (checksums and
each country's format), stored in their compact form."""

from __future__ import annotations

from stdnum.eu import vat
from stdnum.exceptions import ValidationError
from stdnum.pl import nip


class TaxIdError(ValueError):
    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def compact_nip(text: str) -> str:
    """'526-025-02-74' or 'PL5260250274' -> '5260250274'; a bad checksum is refused."""
    try:
        return str(nip.validate(text))
    except ValidationError as exc:
        raise TaxIdError("tax_id", f"not a valid NIP ({exc}): {text!r}") from None


def compact_vat(text: str) -> str:
    """An EU VAT id with its country prefix, e.g. 'DE 136 695 976' -> 'DE136695976'."""
    try:
        return str(vat.validate(text))
    except ValidationError as exc:
        raise TaxIdError("vat_id", f"not a valid EU VAT id ({exc}): {text!r}") from None


def format_nip(compact: str) -> str:
    return str(nip.format(compact))
