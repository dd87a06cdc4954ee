"""Splitting a gross amount into net and VAT, exactly.

Rule: VAT = gross x rate / (100% + rate), computed exactly (a fraction of micro-units) and
rounded once, half away from zero, to the currency's minor unit (2 decimals: 1 grosz);
net = gross - VAT. So net + VAT == gross always, and a credit note of -X splits as the
mirror image of an invoice of X.

Documents are in grosze: every line's gross is rounded half away from zero to the grosz
(`to_minor`), the document's gross is the sum of its lines, and VAT is computed once per
rate on that sum (all lines of a document carry the operator's one rate) — the "from gross"
method for prices that include VAT. The ledger keeps micro-units; the sub-grosz difference
between a document and the ledger amounts behind it is booked as a rounding entry."""

from __future__ import annotations

from dataclasses import dataclass

from rating.money import quantum

BASIS = 10_000  # rates are in basis points: 23% = 2300


@dataclass(frozen=True, slots=True)
class VatSplit:
    gross: int
    net: int
    vat: int
    rate_bp: int


def to_minor(micro: int, decimals: int = 2) -> int:
    """`micro` rounded half away from zero to the currency's minor unit (a grosz).

    What `round_micro(Fraction(abs(micro)), decimals, HALF_UP)` gives, in integers: a
    whole number of micro-units needs no fraction, and a bill run calls this for every line
    of every document it issues."""
    q = quantum(decimals)
    whole, rest = divmod(abs(micro), q)
    rounded = (whole + (1 if 2 * rest >= q else 0)) * q
    return rounded if micro >= 0 else -rounded


def split_gross(gross: int, rate_bp: int, decimals: int = 2) -> VatSplit:
    if not 0 <= rate_bp <= BASIS:
        raise ValueError(f"VAT rate must be 0..10000 basis points, got {rate_bp}")
    # round_micro(Fraction(|gross| x rate, 100% + rate), HALF_UP) in integers: a bill run
    # splits every document it issues
    q = quantum(decimals)
    divisor = (BASIS + rate_bp) * q
    whole, rest = divmod(abs(gross) * rate_bp, divisor)
    vat = (whole + (1 if 2 * rest >= divisor else 0)) * q * (1 if gross >= 0 else -1)
    return VatSplit(gross, gross - vat, vat, rate_bp)


# A line's VAT rate as printed and as KSeF knows it: a percentage ("23", "8", "5", "0") or
# "zw" (exempt) or "np" (outside the scope of Polish VAT, e.g. some international calls).
NO_VAT = frozenset({"zw", "np"})


def rate_code(text: str) -> str:
    """A rate code in its one spelling ('23', '5.5', 'zw', 'np'); ValueError names it."""
    code = text.strip().lower().removesuffix("%")
    if code in NO_VAT:
        return code
    try:
        bp = _percent_bp(code)
    except ValueError:
        raise ValueError(f"VAT rate must be a percentage, 'zw' or 'np', got {text!r}") from None
    return code_of_bp(bp)


def code_of_bp(rate_bp: int) -> str:
    return f"{rate_bp // 100}" if rate_bp % 100 == 0 else f"{rate_bp / 100:g}"


def bp_of(code: str) -> int:
    """Basis points of a rate code; zw and np carry no VAT (0)."""
    return 0 if code in NO_VAT else _percent_bp(code)


def _percent_bp(code: str) -> int:
    whole, _, frac = code.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 2:
        raise ValueError(code)
    bp = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
    if not 0 <= bp <= BASIS:
        raise ValueError(code)
    return bp


@dataclass(frozen=True, slots=True)
class RateTotal:
    """A document's total at one rate: the sum of its lines' gross, split once."""

    code: str
    net: int
    vat: int
    gross: int

    def as_dict(self) -> dict[str, int | str]:
        return {"rate": self.code, "net": self.net, "vat": self.vat, "gross": self.gross}


def totals_by_rate(grosses: list[tuple[str, int]], decimals: int = 2) -> tuple[RateTotal, ...]:
    """Per-rate totals of (rate code, gross in micro-units already rounded to grosze):
    VAT is computed once per rate on the rate's sum, as the from-gross method requires."""
    sums: dict[str, int] = {}
    for code, gross in grosses:
        sums[code] = sums.get(code, 0) + gross
    out = []
    for code in sorted(sums, key=_rate_order):
        split = split_gross(sums[code], bp_of(code), decimals)
        out.append(RateTotal(code, split.net, split.vat, split.gross))
    return tuple(out)


def _rate_order(code: str) -> tuple[int, int]:
    """Highest rate first, then 0, zw, np: the order of the official form's boxes."""
    if code in NO_VAT:
        return (1, 0 if code == "zw" else 1)
    return (0, -bp_of(code))
