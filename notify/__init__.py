"""Notifications: notices the terms require or customers asked for, through e-mail and
webhooks, each recorded in PostgreSQL with its delivery attempts."""
