"""The ledger: authorize, answer, renew and finish calls atomically in Redis.

Python normalises the number and rates it (phonenumbers and the deck live here, and a
deck is not in the account's hash slot); one Lua script per operation then applies the
account's rules and moves money, so every decision sees a consistent ledger."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from core.redis_pipe import CommandPipe, Unusable
from rating.carrier_cache import CarrierCache
from rating.deck import Deck, PrefixRates
from rating.deck_cache import DeckCache
from rating.durable import MONEY_SCRIPTS, Durability, eval_and_wait
from rating.keys import Keyspace, call_ref, expiry_member, parse_member
from rating.numbers import InvalidNumber, Number, NumberClass, normalise
from rating.route_grants import RouteGrants
from rating.tariff import Curve, NoRate, grant_curve, rate_call

log = logging.getLogger("tollgate.rating.ledger")

CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
# A switch name (a host): no "/" nor "|", which separate it in keys and members.
SWITCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
# open_sessions reads call records this many at a time (one round trip each)
_SESSIONS_SLICE = 64


class Decision(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


class Reason(StrEnum):
    OK = "OK"
    EMERGENCY = "EMERGENCY"
    INSUFFICIENT_CREDIT = "INSUFFICIENT_CREDIT"
    PREMIUM_BLOCKED = "PREMIUM_BLOCKED"
    DESTINATION_BLOCKED = "DESTINATION_BLOCKED"
    NO_RATE = "NO_RATE"
    ACCOUNT_SUSPENDED = "ACCOUNT_SUSPENDED"
    INVOICE_OVERDUE = "INVOICE_OVERDUE"
    CUSTOMER_UNVERIFIED = "CUSTOMER_UNVERIFIED"  # the account's customer is not verified
    TOO_MANY_CALLS = "TOO_MANY_CALLS"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_NUMBER = "INVALID_NUMBER"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INVALID_REQUEST = "INVALID_REQUEST"  # the switch's request itself is malformed
    NO_PROFITABLE_ROUTE = "NO_PROFITABLE_ROUTE"  # every carrier would cost more than the sale
    NO_ROUTE = "NO_ROUTE"  # carriers are configured, none has a rate for the number
    CARRIERS_BUSY = "CARRIERS_BUSY"  # every usable carrier is at its max calls


class LedgerError(RuntimeError):
    """The ledger could not answer (bad request or Redis trouble); callers fail closed."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(f"{code}: {why}")
        self.code = code
        self.why = why


@dataclass(frozen=True)
class LedgerSettings:
    max_call_s: int = 3 * 3600  # longest grant for one call
    ring_window_s: int = 90  # how long before answer a reservation may wait
    grace_s: int = 120  # extra life of a reservation before the sweeper may release it
    # A settled call's record answers replays of its authorize/finish (parking-lot retries,
    # ARI reconciliation, a repeated AGI request): minutes after the end, hours at most
    # when AMI or Redis was away. Kept 7 days it was most of Redis's memory per call.
    record_ttl_s: int = 6 * 3600
    default_country: str = "PL"  # for accounts the ledger does not know
    blocked_prefixes: tuple[str, ...] = ()  # operator-wide, on top of each account's
    # Refuse outbound calls (emergency excepted) of accounts whose customer is not verified
    # (the terms: services start after verification); an operator may choose otherwise.
    refuse_unverified: bool = True
    # Inbound calls are rated with this deck (per minute, by the called number's prefix);
    # none: inbound calls are free.
    inbound_deck: str = ""
    switch_host: str = field(default_factory=socket.gethostname)
    # Carriers' max calls are counted in the authorize script; their counters live in the
    # carrier's own hash slot, so on Redis Cluster (where a script keeps to one slot) they
    # are not counted (runtime.services turns this off in cluster mode).
    carrier_capacity: bool = True
    # Money scripts (rating.durable.MONEY_SCRIPTS) count as done only once this many
    # replicas acknowledged them (WAIT), within wait_timeout_ms; 0: no waiting.
    wait_replicas: int = 0
    wait_timeout_ms: int = 100

    @property
    def durability(self) -> Durability:
        return Durability(self.wait_replicas, self.wait_timeout_ms)

    @property
    def ttl_extra_s(self) -> int:
        return self.ring_window_s + self.grace_s


@dataclass(frozen=True, slots=True)
class CallRequest:
    account: str
    call_id: str
    dialled: str
    caller: str = ""
    cap_s: int | None = None  # shorter grant, e.g. an ARI slice
    rdnis: str = ""  # the redirecting number of a forwarded leg (abuse detection reads it)
    switch: str = ""  # the switch whose call id this is; "" = this ledger's switch_host
    inbound: bool = False  # a carrier's call to the account's number (`dialled` is the DID)
    # the call's start, which picks the deck version in force; None: now (tests and replays
    # pin it)
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    decision: Decision
    reason: str
    max_seconds: int
    call_id: str
    reserved: int = 0
    number: Number | None = None
    replay: bool = False
    detail: str = ""
    caller_id: str = ""  # the number the call presents (an owned one; "" = withheld)
    ring: tuple[str, ...] = ()  # an inbound call: the account's SIP logins to ring
    routes: tuple[str, ...] = ()  # the carriers' endpoints to try, in order (none: one trunk)

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision.value,
            "reason": self.reason,
            "max_seconds": self.max_seconds,
            "call_id": self.call_id,
            "reserved": self.reserved,
        }
        if self.number is not None:
            out["number"] = self.number.as_dict()
        if self.detail:
            out["detail"] = self.detail
        if self.caller_id:
            out["caller_id"] = self.caller_id
        if self.ring:
            out["ring"] = list(self.ring)
        if self.routes:
            out["routes"] = list(self.routes)
        if self.replay:
            out["replay"] = True
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the switch reports when a call ends."""

    answered: bool
    billsec: int
    ended_at: datetime
    disposition: str = ""  # ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL
    hangup_cause: str = ""
    answered_at: datetime | None = None
    dialled: str = ""  # for calls the ledger never authorized (emergency bypass)
    endpoint: str = ""  # the carrier endpoint the call went out through last (routed calls)
    attempts: str = ""  # failed attempts, `endpoint:sip code[:start ms:pdd ms];` each
    timing: str = ""  # `start ms:pdd ms` of the attempt on `endpoint` (switch.attempt_times)


@dataclass(frozen=True, slots=True)
class Settlement:
    call_id: str
    status: str  # FINISHED or DUPLICATE
    cost: int
    rated_cost: int
    billable_seconds: int
    prior_state: str


@dataclass(frozen=True, slots=True)
class Swept:
    released: int  # reservations the sweeper settled
    estimated: int  # of which charged from the controller's answer (no outcome came)


@dataclass(frozen=True, slots=True)
class _Meta:
    country: str
    timezone: str
    deck: str


def mirror_script() -> str:
    """The script that writes an account's settings (bulk onboarding pipelines it)."""
    return _load_script("mirror")


def _load_script(name: str) -> str:
    lua = resources.files("rating") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Ledger:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        decks: DeckCache,
        settings: LedgerSettings,
        *,
        pipe: CommandPipe | None = None,
        money_pipe: CommandPipe | None = None,
        carriers: CarrierCache | None = None,
    ) -> None:
        self.redis = redis
        self.carriers = carriers or CarrierCache(redis, keys)
        self._route_grants = RouteGrants()
        # Authorizations (the switch's hot path) go pipelined over `pipe` when given; every
        # other command through redis-py.
        self.pipe = pipe
        # Money scripts waiting for replicas go over a connection of their own when given:
        # WAIT holds its connection, and authorizations must not queue behind it.
        self.money_pipe = money_pipe
        self.durability = settings.durability
        self.keys = keys
        self.decks = decks
        self.settings = settings
        self._meta: dict[str, _Meta] = {}
        # Grant curves of the current second, by (deck, version, prefix, cap): the rating
        # clock changes bands on whole minutes, so every call authorized within one second
        # gets the same curve; computing it was a sixth of authorize's CPU.
        self._curves: dict[tuple[str, int, str, int], str | None] = {}
        self._curves_second = 0
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(_load_script(name))
            for name in (
                "touch",
                "restore_spent",
                "authorize",
                "finish",
                "expire",
                "answer",
                "renew",
                "apply_entry",
                "apply_entries",
                "mirror",
                "upgrade_call",
                "failover",
            )
        }

    def script(self, name: str) -> AsyncScript:
        return self._scripts[name]

    def switch_of(self, switch: str = "") -> str:
        """The switch a call id belongs to: the one given, else this ledger's own."""
        switch = switch or self.settings.switch_host
        if not SWITCH.match(switch):
            raise LedgerError("BAD_SWITCH", f"switch {switch!r} is not acceptable")
        return switch

    # -- authorize -------------------------------------------------------------------------

    async def authorize(self, req: CallRequest) -> Grant:
        if not CALL_ID.match(req.call_id):
            raise LedgerError("BAD_CALL_ID", f"call_id {req.call_id!r} is not acceptable")
        switch = self.switch_of(req.switch)
        if req.switch != switch:
            req = replace(req, switch=switch)
        if not req.account:
            return Grant(Decision.DENY, Reason.UNKNOWN_ACCOUNT, 0, req.call_id)
        for attempt in range(2):
            keys, argv, number = await self.authorize_command(req, refresh=attempt > 0)
            res = await self._script("authorize", keys, argv)
            status = _s(res[0])
            if status == "NONE":  # the replay of a call finished without authorization
                raise LedgerError(
                    "CALL_SETTLED", f"call {req.call_id!r} was settled without an authorization"
                )
            if status != "STALE":
                return Grant(
                    Decision(status),
                    _s(res[1]),
                    int(res[2]),
                    req.call_id,
                    int(res[3]),
                    number,
                    bool(int(res[4])),
                    _s(res[5]),
                    _s(res[6]) if len(res) > 6 else "",
                    tuple(x for x in _s(res[7]).split(",") if x) if len(res) > 7 else (),
                    tuple(x for x in _s(res[8]).split("|") if x) if len(res) > 8 else (),
                )
            self.decks.invalidate()
        raise LedgerError("STALE", f"account {req.account!r} settings kept changing")

    async def _script(self, name: str, keys: list[str], argv: list[str]) -> Any:
        """A script of the calls' path (authorize, finish) over the pipelined connection
        when there is one: redis-py's per-command Python cost about doubles serve's CPU."""
        if name in MONEY_SCRIPTS and self.durability.on:
            return await self._durable(name, keys, argv)
        script = self._scripts[name]
        if self.pipe is not None:
            try:
                return await self.pipe.evalsha(script.sha, script.script, keys, argv)
            except Unusable as exc:
                log.warning("authorizations go through redis-py from now on: %s", exc)
                self.pipe = None
        return await script(keys=keys, args=argv)

    async def money(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a money script (finish, expire, apply_entry, restore_spent): with
        `wait_replicas`, it returns only once that many replicas hold what it wrote, else
        raises rating.durable.NotDurable, a RedisError (the write stays on the master and
        reaches the replica later unless the master dies first; a retry is idempotent)."""
        if name not in MONEY_SCRIPTS:
            raise LedgerError("NOT_MONEY", f"script {name!r} does not move money")
        if not self.durability.on:
            return await self._scripts[name](keys=keys, args=args)
        return await self._durable(name, keys, args)

    async def _durable(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts[name]
        if self.money_pipe is not None:
            try:
                return await self._durable_piped(name, script, keys, args)
            except Unusable as exc:
                log.warning("money scripts go through redis-py from now on: %s", exc)
                self.money_pipe = None
        return await eval_and_wait(self.redis, script, name, keys, args, self.durability)

    async def _durable_piped(
        self, name: str, script: AsyncScript, keys: list[str], args: list[Any]
    ) -> Any:
        """The script then WAIT in one write on the money pipe's connection."""
        assert self.money_pipe is not None
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        for _ in range(2):
            result, acked = await self.money_pipe.batch(command, self.durability.wait_args())
            if isinstance(result, ResponseError) and str(result).startswith("NOSCRIPT"):
                await self.money_pipe.execute("SCRIPT", "LOAD", script.script)
                continue
            if isinstance(result, ResponseError):
                if str(result).startswith(("MOVED ", "ASK ", "CLUSTERDOWN", "CROSSSLOT")):
                    raise Unusable(f"Redis answered {result}: a cluster needs its own client")
                raise result
            if isinstance(acked, ResponseError):
                raise acked
            self.durability.check(name, acked)
            return result
        raise ResponseError(f"NOSCRIPT: Redis keeps forgetting the {name} script")

    async def authorize_command(
        self, req: CallRequest, *, refresh: bool = False
    ) -> tuple[list[str], list[str], Number | None]:
        """KEYS and ARGV of the authorize script for a request (also used by benchmarks)."""
        meta = await self._account_meta(req.account, refresh=refresh)
        now = req.at or datetime.now(UTC)
        cap = min(req.cap_s or self.settings.max_call_s, self.settings.max_call_s)
        try:
            number: Number | None = normalise(req.dialled, meta.country)
        except InvalidNumber:
            number = None
        klass = number.number_class.value if number else "invalid"
        e164 = number.e164 if number else ""
        prefix = rate_name = ""
        version = 0
        curve = ""
        deck: Deck | None = None
        if number is not None and number.number_class is not NumberClass.EMERGENCY and meta.deck:
            deck = await self.decks.current(meta.deck, now)
        if deck is not None and number is not None:
            rates = deck.lookup(number.digits)
            if rates is not None:
                encoded = self._curve(deck, rates, now, cap)
                if encoded is not None:
                    prefix, rate_name, version, curve = (
                        rates.prefix,
                        rates.name,
                        deck.version,
                        encoded,
                    )
        routes, route_keys = "", list[str]()
        if not req.inbound and deck is not None and number is not None and prefix:
            routes, route_keys = await self._routes(req.account, deck, number.digits, now, cap)
        free = False
        if req.inbound:
            klass, deck, free = "inbound", None, not self.settings.inbound_deck
            prefix, rate_name, version, curve = "", "", 0, ""
            if number is not None and free:
                prefix, rate_name, curve = "inbound", "free", _free_curve(cap)
            elif number is not None:
                deck = await self.decks.current(self.settings.inbound_deck, now)
                rates = deck.lookup(number.digits) if deck is not None else None
                encoded = self._curve(deck, rates, now, cap) if deck and rates else None
                if deck is not None and rates is not None and encoded is not None:
                    prefix, rate_name, version, curve = (
                        rates.prefix, rates.name, deck.version, encoded,
                    )  # fmt: skip
        blocked = bool(number) and any(
            e164.lstrip("+").startswith(p) for p in self.settings.blocked_prefixes
        )
        day = now.astimezone(ZoneInfo(meta.timezone)).date().isoformat()
        argv = [
            req.call_id,
            req.account,
            req.dialled,
            e164,
            klass,
            _clean(req.caller),
            self.switch_of(req.switch),
            prefix,
            rate_name,
            (deck.name if deck else "") if req.inbound else meta.deck,
            str(version),
            day,
            meta.country,
            meta.timezone,
            "1" if blocked else "0",
            str(self.settings.ttl_extra_s),
            str(self.settings.record_ttl_s),
            str(cap),
            deck.currency if deck else "",
            curve,
            _clean(req.rdnis),
            call_ref(self.switch_of(req.switch), req.call_id),
            "1" if self.settings.refuse_unverified else "0",
            "" if req.inbound else _presented(req.caller, meta.country),
            "in" if req.inbound else "out",
            "1" if free else "0",
            routes,
            str(self.settings.max_call_s + self.settings.ttl_extra_s),
            day[:7],  # the plan's period: the month in the account's zone
            _ms(now),
        ]
        return (
            self.keys.call_keys(req.account, req.call_id, self.switch_of(req.switch))
            + route_keys,
            argv,
            number,
        )

    async def _routes(
        self, account: str, sell: Deck, digits: str, now: datetime, cap: int
    ) -> tuple[str, list[str]]:
        """The script's route argument: '' without carriers (the single trunk), '!CODE' when
        no carrier may take the call, else `carrier:endpoint:max_calls:cps` joined by ';' in
        try order; and each carrier's open calls and CPS clock keys (counted by the script)
        when capacity is kept in Redis."""
        carriers, rules = await self.carriers.current()
        if not carriers:
            return "", []
        buys = [(c, await self.decks.current(c.deck, now)) for c in carriers]
        spec, names = self._route_grants.spec(
            account, sell, digits, now, cap, buys, rules, self.carriers.fx
        )
        if not self.settings.carrier_capacity:
            return spec, []
        keys = self.keys
        return spec, [k for n in names for k in (keys.carrier_open(n), keys.carrier_rate(n))]

    def _curve(self, deck: Deck, rates: PrefixRates, now: datetime, cap: int) -> str | None:
        """The encoded grant curve for a call starting within `now`'s second (None: no rate).

        Computed from the start of the second: bands change on whole seconds (minutes, in
        fact), so the curve is the same for every instant of it."""
        second = int(now.timestamp())
        if second != self._curves_second:
            self._curves.clear()
            self._curves_second = second
        key = (deck.name, deck.version, rates.prefix, cap)
        if key not in self._curves:
            start = datetime.fromtimestamp(second, UTC)
            try:
                self._curves[key] = grant_curve(deck, rates, start, cap).encode()
            except NoRate:
                self._curves[key] = None
        return self._curves[key]

    async def _account_meta(self, account: str, *, refresh: bool = False) -> _Meta:
        meta = None if refresh else self._meta.get(account)
        if meta is None:
            country, tz, deck = await self.redis.hmget(
                self.keys.account(account), ["country", "timezone", "deck"]
            )
            meta = _Meta(
                _s(country) or self.settings.default_country,
                _s(tz) or "Europe/Warsaw",
                _s(deck),
            )
            if country is not None:
                self._meta[account] = meta
        return meta

    async def account_country(self, account: str) -> str:
        """The home country numbers of this account are normalised with."""
        return (await self._account_meta(account)).country

    def forget(self, account: str) -> None:
        """Drop cached settings of an account (after an operator changed them)."""
        self._meta.pop(account, None)

    # -- answer / renew ----------------------------------------------------------------------

    async def answer(
        self, account: str, call_id: str, at: datetime | None = None, *, switch: str = ""
    ) -> str:
        at = at or datetime.now(UTC)
        key = self.keys.call(account, call_id, self.switch_of(switch))
        res = await self._scripts["answer"](keys=[key], args=[_ms(at)])
        return _s(res)

    async def renew(self, account: str, call_id: str, target_s: int, *, switch: str = "") -> Grant:
        """Extend an open call's grant towards `target_s` seconds from its answer."""
        switch = self.switch_of(switch)
        call = await self.call(account, call_id, switch=switch)
        if call.get("state") != "open":
            return Grant(Decision.DENY, "CALL_NOT_OPEN", 0, call_id)
        start = _from_ms(call.get("answered_at")) or datetime.now(UTC)
        curve = ""
        deck = await self.decks.version(call.get("deck", ""), int(call.get("deck_version") or 0))
        if deck is not None:
            rates = deck.lookup(call.get("e164", "").lstrip("+"))
            if rates is not None:
                cap = min(target_s, self.settings.max_call_s)
                curve = grant_curve(deck, rates, start, cap).encode()
        if not curve and call.get("emergency") != "1":
            return Grant(Decision.DENY, Reason.NO_RATE, int(call.get("granted", 0)), call_id)
        meta = await self._account_meta(account)
        day = datetime.now(UTC).astimezone(ZoneInfo(meta.timezone)).date().isoformat()
        res = await self._scripts["renew"](
            keys=self.keys.call_keys(account, call_id, switch)[:4],
            args=[
                call_id,
                account,
                str(target_s),
                str(self.settings.ttl_extra_s),
                day,
                curve,
                call_ref(switch, call_id),
                "1" if self.settings.refuse_unverified else "0",
            ],
        )
        return Grant(Decision(_s(res[0])), _s(res[1]), int(res[2]), call_id, int(res[3]))

    # -- finish ------------------------------------------------------------------------------

    async def finish(
        self, account: str, call_id: str, outcome: Outcome, *, switch: str = ""
    ) -> Settlement:
        if not CALL_ID.match(call_id):
            raise LedgerError("BAD_CALL_ID", f"call_id {call_id!r} is not acceptable")
        switch = self.switch_of(switch)
        call = await self.call(account, call_id, switch=switch)
        meta = await self._account_meta(account)
        outcome = _monotonic(call, _trust_seen_answer(call, outcome))
        answered_at = outcome.answered_at or (outcome.ended_at - timedelta(seconds=outcome.billsec))
        rated = billable = 0
        bundle = ("0", "0")  # seconds taken from a bundle and the deck's price of them
        fallback = ["", "", "invalid", "", switch, "", "", "", "0", ""]
        if call.get("state") in ("finished", "denied"):
            pass  # the script answers DUPLICATE without moving money
        elif call:
            deck = await self.decks.version(
                call.get("deck", ""), int(call.get("deck_version") or 0)
            )
            if deck is not None and call.get("prefix") and outcome.answered:
                r = rate_call(deck, call["e164"].lstrip("+"), answered_at, outcome.billsec)
                rated, billable = r.cost, r.billable_seconds
                bundle = _bundle_part(deck, call, answered_at, billable)
        else:
            fallback, rated, billable = await self._unauthorized(meta, outcome, answered_at, switch)
        day = outcome.ended_at.astimezone(ZoneInfo(meta.timezone)).date().isoformat()
        used = _carriers_used(call, outcome)
        res = await self._script(
            "finish",
            self.keys.call_keys(account, call_id, switch),
            [
                call_id,
                account,
                "1" if outcome.answered else "0",
                str(outcome.billsec),
                str(rated),
                _ms(answered_at) if outcome.answered else "",
                _ms(outcome.ended_at),
                outcome.disposition,
                outcome.hangup_cause,
                day,
                str(self.settings.record_ttl_s),
                *fallback,
                call_ref(switch, call_id),
                *used,
                *await self._buy(used[0], call, outcome, answered_at),
                outcome.timing if used[0] else "",
                *bundle,
            ],
        )
        status = _s(res[0])
        if call.get("carrier_held") == "1":  # its place on the carrier is free (repeat-safe)
            held = self.keys.carrier_open(call.get("carrier", ""))
            await self.redis.zrem(held, expiry_member(account, switch, call_id))
        if status == "DUPLICATE":
            return Settlement(call_id, status, int(res[2]), 0, 0, _s(res[1]))
        if int(res[3]):
            log.warning("call %s of %s finished without authorization", call_id, account)
        return Settlement(call_id, status, int(res[2]), rated, billable, _s(res[1]))

    async def _buy(
        self, carrier: str, call: dict[str, str], outcome: Outcome, answered_at: datetime
    ) -> tuple[str, str, str]:
        """(buy deck, version, exact cost) of an answered call on the carrier it used, by the
        carrier's buy deck in effect at the answer; nothing for other calls."""
        if not (carrier and outcome.answered and call.get("state") in ("open", "expired")):
            return "", "0", "0"
        found = {c.name: c for c in (await self.carriers.current())[0]}.get(carrier)
        deck = await self.decks.current(found.deck, answered_at) if found else None
        if deck is None:
            return "", "0", "0"
        try:
            cost = rate_call(deck, call["e164"].lstrip("+"), answered_at, outcome.billsec).cost
        except NoRate:
            return deck.name, str(deck.version), "0"
        sold_in = call.get("currency") or deck.currency
        # the margin is sell - buy: a buy deck in another currency is converted at the answer
        # (rounded up; no rate any more: 0, as for no rate, and `cdr rerate --buy` fixes it)
        converted = self.carriers.fx.convert(cost, deck.currency, sold_in, answered_at)
        return deck.name, str(deck.version), str(converted or 0)

    async def _unauthorized(
        self, meta: _Meta, outcome: Outcome, answered_at: datetime, switch: str
    ) -> tuple[list[str], int, int]:
        """Fields and price of a call the ledger never saw authorized."""
        try:
            number = normalise(outcome.dialled, meta.country)
        except InvalidNumber:
            number = None
        klass = number.number_class.value if number else "invalid"
        e164 = number.e164 if number else ""
        prefix = name = ""
        version = rated = billable = 0
        currency = ""
        deck = await self.decks.current(meta.deck, answered_at) if meta.deck else None
        if deck and number and number.number_class is not NumberClass.EMERGENCY:
            try:
                r = rate_call(
                    deck, number.digits, answered_at, outcome.billsec, answered=outcome.answered
                )
                prefix, name, version, rated, billable = (
                    r.prefix,
                    r.name,
                    deck.version,
                    r.cost,
                    r.billable_seconds,
                )
                currency = deck.currency
            except NoRate:
                pass
        fields = [
            outcome.dialled,
            e164,
            klass,
            "",
            switch,
            prefix,
            name,
            meta.deck,
            str(version),
            currency,
        ]
        return fields, rated, billable

    # -- inspection and housekeeping ----------------------------------------------------------

    async def call(self, account: str, call_id: str, *, switch: str = "") -> dict[str, str]:
        key = self.keys.call(account, call_id, self.switch_of(switch))
        if self.pipe is not None:  # a standalone Redis (RESP2): field, value, field, ...
            flat = await self.pipe.execute("HGETALL", key)
            return {_s(k): _s(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        raw = await self.redis.hgetall(key)
        return {_s(k): _s(v) for k, v in raw.items()}

    async def open_calls(self, account: str) -> dict[str, int]:
        """Reservation of each open call of an account, by `switch/call_id`."""
        raw = await self.redis.hgetall(self.keys.open_calls(account))
        return {_s(k): int(v) for k, v in raw.items()}

    async def touch(self, account: str, call_id: str, *, switch: str = "", **fields: str) -> bool:
        """Store facts about an open call (channel ids, heartbeats); False if not open."""
        args = [x for kv in fields.items() for x in kv]
        key = self.keys.call(account, call_id, self.switch_of(switch))
        res = await self._scripts["touch"](keys=[key], args=args)
        return bool(int(res))

    async def account_statuses(self, accounts: list[str]) -> dict[str, str]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hget(self.keys.account(account), "status")
            values = await pipe.execute()
        return {a: _s(v) or "unknown" for a, v in zip(accounts, values, strict=True)}

    async def open_sessions(self) -> list[dict[str, str]]:
        """Every call the ledger holds open (authorized, not finished nor expired)."""
        out: list[dict[str, str]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in self.keys.tags():  # one round trip (per node), not one per tag
                pipe.zrange(self.keys.expiry(tag), 0, -1)
            per_tag = await pipe.execute()
        for members in per_tag:
            # in slices, each followed by a yield: serve's sweeper reads every open call
            # every few seconds (27-40 ms for 500 calls on a loaded host), and parsing all
            # the replies in one go would hold the authorizations on its loop behind it
            for i in range(0, len(members), _SESSIONS_SLICE):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for member in members[i : i + _SESSIONS_SLICE]:
                        pipe.hgetall(self.keys.call(*_account_call_switch(member)))
                    records = await pipe.execute()
                for raw in records:
                    record = {_s(k): _s(v) for k, v in raw.items()}
                    if record.get("state") == "open":
                        out.append(record)
                await asyncio.sleep(0)
        return out

    async def running(
        self, call_id: str, *, switch: str = "", account: str = ""
    ) -> list[dict[str, str]]:
        """Open calls with this call id on `switch` (default: this ledger's), of `account` if
        given. More than one means accounts share the call id: the caller must choose."""
        switch = self.switch_of(switch)
        return [
            r
            for r in await self.open_sessions()
            if r.get("call_id") == call_id
            and r.get("switch") == switch
            and (not account or r.get("account") == account)
        ]

    async def upgrade_calls(self) -> int:
        """Once per Redis: move call records written before calls carried their switch to
        their switch/call id keys (open or finished: a late finish or replay of one must find
        it). Returns how many moved; a marker key makes later starts skip the scan."""
        marker = self.keys.layout_marker()
        if _s(await self.redis.get(marker)) == "switch":
            return 0
        moved = 0
        pattern = f"{self.keys.prefix}:*:call:*"
        async for raw in self.redis.scan_iter(match=pattern, count=1000):
            parsed = self.keys.parse_call(_s(raw))
            if parsed is None or "/" in parsed[1]:
                continue
            account, call_id = parsed
            switch = _s(await self.redis.hget(_s(raw), "switch"))
            if not SWITCH.match(switch):
                log.warning("call record %s has no usable switch: left as it is", _s(raw))
                continue
            keys = [
                _s(raw),
                self.keys.call(account, call_id, switch),
                self.keys.open_calls(account),
                self.keys.expiry(self.keys.tag(account)),
            ]
            moved += int(
                await self._scripts["upgrade_call"](keys=keys, args=[account, call_id, switch])
            )
        await self.redis.set(marker, "switch")
        return moved

    async def sweep(self, limit: int = 1000, *, due_before_ms: int | None = None) -> int:
        """Release reservations of calls whose finish never came. Returns how many."""
        return (await self.sweep_counted(limit, due_before_ms=due_before_ms)).released

    async def sweep_counted(self, limit: int = 1000, *, due_before_ms: int | None = None) -> Swept:
        """Like sweep; only calls due before `due_before_ms` (epoch ms) when given: those
        whose outcome can no longer be on its way (see switch.outcome_log)."""
        seconds, micros = await self.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        if due_before_ms is not None:
            now_ms = min(now_ms, due_before_ms)
        released = estimated = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in self.keys.tags():  # one round trip (per node), not one per tag
                pipe.zrangebyscore(self.keys.expiry(tag), "-inf", now_ms, start=0, num=limit)
            due = await pipe.execute()
        for members in due:
            for member in members:
                account, switch, call_id = parse_member(_s(member))
                res = int(
                    await self.money(
                        "expire",
                        self.keys.call_keys(account, call_id, switch),
                        [call_id, account, call_ref(switch, call_id)],
                    )
                )
                released += res > 0
                estimated += res == 2
        return Swept(released, estimated)


def _bundle_part(
    deck: Deck, call: dict[str, str], answered_at: datetime, billable: int
) -> tuple[str, str]:
    """(seconds, price) of a call's part its bundle pays: its billable seconds (rounded up to
    the deck's increments) up to those it reserved in the bundle, priced by the deck as a call
    of that length (so a bundle's last seconds are never billed twice)."""
    reserved = int(call.get("bundle_res") or 0)
    if not call.get("bundle") or reserved <= 0 or billable <= 0:
        return "0", "0"
    seconds = min(reserved, billable)
    price = rate_call(deck, call["e164"].lstrip("+"), answered_at, seconds).cost
    return str(seconds), str(price)


def _trust_seen_answer(call: dict[str, str], outcome: Outcome) -> Outcome:
    """When the session controller saw the answer, talk time runs from that moment to the
    reported end, whatever a reporter that could not see it (the dialplan) says."""
    seen = _from_ms(call.get("answered_at"))
    if seen is None or call.get("state") != "open":
        return outcome
    talk = max(0.0, (outcome.ended_at - seen).total_seconds())
    return replace(
        outcome,
        answered=True,
        billsec=int(talk + 0.5),
        answered_at=seen,
        disposition=outcome.disposition if outcome.answered else "ANSWER",
    )


def _account_call_switch(member: Any) -> tuple[str, str, str]:
    account, switch, call_id = parse_member(_s(member))
    return account, call_id, switch


def _monotonic(call: dict[str, str], outcome: Outcome) -> Outcome:
    """started (authorized) <= answered <= ended, whatever clocks and late reports say."""
    started = _from_ms(call.get("authorized_at"))
    ended = max(outcome.ended_at, started) if started else outcome.ended_at
    answered = outcome.answered_at
    if answered is not None:
        answered = min(max(answered, started) if started else answered, ended)
    if (ended, answered) == (outcome.ended_at, outcome.answered_at):
        return outcome
    return replace(outcome, ended_at=ended, answered_at=answered)


def _carriers_used(call: dict[str, str], outcome: Outcome) -> tuple[str, str]:
    """The carrier the call went out through last and its attempts (`carrier:code;`), by
    the names the grant offered (an endpoint it did not offer is kept as the switch said)."""
    names = dict(zip(call.get("endpoints", "").split("|"), call.get("routes", "").split(","),
                     strict=False))  # fmt: skip
    tried = []
    for attempt in filter(None, outcome.attempts.split(";")):
        endpoint, _, code = attempt.partition(":")
        tried.append(f"{names.get(endpoint, endpoint)}:{code};")
    used = names.get(outcome.endpoint, outcome.endpoint) if outcome.endpoint else ""
    if not used and call.get("control") == "ari" and call.get("routes"):
        # a Stasis call's outcome line names the carrier only after a failover (the
        # controller sets it then): before, it is the one the call holds a place on
        used = call.get("carrier", "")
    return used, "".join(tried)


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _clean(text: str) -> str:
    """Caller IDs are attacker-controlled: keep them printable and short."""
    return "".join(ch for ch in text if ch.isprintable())[:128]


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def _from_ms(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromtimestamp(int(text) / 1000, UTC)


def _presented(caller: str, country: str) -> str:
    """The caller's number in E.164 as the account's numbers are kept, '' if it is none."""
    if not caller or not any(c.isdigit() for c in caller):
        return ""
    try:
        return normalise(caller, country).e164
    except InvalidNumber:
        return ""


def _free_curve(cap: int) -> str:
    """A free inbound call: nothing to connect, nothing per second, up to `cap`."""
    return Curve(1, 0, 1, "up", cap, ((0, cap, 1, 0),)).encode()
