"""Password reset by e-mail on the real PostgreSQL and Redis, the mail through a real SMTP
server (aiosmtpd): the same answer for a login that exists and one that does not, a
single-use link that expires (instants pinned), kept hashed, limited per login and hour;
the new password works, the old one and every open session do not; the audit log has it."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from notify.mail_metrics import MailMetrics
from notify.mail_settings import SmtpSettings
from notify.sender import deliver_due
from panel_api.logins import LoginError, LoginRole, LoginStore, WrongCredentials
from panel_api.password_reset import SCRUBBED, PasswordResets, ResetPolicy, ResetRefused, digest
from panel_api.tokens import TokenStore
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory
from tests.integration.test_documents import customer_for
from tests.panel import bearer
from tests.smtp import Sink
from tollgate.cli import build_parser

pytestmark = pytest.mark.panel_db

PASSWORD = "correct horse battery"
NEW = "a much better passphrase"
URL = "https://panel.operator.example"
T0 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # any instant: time is an argument
LINK = re.compile(r"https://panel\.operator\.example/#reset=([A-Za-z0-9_-]{43})")


async def mailed(svc: Services, port: int, sink: Sink, now: datetime) -> list[tuple[str, str]]:
    """Send the outbox to the sink: (recipient, body) of each new message."""
    assert svc.pool is not None
    smtp = SmtpSettings(host="127.0.0.1", port=port, sender="panel@operator.example")
    before = len(sink.messages)
    await deliver_due(svc.pool, smtp, MailMetrics(CollectorRegistry()), now)
    out = []
    for _, rcpt, msg in sink.messages[before:]:
        body = msg.get_body(("plain",))
        assert body is not None
        out.append((rcpt[0], str(body.get_content())))
    return out


def secret_in(body: str) -> str:
    found = LINK.search(body)
    assert found, body
    return found.group(1)


async def test_a_reset_by_e_mail_sets_the_password_once_and_ends_every_session(
    svc: Services, make_account: AccountFactory, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    assert svc.pool is not None
    a = await make_account()
    await customer_for(svc, a.id, email="Jan.Kowalski@example.pl", language="pl")
    logins, tokens = LoginStore(svc.pool), TokenStore(svc.pool)
    await logins.set("alice", LoginRole.CUSTOMER, PASSWORD, a.id)  # no e-mail of its own
    resets = PasswordResets(svc.pool, ResetPolicy(ttl_s=3600, per_hour=3))
    open_session = await logins.sign_in("alice", PASSWORD, T0, tokens)

    # by the customer's e-mail (any case); a login or address nobody has: nothing, no error
    assert [i.login for i in await resets.request("jan.kowalski@EXAMPLE.pl", URL, "en", T0)] == [
        "alice"
    ]
    assert await resets.request("nobody@example.pl", URL, "en", T0) == []
    assert await resets.request("nobody", URL, "en", T0) == []
    [(to, body)] = await mailed(svc, port, sink, T0)
    assert to == "Jan.Kowalski@example.pl"
    assert "zmianę hasła do loginu alice" in body  # the customer's language, not the asker's
    # an hour later in Warsaw time, the night summer time ends (01:30 UTC is 02:30 CET)
    assert "25.10.2026 02:30 (CET)" in body
    secret = secret_in(body)
    stored = await svc.pool.fetchrow("select * from panel_password_resets")
    assert stored is not None and stored["token_hash"] == digest(secret)
    assert secret.encode() not in bytes(stored["token_hash"])

    with pytest.raises(ResetRefused) as unknown:
        await resets.complete("x" * 43, NEW, T0)
    assert unknown.value.code == "RESET_LINK_UNKNOWN"
    done = await resets.complete(secret, NEW, T0 + timedelta(minutes=5))
    assert (done.login, done.account, done.sessions_ended) == ("alice", a.id, 1)
    assert await tokens.live(open_session.token.id, T0 + timedelta(minutes=6)) is None
    with pytest.raises(WrongCredentials):
        await logins.sign_in("alice", PASSWORD, T0 + timedelta(minutes=6), tokens)
    assert (await logins.sign_in("alice", NEW, T0 + timedelta(minutes=6), tokens)).token
    with pytest.raises(ResetRefused) as again:
        await resets.complete(secret, "yet another passphrase", T0 + timedelta(minutes=7))
    assert again.value.code == "RESET_LINK_USED"
    # the used link's secret is gone from the sent message's copy in the outbox
    assert await svc.pool.fetchval("select body from mail_outbox") == SCRUBBED


async def test_links_expire_are_replaced_and_are_limited_per_hour(
    svc: Services, make_account: AccountFactory, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    assert svc.pool is not None
    await LoginStore(svc.pool).set("ops", LoginRole.ADMIN, PASSWORD, email="ops@operator.example")
    resets = PasswordResets(svc.pool, ResetPolicy(ttl_s=600, per_hour=2))
    await resets.request("OPS", URL, "en", T0)
    [(to, first)] = await mailed(svc, port, sink, T0)
    assert to == "ops@operator.example" and "reset the password of the login ops" in first
    with pytest.raises(ResetRefused) as expired:
        await resets.complete(secret_in(first), NEW, T0 + timedelta(seconds=600))
    assert expired.value.code == "RESET_LINK_EXPIRED"
    # a second link replaces the first; a third within the hour is not sent
    await resets.request("ops@operator.example", URL, "en", T0 + timedelta(minutes=20))
    assert await resets.request("ops", URL, "en", T0 + timedelta(minutes=40)) == []
    [(_, second)] = await mailed(svc, port, sink, T0 + timedelta(minutes=40))
    with pytest.raises(ResetRefused) as replaced:
        await resets.complete(secret_in(first), NEW, T0 + timedelta(minutes=21))
    assert replaced.value.code == "RESET_LINK_USED"
    # an hour after the first, one may be sent again
    assert len(await resets.request("ops", URL, "en", T0 + timedelta(minutes=61))) == 1
    with pytest.raises(ResetRefused):  # replaced by the newest
        await resets.complete(secret_in(second), NEW, T0 + timedelta(minutes=62))


async def test_reset_over_http_answers_alike_and_is_audited(
    svc: Services, panel: PanelFactory, make_account: AccountFactory, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    assert svc.pool is not None
    a = await make_account()
    await LoginStore(svc.pool).set(
        "bob", LoginRole.CUSTOMER, PASSWORD, a.id, email="bob@example.pl"
    )
    off = await panel()
    r = await off.post("/api/v1/session/reset", json={"login": "bob"})
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "RESET_NOT_CONFIGURED"
    client = await panel(public_url=URL, login_failures=2)
    answers = []
    for who in ("bob", "nobody-at-all", "bob@example.pl"):
        r = await client.post("/api/v1/session/reset", json={"login": who, "language": "en"})
        answers.append((r.status, await r.json()))
    assert answers == [(202, {"status": "accepted"})] * 3
    bad = await client.post("/api/v1/session/reset", json={"language": "en"})
    assert bad.status == 400
    assert (await bad.json())["error"]["details"]["field"] == "login"
    # lock bob out first: the reset lifts the lock
    for _ in range(2):
        await client.post("/api/v1/session", json={"login": "bob", "password": "wrong one!"})
    session = await client.post("/api/v1/session", json={"login": "bob", "password": PASSWORD})
    assert session.status == 429
    messages = await mailed(svc, port, sink, datetime.now(UTC))
    assert [to for to, _ in messages] == ["bob@example.pl"] * 2
    first, secret = secret_in(messages[0][1]), secret_in(messages[1][1])
    replaced = await client.post(
        "/api/v1/session/reset/confirm", json={"token": first, "password": NEW}
    )
    assert (await replaced.json())["error"]["code"] == "RESET_LINK_USED"
    short = await client.post(
        "/api/v1/session/reset/confirm", json={"token": secret, "password": "short"}
    )
    assert short.status == 400
    assert (await short.json())["error"]["details"]["field"] == "password"
    unknown = await client.post(
        "/api/v1/session/reset/confirm", json={"token": "nope", "password": NEW}
    )
    assert (await unknown.json())["error"]["code"] == "RESET_LINK_UNKNOWN"
    ok = await client.post("/api/v1/session/reset/confirm", json={"token": secret, "password": NEW})
    assert ok.status == 200, await ok.text()
    assert await ok.json() == {"login": "bob", "sessions_ended": 0}
    signed = await client.post("/api/v1/session", json={"login": "bob", "password": NEW})
    assert signed.status == 201
    me = await client.get("/api/v1/me", headers=bearer((await signed.json())["token"]))
    assert me.status == 200
    rows = await svc.pool.fetch(
        "select actor, action, status, account, detail from operator_audit order by id"
    )
    assert [(r["actor"], r["action"], r["status"], r["account"]) for r in rows] == [
        ("bob", "password_reset_request", 202, a.id),
        ("bob", "password_reset_request", 202, a.id),
        ("bob", "password_reset", 200, a.id),
    ]
    assert all("address" in r["detail"] for r in rows)


async def cli(svc: Services, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    args = build_parser().parse_args(argv)
    capsys.readouterr()
    await args.run(svc, args)
    return json.loads(capsys.readouterr().out)


async def test_login_set_keeps_an_e_mail_until_another_is_given(
    svc: Services,
    make_account: AccountFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = await make_account()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    shown = await cli(
        svc, capsys, "login", "set", "carol", "--role", "customer", "--account", a.id,
        "--email", "carol@example.pl",
    )  # fmt: skip
    assert shown["email"] == "carol@example.pl"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{NEW}\n"))
    again = await cli(svc, capsys, "login", "set", "carol", "--role", "customer", "--account", a.id)
    assert again["email"] == "carol@example.pl"  # a new password keeps the address
    assert svc.pool is not None
    with pytest.raises(LoginError) as bad:
        await LoginStore(svc.pool).set("carol", LoginRole.CUSTOMER, NEW, a.id, "not an address")
    assert bad.value.field == "email"
