-- SIP logins of accounts, and the tables Asterisk's realtime PJSIP reads them from.
--
-- `sip_logins` is tollgate's record (who owns a login, its state). The schema `asterisk`
-- holds Asterisk's standard realtime tables (names and columns as Asterisk's own alembic
-- scripts define them, the subset tollgate sets; Asterisk ignores columns it does not know
-- and uses its defaults for the ones missing). Only ACTIVE logins have rows in
-- ps_endpoints/ps_auths/ps_aors: disabling or locking a login deletes them, so Asterisk,
-- which reads these tables on every REGISTER and INVITE (no cache), refuses the login at
-- once, with no reload. ps_contacts is written by Asterisk itself (registrations), so
-- several Asterisk boxes sharing this database share the registrations.
create table sip_logins (
    login       text primary key check (login ~ '^[0-9A-Za-z_.-]{1,40}$'),
    account     text not null references accounts(id) on delete restrict,
    status      text not null default 'active' check (status in ('active', 'disabled', 'locked')),
    -- MD5(login:realm:password), what digest authentication needs; the password itself is
    -- shown once when it is set and never stored.
    digest_ha1  text not null check (digest_ha1 ~ '^[0-9a-f]{32}$'),
    realm       text not null,
    max_contacts integer not null default 1 check (max_contacts between 1 and 100),
    status_reason text not null default '',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create index sip_logins_account on sip_logins (account);

create schema if not exists asterisk;

create table asterisk.ps_endpoints (
    id text primary key references sip_logins(login) on delete cascade,
    transport text,
    aors text,
    auth text,
    context text,
    disallow text,
    allow text,
    direct_media text,
    accountcode text,
    force_rport text,
    rewrite_contact text,
    rtp_symmetric text,
    timers text,
    allow_subscribe text,
    dtmf_mode text,
    callerid text,
    identify_by text,
    ice_support text,
    media_encryption text,
    send_pai text,
    trust_id_inbound text,
    trust_id_outbound text,
    set_var text,
    language text,
    device_state_busy_at integer,
    outbound_auth text,
    from_user text,
    from_domain text,
    mailboxes text,
    rtp_timeout integer,
    rtp_timeout_hold integer,
    allow_transfer text,
    tone_zone text
);

create table asterisk.ps_auths (
    id text primary key references sip_logins(login) on delete cascade,
    auth_type text,
    nonce_lifetime integer,
    md5_cred text,
    password text,
    realm text,
    username text,
    password_digest text,
    supported_algorithms_uac text,
    supported_algorithms_uas text,
    refresh_token text,
    oauth_clientid text,
    oauth_secret text
);

create table asterisk.ps_aors (
    id text primary key references sip_logins(login) on delete cascade,
    contact text,
    default_expiration integer,
    mailboxes text,
    max_contacts integer,
    minimum_expiration integer,
    remove_existing text,
    remove_unavailable text,
    qualify_frequency integer,
    qualify_timeout double precision,
    qualify_2xx_only text,
    authenticate_qualify text,
    maximum_expiration integer,
    outbound_proxy text,
    support_path text,
    voicemail_extension text
);

-- Written by Asterisk (every field of a contact): no reference to sip_logins, since the
-- static configuration's endpoints register here too.
create table asterisk.ps_contacts (
    id text primary key,
    uri text,
    expiration_time bigint,
    qualify_frequency integer,
    outbound_proxy text,
    path text,
    user_agent text,
    qualify_timeout double precision,
    reg_server text,
    authenticate_qualify text,
    via_addr text,
    via_port integer,
    call_id text,
    endpoint text,
    prune_on_boot text,
    qualify_2xx_only text
);
create index ps_contacts_endpoint on asterisk.ps_contacts (endpoint);
create index ps_contacts_expiration on asterisk.ps_contacts (expiration_time);
