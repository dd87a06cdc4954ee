"""Sending FA(3) invoices to KSeF and keeping the number KSeF gives them.

Behind `KsefGateway` (one method: send an XML, get KSeF's verdict), the real client is the
`ksef-client` package speaking KSeF 2.0's API: authentication with a KSeF token (encrypted
with the Ministry's public key), an online session (the invoice AES-encrypted, the key
RSA-encrypted), the invoice's status polled until KSeF accepts it (its KSeF number) or
rejects it. These machines cannot reach the Ministry's service; tests run the same client
against a local stand-in that speaks the same HTTP API (tests/ksef_standin.py).

A document is sent once: an accepted submission is kept in ksef_submissions and a second
`send` answers it; a rejected one may be sent again after the cause is mended."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ksef_client.client import AsyncKsefClient
from ksef_client.config import KsefClientOptions
from ksef_client.exceptions import KsefApiError, KsefHttpError
from ksef_client.models import FormCode
from ksef_client.services.workflows import AsyncAuthCoordinator, AsyncOnlineSessionWorkflow

from billing.errors import BillingError
from billing.ksef_xml import KsefError
from core.pg import Conn
from runtime.settings import SettingsError

PROCESSING = range(100, 200)  # KSeF's status codes of an invoice still being processed
ACCEPTED = 200
FA3 = FormCode(system_code="FA (3)", schema_version="1-0E", value="FA")


@dataclass(frozen=True, slots=True)
class Verdict:
    reference: str  # session/invoice reference numbers KSeF answered with
    ksef_number: str | None  # given when accepted
    code: int
    description: str

    @property
    def accepted(self) -> bool:
        return self.code == ACCEPTED and self.ksef_number is not None


class KsefGateway(Protocol):
    async def send(self, xml: bytes) -> Verdict:
        """Send one FA(3) invoice and wait for KSeF's verdict on it."""


@dataclass(frozen=True)
class KsefSettings:
    """TOLLGATE_KSEF_*: the API's base URL, the KSeF token and the seller's NIP (context)."""

    url: str = ""
    token: str = ""
    nip: str = ""
    poll_s: float = 2.0
    max_polls: int = 60
    verify_tls: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KsefSettings:
        env = os.environ if env is None else env
        url = env.get("TOLLGATE_KSEF_URL", "").strip()
        settings = cls(
            url=url,
            token=env.get("TOLLGATE_KSEF_TOKEN", ""),
            nip=env.get("TOLLGATE_KSEF_NIP", "").strip(),
        )
        if url and not (settings.token and settings.nip):
            raise SettingsError("TOLLGATE_KSEF_TOKEN", "TOKEN and NIP are required with the URL")
        return settings


class KsefClientGateway:
    """KSeF through ksef-client (KSeF 2.0 API)."""

    def __init__(self, settings: KsefSettings) -> None:
        if not settings.url:
            raise BillingError("TOLLGATE_KSEF_URL", "KSeF is not configured")
        self.settings = settings

    async def send(self, xml: bytes) -> Verdict:
        s = self.settings
        options = KsefClientOptions(base_url=s.url, verify_ssl=s.verify_tls)
        try:
            async with AsyncKsefClient(options) as client:
                return await self._send(client, xml)
        except (KsefApiError, KsefHttpError, OSError, RuntimeError) as e:
            raise KsefError("ksef", f"KSeF did not take the invoice: {e}") from None

    async def _send(self, client: AsyncKsefClient, xml: bytes) -> Verdict:
        s = self.settings
        certs = await client.security.get_public_key_certificates()
        token_cert = _cert(certs, "KsefTokenEncryption")
        key_cert = _cert(certs, "SymmetricKeyEncryption")
        auth = await AsyncAuthCoordinator(client.auth).authenticate_with_ksef_token(
            token=s.token,
            public_certificate=token_cert,
            context_identifier_type="Nip",
            context_identifier_value=s.nip,
            poll_interval_seconds=s.poll_s,
            max_attempts=s.max_polls,
        )
        access = auth.access_token
        sessions = AsyncOnlineSessionWorkflow(client.sessions)
        handle = await sessions.open_session(
            form_code=FA3, public_certificate=key_cert, access_token=access
        )
        sent = await sessions.send_invoice(
            session_reference_number=handle.reference_number,
            invoice_xml=xml,
            encryption_data=handle.encryption_data,
            access_token=access,
        )
        await sessions.close_session(handle.reference_number, access)
        reference = f"{handle.reference_number}/{sent.reference_number}"
        for _ in range(s.max_polls):
            status = await client.sessions.get_session_invoice_status(
                handle.reference_number, sent.reference_number, access_token=access
            )
            if status.status.code not in PROCESSING:
                return Verdict(
                    reference,
                    getattr(status, "ksef_number", None),
                    status.status.code,
                    status.status.description,
                )
            await asyncio.sleep(s.poll_s)
        return Verdict(reference, None, 100, "still processing")


def _cert(certs: list[Any], usage: str) -> str:
    for c in certs:
        if usage in [getattr(u, "value", u) for u in c.usage]:
            return str(c.certificate)
    raise KsefError("ksef", f"KSeF published no certificate for {usage}")


async def submit(
    conn: Conn, document_id: int, xml: bytes, gateway: KsefGateway, now: datetime
) -> dict[str, Any]:
    """Send a document's XML unless KSeF accepted it before; record the verdict."""
    row = await conn.fetchrow("select * from ksef_submissions where document_id = $1", document_id)
    if row is not None and row["status"] == "accepted":
        return {**_view(row), "sent": False}
    verdict = await gateway.send(xml)
    status = (
        "accepted" if verdict.accepted else "sent" if verdict.code in PROCESSING else "rejected"
    )
    saved = await conn.fetchrow(
        "insert into ksef_submissions (document_id, element_reference, ksef_number, status,"
        " detail, xml_sha256, sent_at, updated_at) values ($1,$2,$3,$4,$5,$6,$7,$7)"
        " on conflict (document_id) do update set element_reference = excluded.element_reference,"
        " ksef_number = excluded.ksef_number, status = excluded.status, detail = excluded.detail,"
        " xml_sha256 = excluded.xml_sha256, updated_at = excluded.updated_at returning *",
        document_id,
        verdict.reference,
        verdict.ksef_number,
        status,
        f"{verdict.code} {verdict.description}",
        hashlib.sha256(xml).hexdigest(),
        now,
    )
    assert saved is not None
    return {**_view(saved), "sent": True}


def _view(row: Any) -> dict[str, Any]:
    return {
        "status": row["status"],
        "ksef_number": row["ksef_number"],
        "reference": row["element_reference"],
        "detail": row["detail"],
    }
