"""Throwaway FastAGI server for checking the rig's dialplan (not tollgate's real server).

It answers ``authorize`` with the variable contract (ALLOW or DENY), or never answers
(``--mode hang``), and records every request (``authorize`` and ``finish``) as one JSON
line in ``--log``. Freeze it with SIGSTOP to simulate a stalled server.

    python tests/e2e/fake_agi.py --port 4573 --mode allow --max-ms 3000 --log agi.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import TextIO


def e164(extension: str) -> str:
    """The dialled number as E.164 with '+', assuming Polish national numbers."""
    digits = "".join(ch for ch in extension if ch.isdigit())
    if extension.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return "+48" + digits


class FakeAgi:
    def __init__(self, args: argparse.Namespace, log: TextIO) -> None:
        self.args = args
        self.log = log
        self.counter = 0

    def record(self, entry: dict[str, object]) -> None:
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: dict[str, str] = {}
        try:
            while True:
                line = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    break
                key, _, value = line.partition(":")
                env[key.strip()] = value.strip()
            request = env.get("agi_network_script", "")
            args = [env[f"agi_arg_{i}"] for i in range(1, 20) if f"agi_arg_{i}" in env]
            self.record({"t": time.time(), "script": request, "args": args, "env": env})
            if request == "authorize":
                await self.authorize(env, reader, writer)
        finally:
            writer.close()

    async def authorize(
        self, env: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        a = self.args
        if a.mode == "hang":
            await asyncio.sleep(3600)
            return
        if a.delay_ms:
            await asyncio.sleep(a.delay_ms / 1000)
        self.counter += 1
        call_id = f"fake-{int(time.time())}-{self.counter}"
        # TOLLGATE_GRANT = DECISION,REASON,SIP_CODE,MAX_MS,DIAL,CALL_ID,CONTROL,CLI (one
        # variable, split by the dialplan)
        if a.mode == "allow":
            dial = a.dial or e164(env.get("agi_extension", ""))
            grant = f"ALLOW,OK,200,{a.max_ms},{dial},{call_id},,"
        else:
            grant = f"DENY,{a.reason},{a.sip_code},0,,{call_id},,"
        writer.write(f'SET VARIABLE TOLLGATE_GRANT "{grant}"\n'.encode())
        await writer.drain()
        await reader.readline()  # 200, or HANGUP: nothing more to say either way


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4573)
    p.add_argument("--mode", choices=["allow", "deny", "hang"], default="allow")
    p.add_argument("--max-ms", type=int, default=3000)
    p.add_argument("--dial", default="", help="TOLLGATE_DIAL (default: derived from the number)")
    p.add_argument("--sip-code", type=int, default=403)
    p.add_argument("--reason", default="FORBIDDEN")
    p.add_argument("--delay-ms", type=int, default=0, help="answer authorize this late")
    p.add_argument("--log", type=Path, required=True, help="JSON lines, one per request")
    args = p.parse_args()
    with args.log.open("a", encoding="utf-8") as log:
        agi = FakeAgi(args, log)
        server = await asyncio.start_server(agi.handle, args.host, args.port)
        print(f"fake_agi listening on {args.host}:{args.port} mode={args.mode}", flush=True)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
