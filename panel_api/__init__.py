"""The panel: an aiohttp HTTP API for customers (their balance, calls, documents) and
operators (accounts, money, decks, findings, running calls), and the customer web page."""
