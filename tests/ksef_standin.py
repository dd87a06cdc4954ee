"""A local stand-in for KSeF 2.0's API, for tests: the endpoints tollgate's client uses, with
the same paths, JSON shapes and cryptography (its own RSA key in a self-signed certificate,
the KSeF token RSA-OAEP encrypted, the invoice AES-256-CBC encrypted with an RSA-OAEP
encrypted key), checking each invoice against the FA(3) schema as KSeF does. An invoice
that fails the schema is rejected (450); a good one gets a KSeF number."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from ksef_client.documents.fa3 import FA3XmlValidationError, validate_fa3_xml_xsd

OAEP = asym.OAEP(mgf=asym.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _certificate(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KSeF stand-in")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


@dataclass
class Standin:
    token: str  # the KSeF token the taxpayer holds
    nip: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    sessions: dict[str, bytes] = field(default_factory=dict)  # reference -> AES key
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[bytes] = field(default_factory=list)  # decrypted invoices, in order
    access: set[str] = field(default_factory=set)
    upo_after: int = 0  # UPO requests answered 404 (not produced yet) before the UPO is there
    upo_asked: int = 0
    upo_hash: str = ""  # a wrong hash in the UPO (a receipt of another document), when set

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/v2/security/public-key-certificates", self.certificates)
        r.add_post("/v2/auth/challenge", self.challenge)
        r.add_post("/v2/auth/ksef-token", self.ksef_token)
        r.add_get("/v2/auth/{ref}", self.auth_status)
        r.add_post("/v2/auth/token/redeem", self.redeem)
        r.add_post("/v2/sessions/online", self.open_session)
        r.add_post("/v2/sessions/online/{ref}/invoices", self.send_invoice)
        r.add_post("/v2/sessions/online/{ref}/close", self.close)
        r.add_get("/v2/sessions/{ref}/invoices/{inv}", self.invoice_status)
        r.add_get("/v2/sessions/{ref}/invoices/{inv}/upo", self.invoice_upo)
        return app

    def _authorized(self, request: web.Request) -> None:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.access:
            raise web.HTTPUnauthorized(text='{"status": 401}', content_type="application/json")

    async def certificates(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        cert = _certificate(self.key)
        return web.json_response(
            [
                {
                    "certificate": cert,
                    "certificateId": f"c-{usage}",
                    "publicKeyId": f"k-{usage}",
                    "usage": [usage],
                    "validFrom": (now - timedelta(days=1)).isoformat(),
                    "validTo": (now + timedelta(days=30)).isoformat(),
                }
                for usage in ("KsefTokenEncryption", "SymmetricKeyEncryption")
            ]
        )

    async def challenge(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        self.challenge_ms = int(now.timestamp() * 1000)
        return web.json_response(
            {
                "challenge": "20250101-CR-" + secrets.token_hex(10).upper(),
                "timestamp": now.isoformat(),
                "timestampMs": self.challenge_ms,
                "clientIp": request.remote or "127.0.0.1",
            }
        )

    async def ksef_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        plain = self.key.decrypt(base64.b64decode(body["encryptedToken"]), OAEP).decode()
        token, _, stamp = plain.partition("|")
        ctx = body.get("contextIdentifier", {})
        if token != self.token or ctx.get("value") != self.nip or int(stamp) != self.challenge_ms:
            return web.json_response({"status": 401, "detail": "bad token"}, status=401)
        self.auth_token = "auth-" + secrets.token_hex(8)
        return web.json_response(
            {
                "referenceNumber": "20250101-AU-" + secrets.token_hex(5).upper(),
                "authenticationToken": {"token": self.auth_token, "validUntil": _later()},
            },
            status=202,
        )

    async def auth_status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "startDate": datetime.now(UTC).isoformat(),
                "authenticationMethod": "Token",
                "authenticationMethodInfo": {
                    "category": "Token",
                    "code": "token.ksef",
                    "displayName": "Token KSeF",
                },
                "status": {"code": 200, "description": "Uwierzytelnianie zakończone sukcesem"},
            }
        )

    async def redeem(self, request: web.Request) -> web.Response:
        access = "access-" + secrets.token_hex(8)
        self.access.add(access)
        return web.json_response(
            {
                "accessToken": {"token": access, "validUntil": _later()},
                "refreshToken": {
                    "token": "refresh-" + secrets.token_hex(8),
                    "validUntil": _later(),
                },
            }
        )

    async def open_session(self, request: web.Request) -> web.Response:
        self._authorized(request)
        body = await request.json()
        assert body["formCode"] == {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}
        enc = body["encryption"]
        ref = "20250101-SO-" + secrets.token_hex(5).upper()
        self.sessions[ref] = self.key.decrypt(
            base64.b64decode(enc["encryptedSymmetricKey"]), OAEP
        ) + base64.b64decode(enc["initializationVector"])
        return web.json_response({"referenceNumber": ref, "validUntil": _later()}, status=201)

    async def send_invoice(self, request: web.Request) -> web.Response:
        self._authorized(request)
        secret = self.sessions[request.match_info["ref"]]
        body = await request.json()
        encrypted = base64.b64decode(body["encryptedInvoiceContent"])
        decryptor = Cipher(algorithms.AES(secret[:32]), modes.CBC(secret[32:])).decryptor()
        padded = decryptor.update(encrypted) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        xml = unpadder.update(padded) + unpadder.finalize()
        digest = base64.b64encode(hashlib.sha256(xml).digest()).decode()
        assert digest == body["invoiceHash"] and len(xml) == body["invoiceSize"]
        self.received.append(xml)
        inv = "20250101-EE-" + secrets.token_hex(5).upper()
        try:
            validate_fa3_xml_xsd(xml)
            status = {"code": 200, "description": "Sukces"}
            number = f"{self.nip}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(6).upper()}-AF"
        except FA3XmlValidationError as e:
            status = {"code": 450, "description": "Błąd weryfikacji semantyki", "details": [str(e)]}
            number = None
        self.invoices[inv] = {
            "ordinalNumber": len(self.invoices) + 1,
            "referenceNumber": inv,
            "invoiceHash": digest,
            "invoicingDate": datetime.now(UTC).isoformat(),
            "status": status,
            **({"ksefNumber": number} if number else {}),
        }
        return web.json_response({"referenceNumber": inv}, status=202)

    async def close(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return web.Response(status=204)

    async def invoice_status(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return web.json_response(self.invoices[request.match_info["inv"]])

    async def invoice_upo(self, request: web.Request) -> web.Response:
        """KSeF's receipt of an accepted invoice, as its UPO (v4-2) names it; the signature
        KSeF adds is left out (nothing here checks it)."""
        self._authorized(request)
        invoice = self.invoices.get(request.match_info["inv"])
        self.upo_asked += 1
        if invoice is None or "ksefNumber" not in invoice or self.upo_asked <= self.upo_after:
            return web.json_response({"status": 404, "detail": "UPO not available"}, status=404)
        upo = f"""<?xml version="1.0" encoding="UTF-8"?>
<Potwierdzenie xmlns="http://upo.schematy.mf.gov.pl/KSeF/v4-2">
 <NazwaPodmiotuPrzyjmujacego>Ministerstwo Finansów</NazwaPodmiotuPrzyjmujacego>
 <NumerReferencyjnySesji>{request.match_info["ref"]}</NumerReferencyjnySesji>
 <NazwaStrukturyLogicznej>schemat_FA(3)_v1-0E.xsd</NazwaStrukturyLogicznej>
 <KodFormularza>FA (3)</KodFormularza>
 <Dokument>
  <NipSprzedawcy>{self.nip}</NipSprzedawcy>
  <NumerKSeFDokumentu>{invoice["ksefNumber"]}</NumerKSeFDokumentu>
  <DataPrzeslaniaDokumentu>{invoice["invoicingDate"]}</DataPrzeslaniaDokumentu>
  <SkrotDokumentu>{self.upo_hash or invoice["invoiceHash"]}</SkrotDokumentu>
  <TrybWysylki>Online</TrybWysylki>
 </Dokument>
</Potwierdzenie>
"""
        return web.Response(body=upo.encode(), content_type="application/xml")


def _later() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()
