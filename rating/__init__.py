"""The engine: numbers, rate decks and tariffs, accounts, and the Redis ledger.

Public surface: `numbers.normalise`, `deck.load_deck` / `deck_store` (versioned decks),
`tariff.rate_call`, `accounts.Account`, `account_store.AccountStore` (settings and ledger
entries, PostgreSQL first), `ledger.Ledger` (authorize, answer, renew, finish, sweep: one
Lua script each), `money` (micro-units and the guarded amount parser), `repair` (Redis
brought in step with PostgreSQL)."""
