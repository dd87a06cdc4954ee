"""One pyVoIP phone for the e2e rig, run as a subprocess by tests/e2e/test_pyvoip.py.

    pyvoip_phone.py caller --server-port 5060 --user pyvoip-caller --ip 127.0.0.9 \
        --sip-port 5090 --rtp-port 30000 --number 601234567 --timeout 40
    pyvoip_phone.py callee --server-port 5060 --user pyvoip-callee --ip 127.0.0.1 \
        --sip-port 5070 --rtp-port 30002 --timeout 40

Both modes register to Asterisk first (pyVoIP always does). The caller dials one number and
waits for the end of the call; the callee answers the first INVITE and waits for its BYE.
Every event is one JSON object per line on stdout, with "event" and "t" (epoch seconds):

    registered                      the REGISTER got its 200
    sip      line, call_id, cseq     every SIP message the phone received (first line)
    calling  number, call_id         caller: the INVITE went out (Asterisk sent 100 Trying)
    invite   number, to, call_id     callee: an INVITE arrived (number = Request-URI user)
    answered call_id                 the call is up (callee: 200 sent; caller: 200 received)
    bye      call_id                 a BYE arrived from Asterisk
    rejected status, call_id         caller: a final error response to the INVITE
    hangup   call_id                 caller: the phone hung up itself (--hold-s ran out)
    error    message                 something failed (e.g. registration refused); the
                                     phone gives up
    exit     reason                  last line: bye, rejected, timeout, cancel or error

The events come from the SIP messages the phone receives, not from pyVoIP's call state.
Two pyVoIP 1.6.8 bugs are patched here, in this process only: its ACK to a 200 OK carries a
made-up To tag, so Asterisk never matches it, keeps retransmitting the 200 and cannot send the
caller a BYE for 32 s (fix_ack); and its receive loop briefly leaves the socket non-blocking
after releasing its lock, which can make call() fail (locked_nonblocking).

The process always exits within --timeout seconds (plus at most --stop-s to unregister):
pyVoIP's stop() can hang, so it runs in a daemon thread and the process ends with os._exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# pyVoIP.SIP cannot be imported before pyVoIP.VoIP (circular import in pyVoIP 1.6.8).
# isort: off
from pyVoIP.VoIP import CallState, PhoneStatus, VoIPCall, VoIPPhone
from pyVoIP import SIP

# isort: on

_print_lock = threading.Lock()


def emit(event: str, **fields: object) -> None:
    line = json.dumps({"event": event, "t": round(time.time(), 3), **fields})
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def request_user(heading: bytes) -> str:
    """User part of a request line's URI: INVITE sip:+48601234567@host:port SIP/2.0."""
    m = re.match(rb"^\S+\s+sips?:([^@;>\s]+)@", heading)
    return m.group(1).decode("utf-8", "replace") if m else ""


@contextmanager
def locked_nonblocking(lock: threading.Lock, sock: socket.socket) -> Iterator[None]:
    """pyVoIP's receive loop, fixed: the socket is blocking again BEFORE the lock is released.

    pyVoIP 1.6.8 restores blocking mode after releasing the lock, so call(), which takes the
    lock and reads the socket expecting it blocking, can hit BlockingIOError in between.
    """
    with lock:
        sock.setblocking(False)
        try:
            yield
        finally:
            sock.setblocking(True)


def fix_ack(ack: str, response: SIP.SIPMessage) -> str:
    """Make pyVoIP 1.6.8's ACK match the dialog of the response it acknowledges.

    pyVoIP puts a freshly generated tag in the ACK's To header (and, for a 2xx, sends it to
    the To URI with the INVITE's branch). Asterisk never matches that ACK: it retransmits its
    200 OK and, as RFC 3261 forbids a BYE before the ACK, cannot end the caller's leg until
    its 32 s timer H fires. Use the response's To tag; for a 2xx, its Contact as the
    Request-URI and a new branch (the ACK of a 2xx is a transaction of its own).
    """
    to = response.headers.get("To", {})
    lines = ack.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("To: ") and to.get("tag"):
            lines[i] = f"To: {to['raw']};tag={to['tag']}"
    if 200 <= int(response.status) < 300:
        contact = re.search(r"<([^>]+)>", str(response.headers.get("Contact", "")))
        if contact:
            lines[0] = f"ACK {contact.group(1)} SIP/2.0"
        for i, line in enumerate(lines):
            if line.startswith("Via: "):
                lines[i] = re.sub(r"branch=[^;]+", f"branch=z9hG4bK{uuid.uuid4().hex}", line)
                break
    return "\r\n".join(lines)


class SIPClient(SIP.SIPClient):
    """pyVoIP's SIP client with both fixes, reporting every message it receives."""

    def __init__(self, observe: Callable[[SIP.SIPMessage], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observe = observe

    def recv_loop(self) -> None:
        while self.NSD:
            try:
                with locked_nonblocking(self.recvLock, self.s):
                    self.recv()
            except BlockingIOError:
                time.sleep(0.01)

    def parse_message(self, message: SIP.SIPMessage) -> None:
        # Every received message passes here (the receive loop and the INVITE's wait for
        # 100 Trying): report it, then let pyVoIP handle it.
        self.observe(message)
        super().parse_message(message)

    def gen_ack(self, request: SIP.SIPMessage) -> str:
        return fix_ack(super().gen_ack(request), request)


class Phone:
    """A VoIPPhone plus the events the test needs, taken from the SIP messages it receives."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.done = threading.Event()
        self.reason = "timeout"
        self.answered_at: float | None = None
        self.call_id = ""
        self.phone = VoIPPhone(
            args.server,
            args.server_port,
            args.user,
            args.password,
            myIP=args.ip,
            callCallback=self.on_call if args.mode == "callee" else None,
            sipPort=args.sip_port,
            rtpPortLow=args.rtp_port,
            rtpPortHigh=args.rtp_port,
        )
        # Same arguments as VoIPPhone gives its own client; no call exists yet.
        self.phone.sip = SIPClient(
            self.observe,
            server=args.server,
            port=args.server_port,
            username=args.user,
            password=args.password,
            phone=self.phone,
            myIP=args.ip,
            myPort=args.sip_port,
            callCallback=self.phone.callback,
            fatalCallback=self.phone.fatal,
        )

    def finish(self, reason: str) -> None:
        if not self.done.is_set():
            self.reason = reason
            self.done.set()

    def observe(self, message: SIP.SIPMessage) -> None:
        headers: dict[str, Any] = message.headers
        call_id = str(headers.get("Call-ID", ""))
        cseq = headers.get("CSeq", {})
        cseq_text = f"{cseq.get('check', '')} {cseq.get('method', '')}".strip()
        emit(
            "sip", line=message.heading.decode("utf-8", "replace"), call_id=call_id, cseq=cseq_text
        )
        ours = bool(self.call_id) and call_id == self.call_id
        if message.type == SIP.SIPMessageType.MESSAGE:
            if message.method == "BYE" and ours:
                emit("bye", call_id=call_id)
                self.finish("bye")
            elif message.method == "CANCEL" and ours:
                self.finish("cancel")
        elif ours and cseq.get("method") == "INVITE":
            status = int(message.status)
            if status >= 300:
                emit("rejected", status=status, call_id=call_id)
                self.finish("rejected")

    # -- callee --------------------------------------------------------------------------------

    def on_call(self, call: VoIPCall) -> None:
        """pyVoIP runs this in a thread about 1 s after it sent 180 Ringing."""
        request = call.request
        to = request.headers.get("To", {})
        emit(
            "invite",
            number=request_user(request.heading),
            to=to.get("number") or "",
            call_id=call.call_id,
        )
        if self.call_id:  # only the first call is answered
            call.deny()
            return
        self.call_id = call.call_id
        time.sleep(self.args.answer_delay_s)
        call.answer()
        self.answered_at = time.time()
        emit("answered", call_id=call.call_id)
        # Keep this thread alive while the call lasts: pyVoIP forgets calls whose callback
        # thread has ended.
        self.done.wait()

    # -- caller --------------------------------------------------------------------------------

    def place_call(self) -> None:
        call = self.phone.call(self.args.number)
        self.call_id = call.call_id
        emit("calling", number=self.args.number, call_id=call.call_id)
        hold_until: float | None = None
        while not self.done.is_set():
            if call.state == CallState.ANSWERED and self.answered_at is None:
                self.answered_at = time.time()
                hold_until = time.monotonic() + self.args.hold_s
                emit("answered", call_id=call.call_id)
            if hold_until is not None and time.monotonic() > hold_until:
                emit("hangup", call_id=call.call_id)
                call.hangup()
                self.finish("hangup")
            self.done.wait(0.02)

    def run(self) -> None:
        self.phone.start()  # registers; raises when Asterisk refuses
        if self.phone.get_status() != PhoneStatus.REGISTERED:
            raise RuntimeError(f"registration failed: {self.phone.get_status()}")
        emit("registered", user=self.args.user, ip=self.args.ip, port=self.args.sip_port)
        # The socket is non-blocking until pyVoIP's receive loop has run once (it starts
        # 1 s after start()); call() reads it blocking, so give the loop time to start.
        time.sleep(1.2)
        if self.args.wait_file:
            # the test changes something on the switch (disables the login) before the call
            while not os.path.exists(self.args.wait_file):
                time.sleep(0.05)
        if self.args.mode == "caller":
            self.place_call()
        else:
            self.done.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("mode", choices=("caller", "callee"))
    p.add_argument("--server", default="127.0.0.1", help="Asterisk's SIP address")
    p.add_argument("--server-port", type=int, required=True)
    p.add_argument("--user", required=True, help="the pjsip endpoint/AOR name")
    p.add_argument("--password", default="", help="digest password (empty: no auth)")
    p.add_argument("--ip", default="127.0.0.1", help="address the phone binds and announces")
    p.add_argument("--sip-port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--number", default="", help="caller: the number to dial")
    p.add_argument("--hold-s", type=float, default=60, help="caller: hang up after this")
    p.add_argument("--wait-file", default="", help="caller: dial only once this file exists")
    p.add_argument("--answer-delay-s", type=float, default=0, help="callee: ring this long")
    p.add_argument("--timeout", type=float, default=60, help="exit after this many seconds")
    p.add_argument("--stop-s", type=float, default=2, help="time allowed to unregister")
    args = p.parse_args(argv)
    if args.mode == "caller" and not args.number:
        p.error("caller needs --number")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    phone: Phone | None = None
    runner_error: list[str] = []

    def runner() -> None:
        nonlocal phone
        try:
            phone = Phone(args)
            phone.run()
        except Exception as exc:
            runner_error.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=runner, name="pyvoip-phone", daemon=True)
    thread.start()
    thread.join(args.timeout)
    if runner_error:
        emit("error", message=runner_error[0])
        reason = "error"
    elif phone is not None and phone.done.is_set():
        reason = phone.reason
    else:
        reason = "timeout"
    if phone is not None:
        phone.done.set()  # releases a callee's callback thread
        stopper = threading.Thread(target=phone.phone.stop, name="pyvoip-stop", daemon=True)
        stopper.start()
        stopper.join(args.stop_s)
    emit("exit", reason=reason)
    os._exit(0 if reason in ("bye", "hangup") else 1)


if __name__ == "__main__":
    main()
