"""Redis key layout. Every key of an account shares one hash tag, so each ledger script
touches a single slot and runs unchanged on Redis Cluster. The tag is a shard number
derived from the account, which lets the CDR stream and the expiry index of that shard
live in the same slot as the accounts that write to them."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str = "tg"
    shards: int = 16

    def tag(self, account: str) -> str:
        return f"{{s{zlib.crc32(account.encode()) % self.shards}}}"

    def tags(self) -> list[str]:
        return [f"{{s{n}}}" for n in range(self.shards)]

    def account(self, account: str) -> str:
        return f"{self.prefix}:{self.tag(account)}:acct:{account}"

    def open_calls(self, account: str) -> str:
        return f"{self.prefix}:{self.tag(account)}:open:{account}"

    def call(self, account: str, call_id: str) -> str:
        return f"{self.prefix}:{self.tag(account)}:call:{account}:{call_id}"

    def expiry(self, tag: str) -> str:
        return f"{self.prefix}:{tag}:expiry"

    def cdr_stream(self, tag: str) -> str:
        return f"{self.prefix}:{tag}:cdr"

    def inbound_stream(self) -> str:
        """Inbound calls the switch reports (Wangiri detection); not tied to one account."""
        return f"{self.prefix}:inbound"

    def call_keys(self, account: str, call_id: str) -> list[str]:
        """KEYS for authorize/finish/expire: account, open calls, call, expiry, stream."""
        tag = self.tag(account)
        return [
            self.account(account),
            self.open_calls(account),
            self.call(account, call_id),
            self.expiry(tag),
            self.cdr_stream(tag),
        ]

    def deck_current(self, name: str) -> str:
        return f"{self.prefix}:deck:{name}:current"

    def deck_version(self, name: str, version: int) -> str:
        return f"{self.prefix}:deck:{name}:v{version}"
