"""The portal's server side on the real Redis and PostgreSQL: sign-in with a password
(argon2id, lockout), support and admin operators, the audit log, local-day filters and the
CDR CSV in both dialects."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from panel_api.logins import LoginLocked, LoginPolicy, LoginRole, LoginStore, WrongCredentials
from panel_api.tokens import Role, TokenStore
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory
from tests.panel import bearer, cdr, store_cdrs, token

pytestmark = pytest.mark.panel_db

PASSWORD = "correct horse battery"
# local midnights in Warsaw, winter (CET, +01:00) and summer (CEST, +02:00)
NOV_1 = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
DEC_1 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
JUL_1 = datetime(2026, 6, 30, 22, 0, tzinfo=UTC)


def logins(svc: Services, **policy: int) -> LoginStore:
    assert svc.pool is not None
    return LoginStore(svc.pool, LoginPolicy(**policy))


async def test_password_is_stored_as_argon2id_only(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    await logins(svc).set("Alice", LoginRole.CUSTOMER, PASSWORD, a.id)
    assert svc.pool is not None
    row = await svc.pool.fetchrow("select * from panel_logins")
    assert row is not None and row["login"] == "alice"  # logins are case-insensitive
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]


@pytest.mark.parametrize(
    ("login", "role", "password", "account", "field"),
    [
        ("al", LoginRole.CUSTOMER, PASSWORD, True, "login"),
        ("a b c", LoginRole.CUSTOMER, PASSWORD, True, "login"),
        ("alice", LoginRole.CUSTOMER, "short", True, "password"),
        ("alice", LoginRole.CUSTOMER, PASSWORD, False, "account"),
        ("ops", LoginRole.ADMIN, PASSWORD, True, "account"),
    ],
)
async def test_bad_logins_are_refused_naming_the_field(
    svc: Services,
    make_account: AccountFactory,
    login: str,
    role: LoginRole,
    password: str,
    account: bool,
    field: str,
) -> None:
    from panel_api.logins import LoginError

    a = await make_account()
    with pytest.raises(LoginError) as caught:
        await logins(svc).set(login, role, password, a.id if account else None)
    assert caught.value.field == field


async def test_lockout_after_failures_in_a_row_then_unlocked_by_time(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    store = logins(svc, failures=3, lock_s=600)
    assert svc.pool is not None
    tokens = TokenStore(svc.pool)
    await store.set("alice", LoginRole.CUSTOMER, PASSWORD, a.id)
    t0 = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)  # any instant: time is an argument
    for n in range(2):
        with pytest.raises(WrongCredentials):
            await store.sign_in("alice", "wrong password", t0 + timedelta(seconds=n), tokens)
    # a success resets the count: two more failures do not lock
    session = await store.sign_in("ALICE", PASSWORD, t0 + timedelta(seconds=3), tokens)
    assert session.token.account == a.id and session.token.login == "alice"
    for n in range(3):
        with pytest.raises(WrongCredentials):
            await store.sign_in("alice", "wrong password", t0 + timedelta(seconds=10 + n), tokens)
    # locked: even the right password is refused, with the time left
    with pytest.raises(LoginLocked) as locked:
        await store.sign_in("alice", PASSWORD, t0 + timedelta(seconds=20), tokens)
    assert 0 < locked.value.retry_after_s <= 600
    with pytest.raises(LoginLocked):
        await store.sign_in("alice", PASSWORD, t0 + timedelta(seconds=611), tokens)
    later = await store.sign_in("alice", PASSWORD, t0 + timedelta(seconds=613), tokens)
    assert later.token.expires_at == t0 + timedelta(seconds=613 + LoginPolicy().session_s)
    # an unknown login is refused exactly like a wrong password
    with pytest.raises(WrongCredentials):
        await store.sign_in("nobody", PASSWORD, t0, tokens)


async def test_sign_in_over_http_then_sign_out(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(balance=5_000_000)
    await logins(svc).set("alice", LoginRole.CUSTOMER, PASSWORD, a.id)
    client = await panel(login_failures=2)
    wrong = await client.post("/api/v1/session", json={"login": "alice", "password": "x"})
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "SIGN_IN_REFUSED"
    missing = await client.post("/api/v1/session", json={"login": "alice"})
    assert missing.status == 400
    assert (await missing.json())["error"]["details"]["field"] == "password"
    r = await client.post("/api/v1/session", json={"login": "alice", "password": PASSWORD})
    assert r.status == 201
    session = await r.json()
    assert session["role"] == "customer" and session["account"] == a.id
    assert session["token"].startswith("tgp_") and session["expires_at"]
    balance = await client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(session["token"]))
    assert balance.status == 200 and (await balance.json())["balance"] == "5.0000"
    out = await client.post("/api/v1/session/end", headers=bearer(session["token"]))
    assert out.status == 200 and (await out.json())["revoked_at"]
    again = await client.get("/api/v1/me", headers=bearer(session["token"]))
    assert again.status == 401
    # two more failures lock the login: 429 with Retry-After, even for the right password
    for _ in range(2):
        await client.post("/api/v1/session", json={"login": "alice", "password": "nope"})
    locked = await client.post("/api/v1/session", json={"login": "alice", "password": PASSWORD})
    assert locked.status == 429
    assert (await locked.json())["error"]["code"] == "LOGIN_LOCKED"
    assert int(locked.headers["Retry-After"]) > 0


async def test_support_reads_admin_changes_and_the_audit_log_has_both(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1_000_000)
    store = logins(svc)
    await store.set("sue", LoginRole.SUPPORT, PASSWORD)
    await store.set("adam", LoginRole.ADMIN, PASSWORD)
    customer = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()

    async def sign_in(login: str) -> str:
        r = await client.post("/api/v1/session", json={"login": login, "password": PASSWORD})
        body = await r.json()
        assert r.status == 201 and body["role"] == "operator"
        assert body["read_only"] is (login == "sue")
        return str(body["token"])

    sue, adam = await sign_in("sue"), await sign_in("adam")
    read = await client.get(f"/api/v1/accounts/{a.id}", headers=bearer(sue))
    assert read.status == 200
    refused = await client.post(
        f"/api/v1/accounts/{a.id}/topups", json={"amount": "5.00"}, headers=bearer(sue)
    )
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "READ_ONLY"
    for path in (f"/api/v1/accounts/{a.id}/suspend", f"/api/v1/accounts/{a.id}"):
        r = await client.post(path, json={}, headers=bearer(sue))
        assert r.status in (403, 405), path
    topped = await client.post(
        f"/api/v1/accounts/{a.id}/topups",
        json={"amount": "5.00", "reference": "pay-1"},
        headers=bearer(adam),
    )
    assert topped.status == 201
    suspended = await client.post(
        f"/api/v1/accounts/{a.id}/suspend", json={"reason": "checking"}, headers=bearer(adam)
    )
    assert suspended.status == 200
    # a customer's own reads are not operator actions: not in the log
    assert (
        await client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(customer))
    ).status == 200
    log = await client.get(f"/api/v1/audit?account={a.id}", headers=bearer(sue))
    assert log.status == 200
    items = (await log.json())["items"]
    by = [(i["actor"], i["action"], i["status"]) for i in reversed(items)]
    assert by == [
        ("sue", "get_account", 200),
        ("sue", "topup", 403),
        ("sue", "set_status:suspend", 403),
        ("adam", "topup", 201),
        ("adam", "set_status:suspend", 200),
    ], by
    top = next(i for i in items if i["action"] == "topup" and i["status"] == 201)
    assert top["before"]["balance"]["balance"] == "1.0000"
    assert top["after"]["balance"]["balance"] == "6.0000"
    assert top["detail"]["body"] == {"amount": "5.00", "reference": "pay-1"}
    sus = next(i for i in items if i["action"] == "set_status:suspend" and i["status"] == 200)
    assert (sus["before"]["status"], sus["after"]["status"]) == ("active", "suspended")
    assert all(i["account"] == a.id for i in items)
    read_entry = next(i for i in items if i["action"] == "get_account")
    assert read_entry["read_only"] is True and read_entry["before"] is None


async def test_days_are_the_account_s_local_days_around_midnight(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(timezone="Europe/Warsaw")
    half = timedelta(minutes=30)
    calls = [
        cdr(a.id, 1, NOV_1 - half),  # 31 Oct 23:30 local
        cdr(a.id, 2, NOV_1 + half),  # 1 Nov 00:30 local (still 31 Oct in UTC)
        cdr(a.id, 3, DEC_1 - half),  # 30 Nov 23:30 local
        cdr(a.id, 4, DEC_1 + half),  # 1 Dec 00:30 local (still 30 Nov in UTC)
        cdr(a.id, 5, JUL_1 + half),  # 1 Jul 00:30 summer time
    ]
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()

    async def ids(**params: str) -> list[str]:
        r = await client.get(f"/api/v1/accounts/{a.id}/cdrs", params=params, headers=bearer(secret))
        assert r.status == 200
        return sorted(c["call_id"].rsplit("-", 1)[1] for c in (await r.json())["items"])

    assert await ids(**{"from": "2026-11-01", "to": "2026-12-01"}) == ["2", "3"]
    r = await client.get(
        f"/api/v1/accounts/{a.id}/cdrs/totals",
        params={"from": "2026-11-01", "to": "2026-12-01"},
        headers=bearer(secret),
    )
    assert r.status == 200
    sums = await r.json()
    assert sums["total"] == {"calls": 2, "answered": 2, "billsec": 120, "cost": "0.3800"}
    assert sums["by_class"] == {"mobile": sums["total"]}
    assert sums["filter"]["timezone"] == "Europe/Warsaw"
    assert await ids(**{"from": "2026-07-01", "to": "2026-07-02"}) == ["5"]
    # an explicit instant is taken as given
    assert await ids(**{"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}) == [
        "3",
        "4",
    ]


async def test_csv_in_both_dialects_local_times_and_the_range_s_file_name(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(timezone="Europe/Warsaw")
    start = NOV_1 + timedelta(minutes=30)  # 1 Nov 00:30:00 local
    calls = [
        cdr(a.id, 1, start.replace(microsecond=123456), cost=336_894_900),
        cdr(a.id, 2, start + timedelta(hours=1), caller="+cmd|' /C calc'!A0", rate_name="Łódź"),
    ]
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)
    days = {"from": "2026-11-01", "to": "2026-12-01"}  # 1-30 November, both inclusive
    client = await panel()
    url = f"/api/v1/accounts/{a.id}/cdrs.csv"
    std = await client.get(url, params=days, headers=bearer(secret))
    excel = await client.get(url, params={**days, "format": "excel-pl"}, headers=bearer(secret))
    bad = await client.get(url, params={**days, "format": "xls"}, headers=bearer(secret))
    assert bad.status == 400 and (await bad.json())["error"]["details"]["parameter"] == "format"
    for r in (std, excel):
        assert r.status == 200
        name = f"cdrs-{a.id}-20261101-20261130.csv"
        assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    std_raw, excel_raw = await std.read(), await excel.read()
    assert not std_raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(std_raw.decode(), newline="")))
    assert rows[0]["started_at"] == "2026-11-01T00:30:00+01:00"
    assert rows[0]["cost"] == "336.8949"
    assert rows[0]["number"] == "+48601234567"  # an E.164 number is left as it is
    assert rows[1]["caller"] == "'+cmd|' /C calc'!A0"  # a formula is still defused
    assert rows[1]["destination"] == "Łódź"
    assert std_raw.count(b"\r\n") == 3

    assert excel_raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8, not cp1250
    text = excel_raw.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("call_id;started_at;answered_at;")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0]["started_at"] == "2026-11-01 00:30:00"
    assert rows[0]["answered_at"] == "2026-11-01 00:30:05"
    assert rows[0]["cost"] == "336,8949"
    assert rows[1]["started_at"] == "2026-11-01 01:30:00"
    assert rows[1]["caller"] == "'+cmd|' /C calc'!A0"
    assert rows[1]["destination"] == "Łódź"


@pytest.mark.parametrize("dialect", ["standard", "excel-pl"])
async def test_bill_listing_csv_is_the_panel_s_export_byte_for_byte(
    svc: Services,
    panel: PanelFactory,
    make_account: AccountFactory,
    capsys: pytest.CaptureFixture[str],
    dialect: str,
) -> None:
    """One format: the monthly listing and the download of the same (answered) calls."""
    from tests.integration.test_billing import cli

    a = await make_account(timezone="Europe/Warsaw")
    calls = [
        cdr(a.id, 1, NOV_1 + timedelta(minutes=30, microseconds=250), cost=1_234_500),
        cdr(a.id, 2, NOV_1 + timedelta(days=3), caller='=HYPERLINK("x")', rate_name='a "b"; c'),
        cdr(a.id, 3, DEC_1 - timedelta(minutes=5), cost=190_010),
    ]
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)
    listed = await cli(
        svc, capsys, "bill", "listing", "--account", a.id, "--period", "2026-11", "--csv",
        "--format", dialect,
    )  # fmt: skip
    client = await panel()
    r = await client.get(
        f"/api/v1/accounts/{a.id}/cdrs.csv",
        params={"from": "2026-11-01", "to": "2026-12-01", "format": dialect},
        headers=bearer(secret),
    )
    downloaded = (await r.read()).decode()
    st = await client.get(
        f"/api/v1/accounts/{a.id}/statements/2026-11.csv",
        params={"format": dialect},
        headers=bearer(secret),
    )
    assert st.status == 200
    name = f"statement-{a.id}-2026-11.csv"
    assert st.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    statement = (await st.read()).decode()
    # the JSON statement is still where it was
    js = await client.get(f"/api/v1/accounts/{a.id}/statements/2026-11", headers=bearer(secret))
    full = await js.json()
    assert js.status == 200 and full["total"]["count"] == 3 and len(full["calls"]) == 3
    # the portal's totals: the same statement without its calls
    r = await client.get(
        f"/api/v1/accounts/{a.id}/statements/2026-11",
        params={"calls": "false"},
        headers=bearer(secret),
    )
    assert r.status == 200
    assert await r.json() == {**full, "calls": []}
    assert listed == downloaded == statement
    assert listed.count("\r\n") == 4


async def test_an_operator_read_that_cannot_be_audited_is_refused(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1_000_000)
    operator = await token(svc, Role.OPERATOR)
    customer = await token(svc, Role.CUSTOMER, a.id)
    assert svc.pool is not None
    await svc.pool.execute("alter table operator_audit rename to operator_audit_away")
    try:
        client = await panel()
        read = await client.get(f"/api/v1/accounts/{a.id}", headers=bearer(operator))
        assert read.status == 503
        assert (await read.json())["error"]["code"] == "AUDIT_UNAVAILABLE"
        # a change has happened by then: it stands (and the failure is logged loudly)
        topped = await client.post(
            f"/api/v1/accounts/{a.id}/topups", json={"amount": "1.00"}, headers=bearer(operator)
        )
        assert topped.status == 201
        # customers' own reads are not operator reads: unaffected
        mine = await client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(customer))
        assert mine.status == 200 and (await mine.json())["balance"] == "2.0000"
    finally:
        await svc.pool.execute("alter table operator_audit_away rename to operator_audit")
