"""Telephone numbers (DIDs): inventory, assignment to accounts, caller id."""
