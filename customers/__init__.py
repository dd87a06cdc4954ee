"""Customers: customer records and their SIP logins (realtime PJSIP in PostgreSQL)."""
