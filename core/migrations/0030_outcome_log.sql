-- How far tollgate has settled the call outcomes Asterisk appends to its outcome log
-- (cdr_custom: one line per CDR). One row per log (its configured path): the file's
-- inode, the byte offset up to which every line was settled or set aside, and the file's
-- first line (an inode number may be reused by a later file after a rotation).
create table outcome_log_offsets (
    log          text primary key,
    inode        bigint not null,
    byte_offset  bigint not null check (byte_offset >= 0),
    first_line   text not null default '',
    updated_at   timestamptz not null default now()
);

-- Lines no ledger can ever accept (malformed, a call id the ledger refuses): kept for an
-- operator, written in the same transaction that moves the offset past them.
create table outcome_log_rejects (
    log          text not null,
    inode        bigint not null,
    byte_offset  bigint not null,
    line         text not null,
    error        text not null,
    rejected_at  timestamptz not null default now(),
    primary key (log, inode, byte_offset)
);
