-- Two tables for running tollgate in production: blocked SIP sources and the scheduler.

-- Source addresses `tollgate sip guard` blocked after repeated failed SIP authentications
-- (the firewall or Asterisk ACL does the blocking: docs/asterisk-integration.md); kept so
-- an operator sees who was blocked, why and until when.
create table sip_blocked_addresses (
    address     inet primary key,
    failures    integer not null check (failures > 0),
    logins      text[] not null default '{}',  -- the logins it tried (at most a few)
    blocked_at  timestamptz not null,
    until       timestamptz not null,
    check (until > blocked_at)
);

-- `tollgate scheduler`: the periodic jobs' last runs. Several replicas may run; one at a
-- time holds the advisory lock and runs what is due; all of them export these times.
create table scheduler_runs (
    job             text primary key,
    last_success_at timestamptz,
    last_attempt_at timestamptz not null,
    last_error      text not null default ''
);
