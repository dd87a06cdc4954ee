"""The entry points: the `tollgate` command (`cli`), `serve` (the process next to an
Asterisk) and its Prometheus `metrics`. Nothing imports this package."""
