"""The OpenAPI 3 document of the panel, served at /openapi.json.

Kept next to the handlers and checked against them by a schemathesis run in the tests:
every documented status, body and header is what the implementation sends."""

from __future__ import annotations

from typing import Any

from abuse.detectors import DETECTORS
from abuse.findings import Status
from panel_api.cdr_query import FIELDS
from rating.account_store import ENTRY_KINDS
from rating.accounts import ACCOUNT_FIELDS
from rating.numbers import NumberClass

JSON = "application/json"
PERIOD_PATTERN = r"^(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4,6}$", "example": "12.3400"}
SIGNED_MONEY_IN = {"type": "string", "pattern": r"^-?[0-9]{1,10}(\.[0-9]{1,6})?$"}
MONEY_IN = {"type": "string", "pattern": r"^[0-9]{1,9}(\.[0-9]{1,6})?$", "example": "20.00"}
MONEY2 = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2,6}$", "example": "12.34"}
TIME = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
NULLABLE_TIME = {**TIME, "nullable": True}
TEXT = {"type": "string", "maxLength": 1024}
COUNT = {"type": "integer", "minimum": 0, "maximum": 1_000_000}

MESSAGES = {
    400: "Bad request: a parameter or field is invalid (details name it)",
    401: "No token, or an unknown or revoked one",
    403: "The token's role may not do this",
    404: "Not found (a customer asking for another account gets this too)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "The rate deck is invalid (details name the file and line)",
    429: "Rate limited (requests, failed authentications or downloads): retry after Retry-After",
    502: "Asterisk refused or could not be reached",
    503: "Busy, or Redis or PostgreSQL is unreachable: retry after Retry-After",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": MESSAGES[status],
            "content": {JSON: {"schema": ref("Error")}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "required": True,
                    "description": "Seconds to wait",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
            }
        out[str(status)] = response
    return out


AUTH = (400, 401, 404, 429, 503)  # what any authenticated request may get
OPERATOR = (*AUTH, 403)


def operation(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    tags: list[str],
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": tags,
        "responses": responses,
    }
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = body
    if public:
        out["security"] = []
    return out


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


ACCOUNT = path("account", {"type": "string", "pattern": ACCOUNT_PATTERN})
PERIOD = [
    query("from", TIME, "Calls that started at or after this (default: 31 days before 'to')"),
    query("to", TIME, "Calls that started before this (default: now)"),
    query("class", {"type": "string", "enum": [c.value for c in NumberClass]}, "Number class"),
    query(
        "number",
        {"type": "string", "pattern": r"^\+?[0-9]{1,15}$"},
        "Digits the called number (E.164) contains",
    ),
]


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


CDR_TYPES: dict[str, dict[str, Any]] = {
    "started_at": TIME,
    "answered_at": NULLABLE_TIME,
    "ended_at": TIME,
    "billsec": {"type": "integer", "minimum": 0},
    "cost": MONEY,
}


def schemas() -> dict[str, Any]:
    balance = obj(
        [
            "account",
            "status",
            "kind",
            "currency",
            "balance",
            "reserved",
            "credit_limit",
            "available",
            "open_calls",
        ],
        account={"type": "string"},
        status={"type": "string", "enum": ["active", "suspended", "closed"]},
        kind={"type": "string", "enum": ["prepaid", "postpaid"]},
        currency={"type": "string"},
        balance=MONEY,
        reserved=MONEY,
        credit_limit=MONEY,
        available=MONEY,
        open_calls={"type": "integer", "minimum": 0},
        entries={"type": "array", "items": ref("LedgerEntry")},
    )
    account_fields: dict[str, Any] = {
        "deck": {"type": "string", "nullable": True, "maxLength": 200},
        "credit_limit": MONEY_IN,
        "daily_cap": MONEY_IN,
        "max_calls": COUNT,
        "cps": COUNT,
        "allow_premium": {"type": "boolean"},
        "allow_high_risk": {"type": "boolean"},
        "blocked_prefixes": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^\+?[0-9]{1,15}$"},
        },
    }
    return {
        "Error": obj(
            ["error"],
            error=obj(
                ["code", "message", "details"],
                code={"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                message={"type": "string"},
                details={"type": "object"},
            ),
        ),
        "Token": obj(
            ["id", "role", "account", "label", "created_at"],
            id={"type": "string"},
            role={"type": "string", "enum": ["customer", "operator"]},
            account={"type": "string", "nullable": True},
            label={"type": "string"},
            created_at=TIME,
            last_used_at=NULLABLE_TIME,
            revoked_at=NULLABLE_TIME,
            expires_at=NULLABLE_TIME,
            rotated_from={"type": "string", "nullable": True},
        ),
        "LedgerEntry": obj(
            ["seq", "kind", "amount", "reference", "note", "created_at"],
            seq={"type": "integer"},
            kind={"type": "string", "enum": list(ENTRY_KINDS)},
            amount=MONEY,
            reference={"type": "string", "nullable": True},
            note={"type": "string"},
            created_at=TIME,
        ),
        "Balance": balance,
        "Cdr": obj(
            [name for name, _ in FIELDS],
            **{name: CDR_TYPES.get(name, {"type": "string"}) for name, _ in FIELDS},
        ),
        "CdrFilter": obj(
            ["from", "to", "class", "number"],
            **{
                "from": TIME,
                "to": TIME,
                "class": {"type": "string", "nullable": True},
                "number": {"type": "string", "nullable": True},
            },
        ),
        "CdrPage": obj(
            ["filter", "items", "next_cursor"],
            filter=ref("CdrFilter"),
            items={"type": "array", "items": ref("Cdr")},
            next_cursor={"type": "string", "nullable": True},
        ),
        "Export": obj(
            ["url", "expires_in_s", "filter"],
            url={"type": "string"},
            expires_in_s={"type": "integer"},
            filter=ref("CdrFilter"),
        ),
        "Account": obj(
            list(ACCOUNT_FIELDS),
            id={"type": "string"},
            kind={"type": "string", "enum": ["prepaid", "postpaid"]},
            status={"type": "string", "enum": ["active", "suspended", "closed"]},
            currency={"type": "string"},
            country={"type": "string"},
            timezone={"type": "string"},
            deck={"type": "string", "nullable": True},
            credit_limit=MONEY,
            max_calls={"type": "integer"},
            cps={"type": "integer"},
            daily_cap=MONEY,
            allow_premium={"type": "boolean"},
            allow_high_risk={"type": "boolean"},
            blocked_prefixes={"type": "array", "items": {"type": "string"}},
            invoice_overdue={"type": "boolean"},
        ),
        "AccountWithBalance": {
            "allOf": [ref("Account"), obj(["balance"], balance=balance)],
        },
        "AccountCreate": obj(
            ["id"],
            id={"type": "string", "pattern": ACCOUNT_PATTERN},
            kind={"type": "string", "enum": ["prepaid", "postpaid"]},
            currency={"type": "string", "pattern": "^[A-Z]{3}$"},
            country={"type": "string", "pattern": "^[A-Za-z]{2}$"},
            timezone={"type": "string", "maxLength": 64},
            **account_fields,
        ),
        "AccountUpdate": {
            **obj([], **account_fields, invoice_overdue={"type": "boolean"}),
            "minProperties": 1,
        },
        "StatusChange": obj([], reason=TEXT),
        "Topup": obj(
            ["amount"],
            amount={**SIGNED_MONEY_IN, "description": "Decimal; negative only for adjustments"},
            kind={"type": "string", "enum": list(ENTRY_KINDS)},
            reference={**TEXT, "description": "External id: repeating it adds nothing"},
            note=TEXT,
        ),
        "TopupResult": obj(
            ["entry", "created", "balance"],
            entry=ref("LedgerEntry"),
            created={"type": "boolean"},
            balance=ref("Balance"),
        ),
        "DeckUpload": obj(
            ["name", "currency", "rates"],
            name={"type": "string", "maxLength": 100},
            currency={"type": "string", "pattern": "^[A-Z]{3}$"},
            timezone={"type": "string", "maxLength": 64},
            decimals={"type": "string", "pattern": "^[0-6]$"},
            rounding={"type": "string", "enum": ["up", "half-up", "down"]},
            bands={"type": "string", "description": 'JSON: {"day": ["mon-fri 08:00-18:00"]}'},
            rates={"type": "string", "format": "binary", "description": "The rates CSV"},
        ),
        "DeckResult": obj(
            ["name", "version", "created", "rows", "prefixes", "current"],
            name={"type": "string"},
            version={"type": "integer"},
            created={"type": "boolean"},
            rows={"type": "integer"},
            prefixes={"type": "integer"},
            current={"type": "boolean"},
        ),
        "DeckVersion": obj(
            ["name", "version", "currency", "imported_at", "source", "current", "rows"],
            name={"type": "string"},
            version={"type": "integer"},
            currency={"type": "string"},
            imported_at=TIME,
            source={"type": "string"},
            current={"type": "boolean"},
            rows={"type": "integer"},
        ),
        "Totals": obj(
            ["count", "billsec", "cost"],
            name={"type": "string"},
            count={"type": "integer"},
            billsec={"type": "integer"},
            cost=MONEY,
        ),
        "Statement": obj(
            [
                "account",
                "period",
                "timezone",
                "currency",
                "total",
                "by_class",
                "by_prefix",
                "calls",
            ],
            account={"type": "string"},
            period={"type": "string"},
            timezone={"type": "string"},
            currency={"type": "string"},
            total=ref("Totals"),
            by_class={"type": "object", "additionalProperties": ref("Totals")},
            by_prefix={"type": "object", "additionalProperties": ref("Totals")},
            calls={
                "type": "array",
                "items": obj(
                    [
                        "call_id",
                        "started_at",
                        "caller",
                        "number",
                        "class",
                        "prefix",
                        "destination",
                        "billsec",
                        "cost",
                    ],
                    call_id={"type": "string"},
                    started_at=TIME,
                    caller={"type": "string"},
                    number={"type": "string"},
                    **{"class": {"type": "string"}},
                    prefix={"type": "string"},
                    destination={"type": "string"},
                    billsec={"type": "integer"},
                    cost=MONEY,
                ),
            },
        ),
        "Document": obj(
            [
                "number",
                "kind",
                "account",
                "period",
                "corrects",
                "currency",
                "vat_rate",
                "net",
                "vat",
                "gross",
                "sale_date",
                "issue_date",
                "due_date",
                "issued_at",
                "lines",
                "note",
            ],
            number={"type": "string"},
            kind={"type": "string", "enum": ["invoice", "topup_invoice", "credit_note"]},
            account={"type": "string"},
            period={"type": "string", "nullable": True},
            corrects={"type": "integer", "nullable": True},
            currency={"type": "string"},
            vat_rate={"type": "string"},
            net=MONEY2,
            vat=MONEY2,
            gross=MONEY2,
            sale_date=DATE,
            issue_date=DATE,
            due_date={**DATE, "nullable": True},
            issued_at=TIME,
            lines={"type": "array", "items": {"type": "object"}},
            note={"type": "string"},
            owed=MONEY2,
            paid=MONEY2,
            outstanding=MONEY2,
            status={"type": "string", "enum": ["paid", "unpaid", "overdue"]},
        ),
        "Finding": obj(
            [
                "id",
                "account",
                "rule",
                "subject",
                "window",
                "severity",
                "status",
                "action",
                "suspended",
                "hits",
                "evidence",
                "created_at",
                "updated_at",
            ],
            id={"type": "integer"},
            account={"type": "string"},
            rule={"type": "string"},
            subject={"type": "string"},
            window={"type": "string"},
            severity={"type": "string", "enum": ["info", "warning", "critical"]},
            status={"type": "string", "enum": [x.value for x in Status]},
            action={"type": "string", "enum": ["record", "alert", "suspend"]},
            suspended={"type": "boolean"},
            hits={"type": "integer"},
            evidence={"type": "object"},
            created_at=TIME,
            updated_at=TIME,
            status_by={"type": "string", "nullable": True},
            status_reason={"type": "string", "nullable": True},
            status_at=NULLABLE_TIME,
            account_resumed={"type": "boolean"},
        ),
        "RunningCall": obj(
            [
                "call_id",
                "switch",
                "account",
                "number",
                "class",
                "control",
                "granted_s",
                "reserved",
                "authorized_at",
                "answered_at",
            ],
            call_id={"type": "string"},
            switch={"type": "string"},
            account={"type": "string"},
            number={"type": "string"},
            **{"class": {"type": "string"}},
            control={"type": "string"},
            granted_s={"type": "integer"},
            reserved=MONEY,
            authorized_at=NULLABLE_TIME,
            answered_at=NULLABLE_TIME,
        ),
    }


def items(name: str) -> dict[str, Any]:
    return obj(["items"], items={"type": "array", "items": ref(name)})


def paths() -> dict[str, Any]:
    csv = {"description": "CSV, streamed", "content": {"text/csv": {"schema": {"type": "string"}}}}
    status_body = json_body(ref("StatusChange"), required=False)
    out: dict[str, Any] = {
        "/health": {
            "get": operation(
                "health",
                "Redis and PostgreSQL answer",
                {
                    "200": ok(obj(["status"], status={"type": "string"})),
                    "503": ok(obj(["status"], status={"type": "string"}), "Unavailable"),
                },
                tags=["service"],
                public=True,
            )
        },
        "/api/v1/me": {
            "get": operation(
                "me",
                "The token in use",
                {"200": ok(ref("Token")), **errors(*AUTH)},
                tags=["customer"],
            )
        },
        "/api/v1/accounts/{account}/balance": {
            "get": operation(
                "balance",
                "Balance, reservations, available credit and the latest ledger entries",
                {"200": ok(ref("Balance")), **errors(*AUTH)},
                tags=["customer"],
                params=[
                    ACCOUNT,
                    query(
                        "entries",
                        {"type": "integer", "minimum": 0, "maximum": 100},
                        "How many recent ledger entries (default 10)",
                    ),
                ],
            )
        },
        "/api/v1/accounts/{account}/entries": {
            "get": operation(
                "entries",
                "Ledger entries (top-ups, payments, fees), newest first",
                {"200": ok(items("LedgerEntry")), **errors(*AUTH)},
                tags=["customer"],
                params=[
                    ACCOUNT,
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500},
                        "Page size (default 50)",
                    ),
                ],
            )
        },
        "/api/v1/accounts/{account}/cdrs": {
            "get": operation(
                "cdrs",
                "Calls, newest first, one page at a time (keyset pagination)",
                {"200": ok(ref("CdrPage")), **errors(*AUTH)},
                tags=["customer"],
                params=[
                    ACCOUNT,
                    *PERIOD,
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500},
                        "Page size (default 50)",
                    ),
                    query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                ],
            )
        },
        "/api/v1/accounts/{account}/cdrs.csv": {
            "get": operation(
                "cdrs_csv",
                "Every matching call as CSV, oldest first (cells that a spreadsheet would run"
                " as a formula start with an apostrophe)",
                {"200": csv, **errors(*AUTH)},
                tags=["customer"],
                params=[ACCOUNT, *PERIOD],
            )
        },
        "/api/v1/accounts/{account}/cdrs/exports": {
            "post": operation(
                "create_export",
                "A one-time link (valid a minute) to the CSV, for browsers",
                {"201": ok(ref("Export"), "Created"), **errors(*AUTH)},
                tags=["customer"],
                params=[ACCOUNT, *PERIOD],
            )
        },
        "/api/v1/exports/{ticket}": {
            "get": operation(
                "export",
                "Download through a one-time link (the link is the credential)",
                {"200": csv, **errors(404, 429, 503)},
                tags=["customer"],
                params=[path("ticket", {"type": "string"})],
                public=True,
            )
        },
        "/api/v1/accounts": {
            "get": operation(
                "list_accounts",
                "All accounts",
                {"200": ok(items("Account")), **errors(*OPERATOR)},
                tags=["operator"],
            ),
            "post": operation(
                "create_account",
                "Create an account",
                {"201": ok(ref("AccountWithBalance"), "Created"), **errors(*OPERATOR, 409)},
                tags=["operator"],
                body=json_body(ref("AccountCreate")),
            ),
        },
        "/api/v1/accounts/{account}": {
            "get": operation(
                "get_account",
                "One account with its balance",
                {"200": ok(ref("AccountWithBalance")), **errors(*OPERATOR)},
                tags=["operator"],
                params=[ACCOUNT],
            ),
            "patch": operation(
                "update_account",
                "Change limits and settings",
                {"200": ok(ref("AccountWithBalance")), **errors(*OPERATOR, 409)},
                tags=["operator"],
                params=[ACCOUNT],
                body=json_body(ref("AccountUpdate")),
            ),
        },
        "/api/v1/accounts/{account}/topups": {
            "post": operation(
                "topup",
                "Add a ledger entry (top-up, payment, adjustment, fee); 200 for a reference"
                " already recorded",
                {
                    "201": ok(ref("TopupResult"), "Created"),
                    "200": ok(ref("TopupResult"), "Already recorded (same reference)"),
                    **errors(*OPERATOR, 409),
                },
                tags=["operator"],
                params=[ACCOUNT],
                body=json_body(ref("Topup")),
            )
        },
        "/api/v1/decks": {
            "get": operation(
                "decks",
                "Rate deck versions",
                {"200": ok(items("DeckVersion")), **errors(*OPERATOR)},
                tags=["operator"],
            ),
            "post": operation(
                "upload_deck",
                "Upload a rate deck (validated whole; nothing is stored when invalid)",
                {
                    "201": ok(ref("DeckResult"), "Stored as the new current version"),
                    "200": ok(ref("DeckResult"), "Same as the current version: nothing stored"),
                    **errors(*OPERATOR, 413, 422),
                },
                tags=["operator"],
                body={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": ref("DeckUpload")}},
                },
            ),
        },
        "/api/v1/calls": {
            "get": operation(
                "running_calls",
                "Calls the ledger holds open",
                {"200": ok(items("RunningCall")), **errors(*OPERATOR)},
                tags=["operator"],
                params=[query("account", {"type": "string"}, "Only this account's")],
            )
        },
        "/api/v1/calls/{call_id}/hangup": {
            "post": operation(
                "hangup",
                "Hang up a running call through Asterisk's ARI (409 when ARI is not configured)",
                {
                    "200": ok(
                        obj(
                            ["call_id", "hung_up"],
                            call_id={"type": "string"},
                            hung_up={"type": "boolean"},
                        )
                    ),
                    **errors(*OPERATOR, 409, 502),
                },
                tags=["operator"],
                params=[
                    path("call_id", {"type": "string"}),
                    query("account", {"type": "string"}, "Whose call, when accounts share its id"),
                ],
            )
        },
    }
    out["/api/v1/accounts/{account}/statements/{period}"] = {
        "get": operation(
            "statement",
            "The statement of a billing period (a month in the account's zone): calls and"
            " totals by class and destination",
            {"200": ok(ref("Statement")), **errors(*AUTH)},
            tags=["customer"],
            params=[ACCOUNT, path("period", {"type": "string", "pattern": PERIOD_PATTERN})],
        )
    }
    out["/api/v1/accounts/{account}/invoices"] = {
        "get": operation(
            "invoices",
            "Invoices, top-up invoices and credit notes, with what is paid and owed",
            {"200": ok(items("Document")), **errors(*AUTH)},
            tags=["customer"],
            params=[ACCOUNT],
        )
    }
    finding = path("finding", {"type": "integer", "minimum": 0, "maximum": 10**18 - 1})
    out["/api/v1/findings"] = {
        "get": operation(
            "findings",
            "Abuse findings, newest first",
            {"200": ok(items("Finding")), **errors(*OPERATOR)},
            tags=["operator"],
            params=[
                query("status", {"type": "string", "enum": [x.value for x in Status]}, "Status"),
                query("account", {"type": "string"}, "Only this account's"),
                query("rule", {"type": "string", "enum": sorted(DETECTORS)}, "Rule"),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most"),
            ],
        )
    }
    out["/api/v1/findings/{finding}"] = {
        "get": operation(
            "finding",
            "One abuse finding with its evidence",
            {"200": ok(ref("Finding")), **errors(*OPERATOR)},
            tags=["operator"],
            params=[finding],
        )
    }
    for action, text in (
        ("acknowledge", "Acknowledge: someone is looking into it"),
        (
            "lift",
            "Lift: a false alarm or dealt with; resumes the account if this finding alone"
            " held it suspended",
        ),
        ("close", "Close: done with it (a suspension stays)"),
    ):
        out[f"/api/v1/findings/{{finding}}/{action}"] = {
            "post": operation(
                f"{action}_finding",
                text,
                {"200": ok(ref("Finding")), **errors(*OPERATOR, 409)},
                tags=["operator"],
                params=[finding],
                body=status_body,
            )
        }
    for action, text in (
        ("suspend", "Suspend (calls are refused; running ones are hung up by session control)"),
        ("resume", "Resume a suspended account"),
        ("close", "Close the account for good"),
    ):
        out[f"/api/v1/accounts/{{account}}/{action}"] = {
            "post": operation(
                f"{action}_account",
                text,
                {"200": ok(ref("AccountWithBalance")), **errors(*OPERATOR, 409)},
                tags=["operator"],
                params=[ACCOUNT],
                body=status_body,
            )
        }
    return out


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tollgate panel",
            "version": "1",
            "description": "Customers: balance, calls, CSV downloads. Operators: accounts,"
            " money, rate decks, running calls. Money is a decimal string; errors are"
            ' {"error": {"code", "message", "details"}} with stable codes.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "paths": paths(),
    }
