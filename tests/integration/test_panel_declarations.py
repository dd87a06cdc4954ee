"""The document and the checks come from one declaration: every number and bound the
document states is what the running panel enforces, through the guarded plain-number
parser, with a 400 naming the parameter or field. Cases are read from the document, so a
declared parameter cannot escape them."""

from __future__ import annotations

from typing import Any

import pytest

from panel_api.app import document
from panel_api.tokens import Role
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory
from tests.panel import bearer, token

pytestmark = pytest.mark.panel_db  # the panel tests' database


# not plain ASCII digits: an exponent, a separator, another script's digits, a double sign
NOT_PLAIN = ("1e2", "1_0", "\u0661", "--5", "+-1")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in document()["paths"].items()
        for method, op in ops.items()
    ]


def _query(op: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        p for p in op.get("parameters", []) if p["in"] == "query" and p["schema"]["type"] == kind
    ]


def _url(path: str, account: str) -> str:
    return path.replace("{account}", account).replace("{call_id}", "c-1")


def _others(op: dict[str, Any], name: str, account: str) -> dict[str, str]:
    """Valid values of the operation's other required query parameters, so that the one
    under test is the only thing wrong with the request."""
    samples = {"account": account, "to": "+48221234567", "period": "2026-11"}
    needed = [
        p["name"]
        for p in op.get("parameters", [])
        if p["in"] == "query" and p.get("required") and p["name"] != name
    ]
    missing = [n for n in needed if n not in samples]
    assert not missing, f"add a valid sample for required parameter(s) {missing}"
    return {n: samples[n] for n in needed}


async def _refused(response: Any, name: str, code: str, where: str = "parameter") -> None:
    assert response.status == 400, (name, await response.text())
    error = (await response.json())["error"]
    assert error["code"] == code and error["details"][where] == name, error


async def test_every_documented_integer_parameter_is_parsed_plainly_within_its_bounds(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    cases = [(m, p, o, q) for m, p, o in _operations() for q in _query(o, "integer")]
    assert len(cases) >= 4  # entries, limit (x2), findings' limit
    client = await panel(burst=100_000)  # many requests; the rate limit is tested elsewhere
    for method, path, operation, param in cases:
        name, schema = param["name"], param["schema"]
        url, others = _url(path, a.id), _others(operation, param["name"], a.id)
        for bad in (*NOT_PLAIN, str(schema["maximum"] + 1), str(schema["minimum"] - 1)):
            r = await client.request(method, url, params={**others, name: bad}, headers=op)
            await _refused(r, name, "INVALID_PARAMETER")
        good = {**others, name: str(schema["maximum"])}
        r = await client.request(method, url, params=good, headers=op)
        assert r.status == 200, (path, name, await r.text())


async def test_every_documented_text_parameter_is_held_to_its_bound(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    cases = [
        (m, p, o, q)
        for m, p, o in _operations()
        for q in _query(o, "string")
        if "maxLength" in q["schema"]
    ]
    assert {q["name"] for _, _, _, q in cases} >= {"account", "cursor"}
    client = await panel(burst=100_000)  # many requests; the rate limit is tested elsewhere
    for method, path, operation, param in cases:
        name, bound = param["name"], param["schema"]["maxLength"]
        others = _others(operation, name, a.id)
        for bad in ("x" * (bound + 1), "a\x00b"):
            r = await client.request(
                method, _url(path, a.id), params={**others, name: bad}, headers=op
            )
            await _refused(r, name, "INVALID_PARAMETER")


async def test_every_documented_money_field_goes_through_the_plain_parser(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    """Money in bodies is a decimal string: anything else is INVALID_AMOUNT naming the field."""
    a = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    schemas = document()["components"]["schemas"]
    targets = {
        "AccountCreate": ("POST", "/api/v1/accounts", {"id": "fresh-1"}),
        "AccountUpdate": ("PATCH", f"/api/v1/accounts/{a.id}", {}),
        "Topup": ("POST", f"/api/v1/accounts/{a.id}/topups", {}),
    }
    fields = [
        (target, name)
        for target in targets
        for name, prop in schemas[target]["properties"].items()
        if prop.get("pattern", "").endswith(r"(\.[0-9]{1,6})?$")  # a decimal string
    ]
    assert {f for _, f in fields} == {"credit_limit", "daily_cap", "amount"}
    client = await panel(burst=100_000)  # many requests; the rate limit is tested elsewhere
    for target, name in fields:
        method, url, base = targets[target]
        for bad in ("1e3", "1_000", "\u0661", "1e999999", "12.3456789"):
            r = await client.request(method, url, json={**base, name: bad}, headers=op)
            await _refused(r, name, "INVALID_AMOUNT", "field")
        r = await client.request(method, url, json={**base, name: 12}, headers=op)
        await _refused(r, name, "INVALID_FIELD", "field")


async def test_access_is_decided_before_the_input_is_looked_at(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    """A customer asking about another account gets 404 whatever it sends, and an operator
    endpoint answers a customer 403 before reading the body."""
    a, b = await make_account(), await make_account()
    customer = bearer(await token(svc, Role.CUSTOMER, a.id))
    client = await panel(burst=100_000)  # many requests; the rate limit is tested elsewhere
    r = await client.get(
        f"/api/v1/accounts/{b.id}/balance", params={"entries": "1e2"}, headers=customer
    )
    assert r.status == 404
    r = await client.get(f"/api/v1/accounts/{b.id}/statements/2026-13", headers=customer)
    assert r.status == 404
    r = await client.post(
        f"/api/v1/accounts/{a.id}/topups", json={"amount": "1e3"}, headers=customer
    )
    assert r.status == 403
    r = await client.get(
        f"/api/v1/accounts/{a.id}/balance", params={"entries": "1e2"}, headers=customer
    )
    await _refused(r, "entries", "INVALID_PARAMETER")
