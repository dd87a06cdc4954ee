"""Sending FA(3) invoices to KSeF and keeping the number and the receipt KSeF gives them.

Behind `KsefGateway` (send an XML and get KSeF's verdict; ask for an accepted invoice's
UPO), the real client is the `ksef-client` package speaking KSeF 2.0's API: authentication
with a KSeF token (encrypted with the Ministry's public key), an online session (the invoice
AES-encrypted, the key RSA-encrypted), the invoice's status polled until KSeF accepts it
(its KSeF number) or rejects it. The operator's machines reach the Ministry's service; the
test machines cannot, so tests run the same client against a local stand-in that speaks the
same HTTP API (tests/ksef_standin.py).

A document is sent once: an accepted submission is kept in ksef_submissions and a second
`send` answers it; a rejected one may be sent again after the cause is mended.

Once KSeF accepts an invoice it issues the UPO (urzędowe poświadczenie odbioru, its signed
receipt): fetched right after acceptance and kept with the submission, or fetched later
(`fetch_upo`, `bill ksef --upo`) when KSeF had not produced it yet. A UPO is kept only if
it names the invoice's KSeF number and the hash of the XML that was sent."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
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
from lxml import etree

from billing.errors import BillingError
from billing.ksef_state import upo_state
from billing.ksef_xml import KsefError
from core.env import EnvReader
from core.pg import Conn
from runtime.settings import SettingsError

PROCESSING = range(100, 200)  # KSeF's status codes of an invoice still being processed
ACCEPTED = 200
log = logging.getLogger("tollgate.billing")
FA3 = FormCode(system_code="FA (3)", schema_version="1-0E", value="FA")


UPO_NOT_YET = frozenset({404, 409, 425})  # KSeF has not produced the UPO yet


@dataclass(frozen=True, slots=True)
class Verdict:
    reference: str  # session/invoice reference numbers KSeF answered with
    ksef_number: str | None  # given when accepted
    code: int
    description: str
    upo: bytes | None = None  # KSeF's receipt, when it was ready before the send returned

    @property
    def accepted(self) -> bool:
        return self.code == ACCEPTED and self.ksef_number is not None


class KsefGateway(Protocol):
    async def send(self, xml: bytes) -> Verdict:
        """Send one FA(3) invoice and wait for KSeF's verdict on it."""

    async def upo(self, reference: str) -> bytes | None:
        """The UPO of an accepted invoice (`reference` as its Verdict gave it), None while
        KSeF has not produced it yet."""


@dataclass(frozen=True)
class KsefSettings:
    """TOLLGATE_KSEF_*: the API's base URL, the KSeF token and the seller's NIP (context)."""

    url: str = ""
    token: str = ""
    nip: str = ""
    poll_s: float = 2.0
    max_polls: int = 60
    upo_polls: int = 5  # tries for the UPO right after acceptance; later: fetch_upo
    verify_tls: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KsefSettings:
        env = os.environ if env is None else env
        url = env.get("TOLLGATE_KSEF_URL", "").strip()
        read = EnvReader("TOLLGATE_KSEF_", env)
        settings = cls(
            url=url,
            token=env.get("TOLLGATE_KSEF_TOKEN", ""),
            nip=env.get("TOLLGATE_KSEF_NIP", "").strip(),
            poll_s=read.get("POLL_S", float, cls.poll_s),
            upo_polls=read.get("UPO_POLLS", int, cls.upo_polls),
        )
        if settings.poll_s < 0 or settings.upo_polls < 1:
            raise SettingsError("TOLLGATE_KSEF_POLL_S", "POLL_S >= 0 and UPO_POLLS >= 1")
        if url and not (settings.token and settings.nip):
            raise SettingsError("TOLLGATE_KSEF_TOKEN", "TOKEN and NIP are required with the URL")
        return settings


class KsefClientGateway:
    """KSeF through ksef-client (KSeF 2.0 API)."""

    def __init__(self, settings: KsefSettings) -> None:
        self.settings = settings

    def _client(self) -> AsyncKsefClient:
        s = self.settings
        if not s.url:  # told when KSeF is needed: a kept UPO is read without it
            raise BillingError("TOLLGATE_KSEF_URL", "KSeF is not configured")
        return AsyncKsefClient(KsefClientOptions(base_url=s.url, verify_ssl=s.verify_tls))

    async def send(self, xml: bytes) -> Verdict:
        try:
            async with self._client() as client:
                return await self._send(client, xml)
        except (KsefApiError, KsefHttpError, OSError, RuntimeError) as e:
            raise KsefError("ksef", f"KSeF did not take the invoice: {e}") from None

    async def upo(self, reference: str) -> bytes | None:
        session, _, invoice = reference.partition("/")
        if not (session and invoice):
            raise KsefError("reference", f"not a session/invoice reference: {reference!r}")
        try:
            async with self._client() as client:
                access = await self._access(client)
                return await self._upo(client, session, invoice, access, tries=1)
        except (KsefApiError, KsefHttpError, OSError, RuntimeError) as e:
            raise KsefError("ksef", f"KSeF did not give the UPO: {e}") from None

    async def _access(self, client: AsyncKsefClient) -> str:
        s = self.settings
        certs = await client.security.get_public_key_certificates()
        auth = await AsyncAuthCoordinator(client.auth).authenticate_with_ksef_token(
            token=s.token,
            public_certificate=_cert(certs, "KsefTokenEncryption"),
            context_identifier_type="Nip",
            context_identifier_value=s.nip,
            poll_interval_seconds=s.poll_s,
            max_attempts=s.max_polls,
        )
        return str(auth.access_token)

    async def _upo(
        self, client: AsyncKsefClient, session: str, invoice: str, access: str, tries: int
    ) -> bytes | None:
        for attempt in range(tries):
            try:
                upo = await client.sessions.get_session_invoice_upo_by_ref(
                    session, invoice, access_token=access
                )
            except KsefHttpError as e:
                if e.status_code not in UPO_NOT_YET:
                    raise
            else:
                if upo:
                    return upo
            if attempt + 1 < tries:
                await asyncio.sleep(self.settings.poll_s)
        return None

    async def _send(self, client: AsyncKsefClient, xml: bytes) -> Verdict:
        s = self.settings
        access = await self._access(client)
        key_cert = _cert(
            await client.security.get_public_key_certificates(), "SymmetricKeyEncryption"
        )
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
                number = getattr(status, "ksef_number", None)
                upo = None
                if status.status.code == ACCEPTED and number:
                    upo = await self._upo(
                        client,
                        handle.reference_number,
                        sent.reference_number,
                        access,
                        tries=s.upo_polls,
                    )
                return Verdict(
                    reference, number, status.status.code, status.status.description, upo
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
    """Send a document's XML unless KSeF accepted it before; record the verdict (and the
    UPO, when KSeF gave it at once)."""
    row = await conn.fetchrow("select * from ksef_submissions where document_id = $1", document_id)
    if row is not None and row["status"] == "accepted":
        return {**_view(row), "sent": False}
    verdict = await gateway.send(xml)
    status = (
        "accepted" if verdict.accepted else "sent" if verdict.code in PROCESSING else "rejected"
    )
    digest = hashlib.sha256(xml).hexdigest()
    upo, upo_error = None, None
    if verdict.accepted and verdict.upo is not None:
        assert verdict.ksef_number is not None  # accepted
        try:
            upo = check_upo(verdict.upo, verdict.ksef_number, digest)
        except KsefError as e:  # KSeF took the invoice all the same: its number is kept
            upo_error = e.why
            log.warning("KSeF UPO of document %s refused: %s", document_id, e.why)
    saved = await conn.fetchrow(
        "insert into ksef_submissions (document_id, element_reference, ksef_number, status,"
        " detail, xml_sha256, sent_at, updated_at, upo, upo_at)"
        " values ($1,$2,$3,$4,$5,$6,$7,$7,$8,$9)"
        " on conflict (document_id) do update set element_reference = excluded.element_reference,"
        " ksef_number = excluded.ksef_number, status = excluded.status, detail = excluded.detail,"
        " xml_sha256 = excluded.xml_sha256, updated_at = excluded.updated_at,"
        " upo = excluded.upo, upo_at = excluded.upo_at returning *",
        document_id,
        verdict.reference,
        verdict.ksef_number,
        status,
        f"{verdict.code} {verdict.description}",
        digest,
        now,
        upo,
        None if upo is None else now,
    )
    assert saved is not None
    return {**_view(saved), "sent": True, **({"upo_error": upo_error} if upo_error else {})}


async def fetch_upo(
    conn: Conn, document_id: int, gateway: KsefGateway, now: datetime
) -> dict[str, Any]:
    """The UPO of a document KSeF accepted: the one kept, else asked of KSeF once (and
    kept). `upo` in the answer is 'pending' while KSeF has not produced it."""
    row = await conn.fetchrow("select * from ksef_submissions where document_id = $1", document_id)
    if row is None or row["status"] != "accepted":
        state = "not sent" if row is None else row["status"]
        raise KsefError("upo", f"KSeF has not accepted the document ({state}): no UPO yet")
    if row["upo"] is not None:
        return {**_view(row), "fetched": False}
    got = await gateway.upo(row["element_reference"])
    if got is None:
        return {**_view(row), "fetched": False}
    upo = check_upo(got, row["ksef_number"], row["xml_sha256"])
    saved = await conn.fetchrow(
        "update ksef_submissions set upo = $2, upo_at = $3, updated_at = $3"
        " where document_id = $1 and upo is null returning *",
        document_id,
        upo,
        now,
    )
    if saved is None:  # another fetch kept it first: that one stands
        saved = await conn.fetchrow(
            "select * from ksef_submissions where document_id = $1", document_id
        )
    assert saved is not None
    return {**_view(saved), "fetched": True}


def _upo_field(root: etree._Element, name: str) -> str:
    found = root.xpath(f"string(//*[local-name()='{name}'])")
    return str(found).strip()


def check_upo(upo: bytes, ksef_number: str, xml_sha256: str) -> str:
    """The UPO as text, after checking it is KSeF's receipt of this very invoice: its KSeF
    number, and the document hash (base64 SHA-256) of the XML that was sent."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(upo, parser)
    except etree.XMLSyntaxError as e:
        raise KsefError("upo", f"KSeF's UPO is not XML: {e.msg}") from None
    number = _upo_field(root, "NumerKSeFDokumentu")
    if number != ksef_number:
        raise KsefError("upo", f"the UPO is for {number or 'no KSeF number'}, not {ksef_number}")
    digest = _upo_field(root, "SkrotDokumentu")
    sent = base64.b64encode(bytes.fromhex(xml_sha256)).decode()
    if digest != sent:
        raise KsefError("upo", f"the UPO's document hash {digest!r} is not the sent XML's")
    return upo.decode("utf-8")


def _view(row: Any) -> dict[str, Any]:
    return {
        "status": row["status"],
        "ksef_number": row["ksef_number"],
        "reference": row["element_reference"],
        "detail": row["detail"],
        "upo": upo_state(row["status"], row["upo"] is not None),
    }
