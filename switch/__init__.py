"""The Asterisk side: turns switch events into ledger requests and grants into channel
variables; never rates.

Public surface: `agi.FastAgiServer` (the FastAGI protocol), `fastagi.FastAgiAdapter`
(authorize / finish / inbound scripts), `ari.AriClient` and `sessions.SessionController`
(ARI session control: slices, renewals, dead-man deadlines, reconciliation)."""
