"""Where a document stands in KSeF, for listings (`bill show`, `bill invoices`, the panel):
its submission's status, the KSeF number, and whether KSeF's receipt (UPO) is kept.

Read-only and free of the KSeF client library, so listings do not load it."""

from __future__ import annotations

from typing import Any

from core.pg import Conn


def upo_state(status: str, kept: bool) -> str | None:
    """'received' (kept), 'pending' (accepted, not produced yet) or None (not accepted)."""
    return "received" if kept else "pending" if status == "accepted" else None


def ksef_view(row: Any) -> dict[str, Any]:
    return {
        "status": row["status"],
        "ksef_number": row["ksef_number"],
        "upo": upo_state(row["status"], row["has_upo"]),
        "upo_at": row["upo_at"].isoformat() if row["upo_at"] else None,
    }


async def ksef_states(conn: Conn, document_ids: list[int]) -> dict[int, dict[str, Any]]:
    """document id -> its KSeF state, for the documents that were sent."""
    rows = await conn.fetch(
        "select document_id, status, ksef_number, upo is not null as has_upo, upo_at"
        " from ksef_submissions where document_id = any($1::bigint[])",
        document_ids,
    )
    return {r["document_id"]: ksef_view(r) for r in rows}
