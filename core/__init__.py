"""The ground floor: what every other package may use and which imports none of them.

Public surface: `env` (the one typed TOLLGATE_* reader), `pg.Conn` (the PostgreSQL
connection type), `db` (versioned schema migrations, SQL in `migrations/`), `cliout`
(CLI output and exit codes shared by every package's sub-commands), `loop.run_async`
(the event loop every process runs on)."""
