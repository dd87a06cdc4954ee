"""Command handlers named by "module:function" and imported when first called.

`tollgate --help` and simple commands must not pay for importing what other commands need
(asyncpg, redis, aiohttp, every package's modules): parsers refer to their handlers with a
`Lazy`, which imports the module only when the command runs."""

from __future__ import annotations

import importlib
from typing import Any


class Lazy:
    """A callable standing for `module:function`; calling it imports and calls the target."""

    __slots__ = ("_target", "ref")

    def __init__(self, ref: str) -> None:
        module, sep, name = ref.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"a handler is named 'module:function', not {ref!r}")
        self.ref = ref
        self._target: Any = None

    def resolve(self) -> Any:
        if self._target is None:
            module, _, name = self.ref.partition(":")
            self._target = getattr(importlib.import_module(module), name)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.ref!r})"
