-- Panel tokens expire (customer tokens always, operator tokens when asked) and can be
-- rotated: the new token records which one it replaced, the old one is revoked.
alter table panel_tokens add column expires_at timestamptz;
alter table panel_tokens add column rotated_from text references panel_tokens(id) on delete set null;
