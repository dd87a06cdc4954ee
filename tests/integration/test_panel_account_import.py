"""The panel's bulk onboarding: the accounts CSV uploaded by an operator, on the real
PostgreSQL and Redis. Errors name each line and column and nothing is written; a valid file
creates what is missing and leaves what exists; every upload is in the audit log."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest

from panel_api.tokens import Role, TokenStore
from rating.deck import Deck
from rating.ledger import CallRequest
from runtime.services import Services
from tests.conftest import PanelFactory
from tests.panel import bearer, token

pytestmark = pytest.mark.panel_db

HEADER = "id,kind,deck,credit_limit,max_calls,daily_cap,allow_premium,blocked_prefixes\n"
PATH = "/api/v1/account-imports"


def form(body: str, header: str = HEADER, filename: str = "onboard.csv") -> aiohttp.FormData:
    data = aiohttp.FormData()
    raw = (header + body).encode()
    data.add_field("accounts", raw, filename=filename, content_type="text/csv")
    return data


async def audited(svc: Services) -> list[dict[str, object]]:
    assert svc.pool is not None
    rows = await svc.pool.fetch(
        "select status, action, detail from operator_audit where path = $1 order by id", PATH
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def test_an_upload_creates_the_accounts_and_again_changes_nothing(
    svc: Services, panel: PanelFactory, retail: Deck
) -> None:
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    rows = "".join(f"up-{n},prepaid,retail,,3,20.00,no,4870;4890\n" for n in range(40))
    rows += "up-biz,postpaid,retail,250.00,0,,yes,\n"
    r = await client.post(PATH, data=form(rows), headers=op)
    assert r.status == 201, await r.text()
    assert await r.json() == {"rows": 41, "created": 41, "unchanged": 0, "mirrored": 41}

    a = await svc.accounts.get("up-7")
    assert (a.deck, a.max_calls, a.daily_cap) == ("retail", 3, 20_000_000)
    assert a.blocked_prefixes == ("4870", "4890")
    grant = await svc.ledger.authorize(CallRequest("up-biz", "pi-1", "0601234567"))
    assert grant.decision.value == "ALLOW"  # in Redis: a postpaid account calls on credit

    await svc.accounts.update("up-3", max_calls=9)  # changed since: the file does not win
    more = rows + "up-new,prepaid,retail,,,,,\n"
    again = await client.post(PATH, data=form(more), headers=op)
    assert again.status == 201, await again.text()
    assert await again.json() == {"rows": 42, "created": 1, "unchanged": 41, "mirrored": 1}
    assert (await svc.accounts.get("up-3")).max_calls == 9
    same = await client.post(PATH, data=form(more), headers=op)
    assert same.status == 200 and (await same.json())["created"] == 0

    entries = await audited(svc)
    assert [e["status"] for e in entries] == [201, 201, 200]
    note = entries[1]["detail"]["note"]  # type: ignore[index]
    assert note["file"] == "onboard.csv" and note["created_ids"] == ["up-new"]
    assert note["sha256"] == hashlib.sha256((HEADER + more).encode()).hexdigest()
    assert (note["created"], note["unchanged"]) == (1, 41)


async def test_errors_name_line_and_column_and_nothing_is_written(
    svc: Services, panel: PanelFactory, retail: Deck
) -> None:
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel()
    body = (
        "ok-1,prepaid,retail,,,,,\n"
        "ok-2,prepaid,retail,12.1234567,,,,\n"
        "ok-3,weird,retail,,,,,\n"
        "ok-1,prepaid,retail,,,,,\n"
        "ok-4,prepaid\n"
        "ok-5,prepaid,nosuch,,,,,\n"
    )
    r = await client.post(PATH, data=form(body), headers=op)
    assert r.status == 422, await r.text()
    error = (await r.json())["error"]
    assert error["code"] == "IMPORT_INVALID"
    found = [(e["line"], e["field"]) for e in error["details"]["errors"]]
    assert found == [(3, "credit_limit"), (4, "kind"), (5, "id"), (6, None)]
    assert "onboard.csv:5: id 'ok-1' repeats line 2" in error["message"]
    # the deck is checked against the database once the lines themselves are right
    r = await client.post(PATH, data=form("ok-1,prepaid,retail,,,,,\nok-5,prepaid,nosuch,,,,,\n"),
                          headers=op)  # fmt: skip
    assert r.status == 422
    assert [(e["line"], e["field"]) for e in (await r.json())["error"]["details"]["errors"]] == [
        (3, "deck")
    ]
    r = await client.post(PATH, data=form("x,1\n", header="id,colour\n"), headers=op)
    assert r.status == 422
    assert (await r.json())["error"]["details"]["errors"][0]["field"] == "colour"
    r = await client.post(PATH, data=form("nul-1,prepaid\x00,retail,,,,,\n"), headers=op)
    assert r.status == 422
    assert (await r.json())["error"]["details"]["errors"] == [
        {"line": 2, "field": None, "message": "contains a NUL byte"}
    ]
    assert svc.pool is not None
    assert await svc.pool.fetchval("select count(*) from accounts") == 0
    assert not await svc.redis.keys(f"{svc.settings.keyspace.prefix}*acct*")
    assert [e["status"] for e in await audited(svc)] == [422, 422, 422, 422]


async def test_the_upload_is_limited_in_size_and_form(
    svc: Services, panel: PanelFactory, retail: Deck
) -> None:
    op = bearer(await token(svc, Role.OPERATOR))
    client = await panel(max_upload_bytes=4096)
    big = "".join(f"big-{n:05d},prepaid,retail,,,,,\n" for n in range(200))  # ~6 kB
    r = await client.post(PATH, data=form(big), headers=op)
    assert r.status == 413, await r.text()
    assert (await r.json())["error"]["details"]["limit_bytes"] == 4096
    r = await client.post(PATH, data=b"id\nx-1\n", headers={**op, "Content-Type": "text/csv"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "UNSUPPORTED_MEDIA"
    empty = aiohttp.FormData()
    empty.add_field("other", b"x", filename="other.csv")  # multipart, without the file
    r = await client.post(PATH, data=empty, headers=op)
    assert r.status == 400 and (await r.json())["error"]["details"]["field"] == "accounts"
    assert svc.pool is not None
    _, secret = await TokenStore(svc.pool).create(Role.OPERATOR, read_only=True)
    r = await client.post(PATH, data=form("ro-1,prepaid,retail,,,,,\n"), headers=bearer(secret))
    assert r.status == 403
    assert await svc.pool.fetchval("select count(*) from accounts") == 0
