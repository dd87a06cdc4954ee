"""switch."""
