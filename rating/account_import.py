"""Bulk onboarding: accounts from a CSV file, with COPY and pipelined Redis writes.

The whole file is checked first (errors name file, line and column; nothing is written while
one remains). Then one PostgreSQL transaction stages the rows by COPY and inserts the
accounts that do not exist yet, with their `created` events; then Redis gets the settings of
every account of the file it does not hold, in pipelines. Idempotent per account id: an id
that exists is left as it is (`existing`), and a run interrupted between PostgreSQL and
Redis is completed by running it again.

Columns (header line; only `id` is required): id, kind, status, currency, country, timezone,
deck, credit_limit, max_calls, cps, inbound_max_calls, inbound_cps, daily_cap (money as
decimals: 12.50), allow_premium,
allow_high_risk, invoice_overdue (yes/no), blocked_prefixes (separated by spaces or ';')."""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from core.pg import Conn
from core.redis_cluster import PipelinedScript
from rating.accounts import (
    ACCOUNT_FIELDS,
    ACCOUNT_ID,
    Account,
    AccountError,
    AccountKind,
    AccountStatus,
)
from rating.keys import Keyspace
from rating.ledger import mirror_script
from rating.money import MoneyError, parse_micro

MONEY = ("credit_limit", "daily_cap")
COUNTS = ("max_calls", "cps", "inbound_max_calls", "inbound_cps")
FLAGS = ("allow_premium", "allow_high_risk", "invoice_overdue")
COLUMNS = frozenset(ACCOUNT_FIELDS) - {"sip_logins"}  # kept by the database from sip_logins
MAX_ERRORS = 20  # reported at once; the rest are counted
REDIS_BATCH = 2000  # accounts per pipeline
STAGE = "account_import_stage"


@dataclass(frozen=True, slots=True)
class LineError:
    """One fault of the file: where (line 1 is the header; None: the file as a whole), the
    column at fault when there is one, and the message as the CLI prints it."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


class ImportErrors(ValueError):
    """The file has errors; nothing was written."""

    code = "IMPORT_INVALID"

    def __init__(self, errors: list[LineError], total: int) -> None:
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        text = "; ".join(map(str, errors))
        super().__init__(f"{total} error(s), nothing imported{more}: {text}")
        self.errors = errors
        self.total = total


def _failed(errors: list[LineError]) -> ImportErrors:
    return ImportErrors(errors[:MAX_ERRORS], len(errors))


@dataclass(frozen=True, slots=True)
class Imported:
    created: int
    existing: int
    mirrored: int  # accounts whose settings were written to Redis by this run
    new: tuple[str, ...] = ()  # the ids created, in order


@dataclass(frozen=True, slots=True)
class Plan:
    """Settings rows of a file share (a file repeats a few plans many times): converted,
    validated and laid out for PostgreSQL and Redis once, not once per account."""

    account: Account  # validated, with a placeholder id
    values: tuple[Any, ...]  # the accounts columns after id, as stored
    detail: dict[str, Any]  # the `created` event's detail, without the id
    fields: dict[str, str]  # the Redis hash, without the id


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    id: str
    plan: Plan


def read_accounts(path: Path) -> list[Row]:
    """Every account of the file, validated; raises ImportErrors naming file:line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _failed([LineError(str(path), None, None, str(exc))]) from None
    return parse_accounts(decode(raw, str(path)), str(path))


def decode(raw: bytes, name: str) -> str:
    """The file's text: UTF-8 (a spreadsheet's byte-order mark dropped), no NUL byte
    (PostgreSQL text cannot hold one: refused here, naming the line, not by COPY)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _failed([LineError(name, line, None, f"not UTF-8 text ({exc.reason})")]) from None
    if (at := text.find("\x00")) >= 0:
        line = text.count("\n", 0, at) + 1
        raise _failed([LineError(name, line, None, "contains a NUL byte")])
    return text


def parse_accounts(text: str, name: str) -> list[Row]:
    rows = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(rows, [])]
    errors = [LineError(name, 1, h, f"unknown column {h!r}") for h in header if h not in COLUMNS]
    if "id" not in header:
        errors.append(LineError(name, 1, "id", "the header must name an 'id' column"))
    if errors:
        raise _failed(errors)
    at = header.index("id")
    out: list[Row] = []
    seen: dict[str, int] = {}
    problems: list[LineError] = []
    for row in rows:
        line = rows.line_num  # csv's count: quoted newlines do not shift it
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            why = f"{len(row)} fields, the header has {len(header)}"
            problems.append(LineError(name, line, None, why))
            continue
        cells = [c.strip() for c in row]
        account_id = cells[at]
        settings = tuple((h, c) for h, c in zip(header, cells, strict=True) if h != "id" and c)
        try:
            if not ACCOUNT_ID.match(account_id):
                Account(account_id).validated()  # raises, naming the id
            plan = _plan(settings)
        except AccountError as exc:
            problems.append(LineError(name, line, exc.field, str(exc)))
            continue
        if account_id in seen:
            why = f"id {account_id!r} repeats line {seen[account_id]}"
            problems.append(LineError(name, line, "id", why))
            continue
        seen[account_id] = line
        out.append(Row(line, account_id, plan))
    if problems:
        raise _failed(problems)
    return out


PLACEHOLDER = "placeholder"


@functools.lru_cache(maxsize=4096)
def _plan(settings: tuple[tuple[str, str], ...]) -> Plan:
    account = _account(dict(settings))
    detail = account.as_dict()
    del detail["id"]
    fields = account.redis_fields()
    del fields["id"]
    return Plan(account, tuple(_values(account)[1:]), detail, fields)


def _account(cells: dict[str, str]) -> Account:
    values: dict[str, Any] = dict(cells)
    for name in MONEY:
        if name in values:
            try:
                values[name] = parse_micro(values[name])
            except MoneyError as exc:
                raise AccountError(name, str(exc)) from None
    for name in COUNTS:
        if name in values:
            if not values[name].isdigit():
                raise AccountError(name, f"a whole number >= 0, not {values[name]!r}")
            values[name] = int(values[name])
    for name in FLAGS:
        if name in values:
            values[name] = _flag(name, values[name])
    if "blocked_prefixes" in values:
        raw = values["blocked_prefixes"].replace(";", " ").split()
        values["blocked_prefixes"] = tuple(p.lstrip("+") for p in raw)
    for name, kind in (("kind", AccountKind), ("status", AccountStatus)):
        if name in values:
            try:
                values[name] = kind(values[name])
            except ValueError:
                allowed = ", ".join(k.value for k in kind)
                raise AccountError(name, f"one of {allowed}, not {values[name]!r}") from None
    if "country" in values:
        values["country"] = values["country"].upper()
    return Account(PLACEHOLDER, **values).validated()


def _flag(name: str, text: str) -> bool:
    low = text.lower()
    if low in ("yes", "true", "1"):
        return True
    if low in ("no", "false", "0"):
        return False
    raise AccountError(name, f"yes or no, not {text!r}")


async def check_decks(conn: Conn, rows: list[Row], name: str) -> None:
    """Every deck named exists and prices in its accounts' currency (as `account create`)."""
    decks = await conn.fetch(
        "select h.name, d.currency from deck_heads h join decks d"
        " on d.name = h.name and d.version = h.current_version"
    )
    currency = {d["name"]: d["currency"] for d in decks}
    problems: list[LineError] = []
    for row in rows:
        a = row.plan.account
        if a.deck is None:
            continue
        if a.deck not in currency:
            problems.append(LineError(name, row.line, "deck", f"deck: unknown deck {a.deck!r}"))
        elif currency[a.deck] != a.currency:
            why = (
                f"currency: {a.currency} differs from the currency"
                f" of deck {a.deck!r} ({currency[a.deck]})"
            )
            problems.append(LineError(name, row.line, "currency", why))
    if problems:
        raise _failed(problems)


async def store_accounts(conn: Conn, rows: list[Row], at: datetime) -> set[str]:
    """Insert the accounts that do not exist yet (one transaction); returns their ids."""
    columns = list(ACCOUNT_FIELDS)
    async with conn.transaction():
        await conn.execute(
            f"create temporary table if not exists {STAGE}"
            " (like accounts including defaults, detail jsonb) on commit delete rows"
        )
        await conn.copy_records_to_table(
            STAGE,
            records=[
                (r.id, *r.plan.values, json.dumps({"id": r.id, **r.plan.detail})) for r in rows
            ],
            columns=[*columns, "detail"],
        )
        cols = ", ".join(columns)
        created = await conn.fetch(
            f"with new as (insert into accounts ({cols}, created_at, updated_at)"
            f" select {cols}, $1, $1 from {STAGE} order by id"
            " on conflict (id) do nothing returning id)"
            " insert into account_events (account, event, detail, at)"
            f" select s.id, 'created', s.detail, $1 from {STAGE} s join new using (id)"
            " returning account",
            at,
        )
    return {r["account"] for r in created}


def _values(a: Account) -> list[Any]:
    out = []
    for name in ACCOUNT_FIELDS:
        value = getattr(a, name)
        if isinstance(value, AccountKind | AccountStatus):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out.append(value)
    return out


async def mirror_missing(
    redis: Redis,
    keys: Keyspace,
    conn: Conn,
    rows: list[Row],
    new: set[str],
) -> int:
    """Write the settings of every account Redis does not hold: the new ones from the file,
    older ones (a run interrupted before Redis) from PostgreSQL. Returns how many."""
    mirror = PipelinedScript(redis, "mirror", mirror_script())
    mirrored = 0
    for start in range(0, len(rows), REDIS_BATCH):
        batch = rows[start : start + REDIS_BATCH]
        # a new account cannot be in Redis yet; an existing one may be missing from it
        older = [r for r in batch if r.id not in new]
        async with redis.pipeline(transaction=False) as pipe:
            for row in older:
                pipe.exists(keys.account(row.id))
            held = await pipe.execute() if older else []
        fields = {r.id: {"id": r.id, **r.plan.fields} for r in batch if r.id in new}
        stale = [r.id for r, h in zip(older, held, strict=True) if not h]
        if stale:  # PostgreSQL's settings win over the file's for accounts that existed
            found = await conn.fetch("select * from accounts where id = any($1::text[])", stale)
            fields.update({f["id"]: _from_row(f).redis_fields() for f in found})
        # the ledger's own mirror script: settings written, money fields never touched
        await mirror.run(
            [
                ([keys.account(account_id)], [x for kv in mapping.items() for x in kv])
                for account_id, mapping in fields.items()
            ]
        )
        mirrored += len(fields)
    return mirrored


def _from_row(row: asyncpg.Record) -> Account:
    data = {c: row[c] for c in ACCOUNT_FIELDS}
    data["kind"] = AccountKind(data["kind"])
    data["status"] = AccountStatus(data["status"])
    data["blocked_prefixes"] = tuple(data["blocked_prefixes"])
    data["sip_logins"] = tuple(data["sip_logins"])
    return Account(**data)


async def import_accounts(
    pool: asyncpg.Pool, redis: Redis, keys: Keyspace, path: Path, at: datetime
) -> Imported:
    return await import_rows(pool, redis, keys, read_accounts(path), str(path), at)


async def import_rows(
    pool: asyncpg.Pool, redis: Redis, keys: Keyspace, rows: list[Row], name: str, at: datetime
) -> Imported:
    """Store validated rows (`name` is the file's name in errors): what the CLI and the
    panel's upload share."""
    async with pool.acquire() as conn:
        await check_decks(conn, rows, name)
        new = await store_accounts(conn, rows, at)
        mirrored = await mirror_missing(redis, keys, conn, rows, new)
    return Imported(len(new), len(rows) - len(new), mirrored, tuple(sorted(new)))
