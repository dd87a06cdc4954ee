"""A process's settings and connections, above the engine and below everything that runs.

Public surface: `settings.Settings` (TOLLGATE_* settings of a process, `from_env`),
`services.services()` / `services.Services` (Redis, the ledger, the PostgreSQL pool and the
account store, created in one place and passed in explicitly), `recovery` (start-up and
running repair of Redis from PostgreSQL)."""
