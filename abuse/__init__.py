"""Abuse and fraud detection that acts.

Public surface: `runner.AbuseDetector`, `findings` (stored findings and their life),
`actions`, `overrides`, `settings.AbuseSettings`, `cli.register`.

`runner.AbuseDetector` reads every shard's CDR stream (`{prefix}:{sN}:cdr`) through its own
consumer group ("abuse", independent of the CDR writer's) plus the optional inbound stream,
and feeds each call to the detectors (one module each under `detectors/`). Their sliding
windows live in Redis under the account's hash tag (`{prefix}:{sN}:abuse:{account}:...`,
with TTLs), updated by one Lua script per event that also remembers the event, so a
re-delivered entry is never counted twice and a restarted detector carries on where it was.
A detector that fires yields a Signal; `findings` stores it in PostgreSQL (one finding per
account, rule, subject and UTC day) and `actions` records, alerts or suspends by severity.
An entry is acknowledged only after its state update and any finding are stored.

Inbound calls never reach the ledger, so Wangiri needs the switch adapter to feed
`{prefix}:inbound` (XADD, one entry per inbound call, all values strings):
  account   the account the called line belongs to
  caller    the calling number, E.164 (`+...`) or as the carrier presented it
  duration  seconds from offer to hang-up (ringing included), integer
  ts        when the call arrived, epoch milliseconds
Forwarded outbound legs are recognised by an optional `rdnis` or `forwarded` field in the CDR
(the redirecting number / SIP Diversion); the switch adapter must pass it to the ledger."""
