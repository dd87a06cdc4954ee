"""Customers: customer records (the person or company behind accounts, its verification)
and their SIP logins (realtime PJSIP in PostgreSQL)."""
