"""Redis key layout. Every key of an account shares one hash tag, so each ledger script
touches a single slot and runs unchanged on Redis Cluster. The tag is a shard number
derived from the account, which lets the CDR stream and the expiry index of that shard
live in the same slot as the accounts that write to them.

A call is identified by its switch, its account and the switch's call id (Asterisk's
uniqueid is unique per box only): `call_ref` joins switch and call id, and that reference
names the call record, its field in the account's open calls and its expiry member.

The number of tags (`TOLLGATE_SHARDS`) is chosen up front: a Redis Cluster spreads tags,
not accounts, over its masters, so the count bounds how many masters can share the load and
how evenly. 256 keeps 3 masters within a few per cent of each other and leaves one tag per
master up to 256 masters, while the CDR writer and the abuse detector still read every
tag's stream in a few round trips per node. Changing it moves every account's keys:
`tollgate redis retag` (rating.retag) does that, and Redis remembers the count it holds
(`layout_shards`) so a process configured with another one refuses to start."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DEFAULT_SHARDS = 256
# The route of a quarantined number (`Keyspace.did`): no account (an account id never starts
# with '-'); the switch answers its calls 410 Gone until the number is back in the pool.
DID_GONE = "-gone"


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str = "tg"
    shards: int = DEFAULT_SHARDS

    def tag(self, account: str) -> str:
        return f"{{s{zlib.crc32(account.encode()) % self.shards}}}"

    def tags(self) -> list[str]:
        return [f"{{s{n}}}" for n in range(self.shards)]

    def account(self, account: str) -> str:
        return f"{self.prefix}:{self.tag(account)}:acct:{account}"

    def open_calls(self, account: str) -> str:
        return f"{self.prefix}:{self.tag(account)}:open:{account}"

    def open_inbound(self, account: str) -> str:
        """The account's open inbound calls (a subset of its open calls): the inbound limit."""
        return f"{self.prefix}:{self.tag(account)}:openin:{account}"

    def call(self, account: str, call_id: str, switch: str = "") -> str:
        return f"{self.prefix}:{self.tag(account)}:call:{account}:{call_ref(switch, call_id)}"

    def parse_call(self, key: str) -> tuple[str, str] | None:
        """(account, call reference) of a call record's key; None for any other key."""
        head = f"{self.prefix}:"
        if not key.startswith(head):
            return None
        tag, sep, rest = key[len(head) :].partition(":call:")
        account, colon, ref = rest.partition(":")  # account ids have no ':'
        if not (sep and colon and account and ref) or tag != self.tag(account):
            return None
        return account, ref

    def layout_marker(self) -> str:
        """Set once every call record has its switch in its key (see Ledger.upgrade_calls)."""
        return f"{self.prefix}:layout:calls"

    def layout_shards(self) -> str:
        """The number of hash tags the keys in this Redis were written with."""
        return f"{self.prefix}:layout:shards"

    def expiry(self, tag: str) -> str:
        return f"{self.prefix}:{tag}:expiry"

    def cdr_stream(self, tag: str) -> str:
        return f"{self.prefix}:{tag}:cdr"

    def inbound_stream(self) -> str:
        """Inbound calls the switch reports (Wangiri detection); not tied to one account."""
        return f"{self.prefix}:inbound"

    def call_keys(self, account: str, call_id: str, switch: str = "") -> list[str]:
        """KEYS for authorize/finish/expire: account, open calls, call, expiry, stream, open
        inbound calls."""
        tag = self.tag(account)
        return [
            self.account(account),
            self.open_calls(account),
            self.call(account, call_id, switch),
            self.expiry(tag),
            self.cdr_stream(tag),
            self.open_inbound(account),
        ]

    def did(self, e164: str) -> str:
        """The account a number (DID) is assigned to: where inbound calls are routed."""
        return f"{self.prefix}:did:{e164}"

    def carriers(self) -> str:
        """Every carrier, one JSON document (carriers are few and read together)."""
        return f"{self.prefix}:{{carriers}}:all"

    def carrier_open(self, name: str) -> str:
        """A carrier's open calls (zset: expiry member -> hold limit, ms): its capacity."""
        return f"{self.prefix}:{{carrier:{name}}}:open"

    def carrier_rate(self, name: str) -> str:
        """A carrier's calls-per-second clock (GCRA theoretical arrival time, microseconds)."""
        return f"{self.prefix}:{{carrier:{name}}}:tat"

    def fx_rates(self) -> str:
        """Exchange rates (newest of each pair), one JSON document with the carriers' tag."""
        return f"{self.prefix}:{{carriers}}:fx"

    def route_rules(self) -> str:
        """Operators' routing rules (pin, exclude, allow a loss), one JSON document."""
        return f"{self.prefix}:{{carriers}}:rules"

    # A deck's keys share the deck's own tag: publishing writes the version and the pointer
    # to it in one MULTI, which Redis Cluster allows only within one slot.
    def deck_current(self, name: str) -> str:
        return f"{self.prefix}:{{deck:{name}}}:current"

    def deck_schedule(self, name: str) -> str:
        """Hash: version -> epoch ms from which it prices calls."""
        return f"{self.prefix}:{{deck:{name}}}:schedule"

    def deck_version(self, name: str, version: int) -> str:
        return f"{self.prefix}:{{deck:{name}}}:v{version}"

    def deck_building(self, name: str, version: int) -> str:
        """A version's compiled form while it is appended piece by piece, then renamed."""
        return f"{self.prefix}:{{deck:{name}}}:v{version}:building"


def call_ref(switch: str, call_id: str) -> str:
    """`switch/call_id`: neither a switch name nor a call id may contain '/'. An empty
    switch gives the bare call id (records written before calls carried their switch)."""
    return f"{switch}/{call_id}" if switch else call_id


def parse_ref(ref: str) -> tuple[str, str]:
    """(switch, call_id) of a call reference."""
    switch, _, call_id = ref.rpartition("/")
    return switch, call_id


def expiry_member(account: str, switch: str, call_id: str) -> str:
    return f"{account}|{call_ref(switch, call_id)}"


def parse_member(member: str) -> tuple[str, str, str]:
    """(account, switch, call_id) of an expiry member."""
    account, _, ref = member.partition("|")
    return (account, *parse_ref(ref))
