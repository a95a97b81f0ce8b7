"""Real SIP softphones driven headless (linphonec, baresip) and a recording POP gateway.

`RecordingGateway` is a small UDP UAS in a thread: it answers INVITE 100/180/200 with SDP,
ACK, BYE 200, OPTIONS 200, can hang up itself (BYE along the INVITE's Record-Route), and
keeps every SIP message it received, in full, so the tests assert on what reached the POP.

`Linphone` and `Baresip` run Debian's clients with a configuration of their own in a test
folder (no sound card, no registration), read commands on stdin, keep their output there,
and are stopped by their PID. Their `explain()` goes into assertion messages.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import BASE, free_media_port, free_port

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact",
           "l": "content-length", "c": "content-type", "k": "supported", "r": "refer-to",
           "s": "subject", "e": "content-encoding", "o": "event", "u": "allow-events"}


# -- SIP messages --------------------------------------------------------------------------
@dataclass(frozen=True)
class SipMessage:
    """One SIP message as received (or sent) on the wire, with its peer and time."""

    raw: str
    peer: tuple[str, int] = ("", 0)
    at: float = 0.0

    @property
    def start_line(self) -> str:
        return self.raw.split("\r\n", 1)[0]

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """The request's method, or the CSeq method of a response."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        return self.cseq[1]

    @property
    def status(self) -> int:
        return 0 if self.is_request else int(self.start_line.split()[1])

    @property
    def uri(self) -> str:
        return self.start_line.split()[1] if self.is_request else ""

    @property
    def head(self) -> list[tuple[str, str]]:
        """Headers in order as (lower-case full name, value); folded lines joined."""
        lines = self.raw.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        out: list[tuple[str, str]] = []
        for line in lines:
            if line[:1] in (" ", "\t") and out:
                out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                out.append((COMPACT.get(name, name), value.strip()))
        return out

    def headers(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive, compact forms too)."""
        name = COMPACT.get(name.lower(), name.lower())
        return [v for n, v in self.head if n == name]

    def header(self, name: str) -> str:
        values = self.headers(name)
        return values[0] if values else ""

    @property
    def body(self) -> str:
        return self.raw.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in self.raw else ""

    @property
    def call_id(self) -> str:
        return self.header("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.header("CSeq").partition(" ")
        return int(number or 0), method.strip()

    @property
    def to_tag(self) -> str:
        match = re.search(r";\s*tag=([^;>\s]+)", self.header("To"))
        return match.group(1) if match else ""

    def __str__(self) -> str:
        return self.raw


def sip_uri_of(value: str) -> str:
    """The URI of a name-addr (`"x" <sip:...>;p=1`) or of a bare addr-spec."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def host_port_of(uri: str) -> tuple[str, int]:
    """Where to send to reach a sip: URI (no DNS: loopback addresses only)."""
    hostport = uri.split(":", 1)[1].split(";", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 5060
    host, _, port = hostport.partition(":")
    return host, int(port or 5060)


@dataclass
class GatewayCall:
    """What the gateway received of one call (one Call-ID), in order."""

    call_id: str
    messages: list[SipMessage] = field(default_factory=list)

    def requests(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.is_request and m.method == method]

    def first(self, method: str) -> SipMessage:
        found = self.requests(method)
        assert found, f"the gateway received no {method} for {self.call_id}:\n{self.dump()}"
        return found[0]

    def dump(self) -> str:
        return "\n".join(f"--- {'from' if m.is_request else 'reply from'} {m.peer} ---\n"
                         f"{m.raw.rstrip()}" for m in self.messages) or "(nothing)"


# -- the recording POP gateway --------------------------------------------------------------
@dataclass
class _Dialog:
    invite: SipMessage
    to_tag: str
    answer: str  # the 200 OK we sent (resent on INVITE retransmissions until the ACK)
    acked: bool = False
    ended: bool = False
    local_cseq: int = 0


class RecordingGateway:
    """A POP gateway (UAS over UDP) that records every message it receives.

    OPTIONS (the edge's keepalives) are answered but kept apart (`keepalives`), so that
    `calls_since()` returns only calls. Thread-safe; stop() joins its thread.
    """

    def __init__(self, name: str = "eu1", host: str = "127.0.0.1",
                 log_path: Path | None = None) -> None:
        self.name, self.host = name, host
        self.port = free_port(host)
        self.uri = f"sip:{host}:{self.port}"
        self.log_path = log_path
        self.received: list[SipMessage] = []
        self.sent: list[SipMessage] = []
        self.keepalives = 0
        self._dialogs: dict[str, _Dialog] = {}
        self._resent: dict[str, tuple[int, float]] = {}
        self._lock = threading.RLock()  # dump() may run under it
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, self.port))
        self._rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # media sink
        self._rtp.bind((host, 0))
        self._thread = threading.Thread(target=self._run, name=f"gateway-{name}",
                                        daemon=True)

    # lifecycle
    def start(self) -> RecordingGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()
        self._rtp.close()

    # what it received
    def mark(self) -> int:
        with self._lock:
            return len(self.received)

    def calls_since(self, mark: int) -> list[GatewayCall]:
        """The calls (by Call-ID, in order of arrival) of the messages since `mark`."""
        with self._lock:
            messages = self.received[mark:]
        calls: dict[str, GatewayCall] = {}
        for m in messages:
            calls.setdefault(m.call_id, GatewayCall(m.call_id)).messages.append(m)
        return list(calls.values())

    def wait_for(self, predicate: Callable[[list[SipMessage]], bool], timeout: float,
                 mark: int = 0) -> bool:
        """Wait until `predicate(messages received since mark)` holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.received[mark:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def wait_request(self, method: str, mark: int, timeout: float) -> bool:
        return self.wait_for(lambda ms: any(m.is_request and m.method == method for m in ms),
                             timeout, mark)

    def dump(self, mark: int = 0) -> str:
        return "\n\n".join(c.dump() for c in self.calls_since(mark)) or "(nothing received)"

    # hanging up from the far side
    def hangup(self, call_id: str, timeout: float = 5.0) -> SipMessage | None:
        """Send BYE in the dialog of `call_id` (along its Record-Route); its final answer."""
        with self._lock:
            dialog = self._dialogs.get(call_id)
            assert dialog is not None, f"the gateway has no call {call_id}: {self.dump()}"
            dialog.local_cseq += 1
            cseq = dialog.local_cseq
        inv = dialog.invite
        routes = [r.strip() for value in inv.headers("Record-Route") for r in value.split(",")]
        target = sip_uri_of(inv.header("Contact"))
        next_hop = host_port_of(sip_uri_of(routes[0]) if routes else target)
        branch = "z9hG4bK" + uuid.uuid4().hex
        lines = [f"BYE {target} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
                 "Max-Forwards: 70",
                 *(f"Route: {r}" for r in routes),
                 f"From: {inv.header('To')};tag={dialog.to_tag}",
                 f"To: {inv.header('From')}",
                 f"Call-ID: {call_id}",
                 f"CSeq: {cseq} BYE",
                 "Content-Length: 0"]
        request = "\r\n".join(lines) + "\r\n\r\n"
        deadline = time.monotonic() + timeout
        interval = 0.5
        while time.monotonic() < deadline:
            self._send(request, next_hop)
            ok = self.wait_for(
                lambda ms: any(not m.is_request and m.call_id == call_id
                               and m.cseq == (cseq, "BYE") and m.status >= 200 for m in ms),
                min(interval, deadline - time.monotonic()))
            if ok:
                with self._lock:
                    dialog.ended = True
                    return next(m for m in reversed(self.received)
                                if not m.is_request and m.call_id == call_id
                                and m.cseq == (cseq, "BYE") and m.status >= 200)
            interval = min(interval * 2, 2.0)
        return None

    # internals
    def _send(self, text: str, to: tuple[str, int]) -> None:
        self._sock.sendto(text.encode(), to)
        self.sent.append(SipMessage(text, to, time.time()))
        self._log(">>>", to, text)

    def _log(self, direction: str, peer: tuple[str, int], text: str) -> None:
        if self.log_path is not None:
            with self.log_path.open("a") as f:
                f.write(f"{direction} {peer[0]}:{peer[1]} {time.strftime('%H:%M:%S')}\n"
                        f"{text.rstrip()}\n\n")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock, self._rtp], [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data, peer = s.recvfrom(65535)
                except OSError:
                    continue
                if s is self._sock:
                    self._handle(SipMessage(data.decode(errors="replace"), peer[:2],
                                            time.time()))
            self._retransmit()

    def _reply(self, req: SipMessage, status: str, to_tag: str = "",
               extra: Sequence[str] = (), body: str = "") -> str:
        to = req.header("To")
        if to_tag and ";tag=" not in to.replace(" ", ""):
            to = f"{to};tag={to_tag}"
        lines = [f"SIP/2.0 {status}",
                 *(f"Via: {v}" for v in req.headers("Via")),
                 f"From: {req.header('From')}", f"To: {to}",
                 f"Call-ID: {req.call_id}", f"CSeq: {req.header('CSeq')}",
                 f"Server: recording-gateway-{self.name}", *extra]
        if body:
            lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}"]
        else:
            lines.append("Content-Length: 0")
        text = "\r\n".join(lines) + "\r\n\r\n" + body
        self._send(text, req.peer)
        return text

    def _sdp(self, offer: str) -> str:
        offered = re.search(r"^m=audio \d+ \S+ ([\d ]+)", offer, re.M)
        codecs = offered.group(1).split() if offered else ["0"]
        codec = next((c for c in codecs if c in ("0", "8")), "0")
        name = {"0": "PCMU", "8": "PCMA"}[codec]
        host, port = self._rtp.getsockname()
        session = int(time.time())
        return "\r\n".join([
            "v=0", f"o=gw {session} {session} IN IP4 {host}", "s=-", f"c=IN IP4 {host}",
            "t=0 0", f"m=audio {port} RTP/AVP {codec}", f"a=rtpmap:{codec} {name}/8000",
            "a=sendrecv", ""])

    def _handle(self, msg: SipMessage) -> None:
        self._log("<<<", msg.peer, msg.raw)
        if msg.is_request and msg.method == "OPTIONS" and not msg.to_tag:
            self.keepalives += 1
            self._reply(msg, "200 OK", uuid.uuid4().hex[:10],
                        ["Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"])
            return
        with self._changed:
            self.received.append(msg)
            self._changed.notify_all()
        if not msg.is_request:
            return
        method, call_id = msg.method, msg.call_id
        with self._lock:
            dialog = self._dialogs.get(call_id)
        if method == "INVITE":
            if dialog is not None and not msg.to_tag:  # a retransmission
                self._send(dialog.answer, msg.peer)
                return
            to_tag = dialog.to_tag if dialog else "gw" + uuid.uuid4().hex[:10]
            self._reply(msg, "100 Trying")
            rr = [f"Record-Route: {v}" for v in msg.headers("Record-Route")]
            contact = f"Contact: <sip:gw@{self.host}:{self.port};transport=udp>"
            if not msg.to_tag:
                self._reply(msg, "180 Ringing", to_tag, [*rr, contact])
            answer = self._reply(msg, "200 OK", to_tag, [*rr, contact, f"X-Gateway: {self.name}"],
                                 self._sdp(msg.body))
            with self._lock:
                if dialog is None:
                    self._dialogs[call_id] = _Dialog(msg, to_tag, answer)
                else:
                    dialog.answer, dialog.acked = answer, False
        elif method == "ACK":
            if dialog is not None:
                dialog.acked = True
        elif method == "BYE":
            self._reply(msg, "200 OK")
            if dialog is not None:
                dialog.ended = True
        elif method == "CANCEL":  # too late: every INVITE is answered at once
            self._reply(msg, "200 OK")
        else:
            self._reply(msg, "200 OK")

    def _retransmit(self) -> None:
        """Resend an unacknowledged 200 at 0.5, 1, 2 s (RFC 3261 §13.3.1.4, shortened)."""
        now = time.monotonic()
        with self._lock:
            pending = [(cid, d) for cid, d in self._dialogs.items()
                       if not d.acked and not d.ended]
        for cid, d in pending:
            count, last = self._resent.get(cid, (0, now))
            if count >= 4:
                continue
            if now - last >= 0.5 * 2 ** count:
                self._send(d.answer, d.invite.peer)
                self._resent[cid] = (count + 1, now)
            elif cid not in self._resent:
                self._resent[cid] = (0, now)


# -- real softphones -----------------------------------------------------------------------
@dataclass(frozen=True)
class Traced:
    """A SIP message a softphone logged: sent by it (`out`) or received."""

    out: bool
    message: SipMessage


class Softphone:
    """A softphone process: its folder, its output file, commands on stdin, a PID to stop.

    Subclasses say how to configure it (`_prepare` returns argv and environment), what it
    prints when a call is up or over, and how to read the SIP messages from its log.
    """

    kind = "softphone"
    established_pattern = r"(?!)"
    ended_pattern = r"(?!)"

    def __init__(self, workdir: Path, *, edge: tuple[str, int], user: str, password: str,
                 domain: str, source: str = "127.0.0.1", realm: str = BASE,
                 lifetime: float = 60.0) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.edge, self.user, self.password = edge, user, password
        self.domain, self.source, self.realm = domain, source, realm
        self.lifetime = lifetime
        self.sip_port = free_port(source)
        self.output_path = self.dir / f"{self.kind}.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    # to be provided by subclasses
    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _cannot_listen(self) -> bool:
        """It is running but could not bind its SIP port (linphone keeps running)."""
        return False

    def traced(self) -> list[Traced]:
        raise NotImplementedError

    def dial(self, uri: str) -> None:
        raise NotImplementedError

    def hangup(self) -> None:
        raise NotImplementedError

    def _quit(self) -> None:
        raise NotImplementedError

    # lifecycle
    def start(self, timeout: float = 10.0) -> Softphone:
        """Start it and wait until it listens. A second try (new ports) if it exited at
        once, e.g. because another process took its port since free_port() chose it."""
        for attempt in (1, 2):
            argv, env = self._prepare()
            self._started = time.monotonic()
            with self.output_path.open("wb") as out:  # the child keeps its own copy
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                    cwd=self.dir, env=env, start_new_session=True)
            deadline = time.monotonic() + timeout
            while not self._ready():
                exited = self.proc.poll() is not None or self._cannot_listen()
                if exited and attempt == 1:
                    self.stop(timeout=2)
                    first = self.output_path
                    first.rename(first.with_name(first.name + ".first-try"))
                    self.sip_port = free_port(self.source)
                    break
                if exited or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"{self.kind} did not start\n{self.explain()}")
                time.sleep(0.05)
            else:
                return self
        raise AssertionError("unreachable")

    def __enter__(self) -> Softphone:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send(self, command: str) -> None:
        """One command line on the softphone's stdin."""
        assert self.proc is not None and self.proc.stdin is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.kind} exited\n{self.explain()}")
        if time.monotonic() - self._started > self.lifetime:
            raise AssertionError(f"{self.kind} ran longer than {self.lifetime}s")
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 5.0) -> int | None:
        """Quit (its command), then SIGTERM, then SIGKILL: by PID, its own session only."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(AssertionError, OSError):
                self._quit()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()  # its PID (timeout(1) passes it on; stdbuf execs baresip)
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        return proc.returncode

    # what it printed and logged
    def output(self) -> str:
        """What it printed, byte for byte (SIP traces keep their CRLF)."""
        if not self.output_path.exists():
            return ""
        return self.output_path.read_bytes().decode(errors="replace")

    def log(self) -> str:
        """Everything the softphone wrote (its output, and its log file if it has one)."""
        return self.output()

    def wait_for(self, pattern: str, timeout: float, what: str = "") -> re.Match[str]:
        """Wait until `pattern` appears in the softphone's log; fail with the logs if not."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log(), re.M)
            if found:
                return found
            if time.monotonic() > deadline or (self.proc is not None
                                                and self.proc.poll() is not None):
                raise AssertionError(
                    f"{self.kind}: no {what or repr(pattern)} within {timeout}s\n"
                    f"{self.explain()}")
            time.sleep(0.05)

    def is_established(self) -> bool:
        return re.search(self.established_pattern, self.log(), re.M) is not None

    def is_over(self) -> bool:
        """The call ended: the softphone said so, or its SIP shows it (a BYE answered
        either way, or a final refusal other than a challenge). baresip 1.0 prints no
        "terminated" line for a call that lasted less than a second."""
        if re.search(self.ended_pattern, self.log(), re.M):
            return True
        traced = self.traced()
        bye_out = {t.message.cseq for t in traced if t.out and t.message.method == "BYE"
                   and t.message.is_request}
        bye_in = {t.message.cseq for t in traced if not t.out and t.message.method == "BYE"
                  and t.message.is_request}
        for t in traced:
            m = t.message
            if m.is_request or m.status < 200:
                continue
            if m.method == "BYE" and ((not t.out and m.cseq in bye_out)
                                      or (t.out and m.cseq in bye_in)):
                return True
            if not t.out and m.method == "INVITE" and m.status >= 300 \
                    and m.status not in (401, 407):
                return True
        return False

    def wait_established(self, timeout: float = 8.0) -> None:
        self.wait_for(self.established_pattern, timeout, "established call")

    def wait_ended(self, timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_over():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.kind}: the call did not end within {timeout}s\n"
                                     f"{self.explain()}")
            time.sleep(0.05)

    def sent(self, method: str) -> list[SipMessage]:
        """Requests of `method` the softphone sent (every retransmission too)."""
        return [t.message for t in self.traced()
                if t.out and t.message.is_request and t.message.method == method]

    def requests_received(self, method: str) -> list[SipMessage]:
        return [t.message for t in self.traced()
                if not t.out and t.message.is_request and t.message.method == method]

    def final_responses(self, method: str = "INVITE") -> list[str]:
        """Status lines of the final responses to `method` it received, in order, each
        once (a retransmitted one is not repeated)."""
        seen: list[str] = []
        for t in self.traced():
            m = t.message
            final = not t.out and not m.is_request and m.method == method and m.status >= 200
            key = f"{m.start_line} (CSeq {m.cseq[0]})"
            if final and key not in seen:
                seen.append(key)
        return [k.rsplit(" (CSeq", 1)[0] for k in seen]

    @property
    def call_id(self) -> str:
        invites = self.sent("INVITE")
        return invites[0].call_id if invites else ""

    def explain(self, tail: int = 12000) -> str:
        rc = self.proc.poll() if self.proc else None
        text = self.log()
        return (f"--- {self.kind} ({self.source} -> {self.edge[0]}:{self.edge[1]}, "
                f"rc={rc}, folder {self.dir}) ---\n"
                f"{text[-tail:] if len(text) > tail else text}")


class Linphone(Softphone):
    """Debian's linphonec: HOME of its own, generated linphonerc, no registration.

    The log (-d 6) holds every SIP message belle-sip sent or received, in full.
    """

    kind = "linphone"
    established_pattern = r"moving from state \w+ to LinphoneCallStreamsRunning"
    ended_pattern = r"moving from state \w+ to LinphoneCall(End|Error|Released)\b"
    transport = "udp"  # to the edge: "udp", or "tls" (then `edge` is its TLS socket)
    root_ca: Path | None = None  # with TLS: the CA the edge's certificate must chain to

    def over_tls(self, root_ca: Path) -> Linphone:
        """Reach the edge over TLS, verifying its certificate against `root_ca`."""
        self.transport, self.root_ca = "tls", root_ca
        return self

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def rc_path(self) -> Path:
        return self.dir / "linphonerc"

    @property
    def log_path(self) -> Path:
        return self.dir / "linphone.log"

    def linphonerc(self) -> str:
        edge = f"{self.edge[0]}:{self.edge[1]}"
        rtp = free_media_port(self.source)
        tls = [f"root_ca={self.root_ca}", "verify_server_certs=1", "verify_server_cn=1"] \
            if self.transport == "tls" else []
        return "\n".join([
            "[sip]", f"sip_port={self.sip_port}", "sip_tcp_port=0",
            f"sip_tls_port={-1 if self.transport == 'tls' else 0}", *tls,
            f"bind_address={self.source}", "default_proxy=0", "guess_hostname=0",
            "use_ipv6=0", "register_only_when_network_is_up=0", "inc_timeout=30",
            "ping_with_options=0", "",
            "[net]", "mtu=1300", "firewall_policy=0", "",
            "[rtp]", f"audio_rtp_port={rtp}", f"bind_address={self.source}",
            "audio_jitt_comp=60", "nortp_timeout=60", "",
            "[sound]", "echocancellation=0", "",
            "[video]", "capture=0", "display=0", "automatically_initiate=0",
            "automatically_accept=0", "",
            "[misc]", "enable_call_history=0", "",
            "[proxy_0]", f"reg_proxy=<sip:{edge};transport={self.transport}>",
            f"reg_route=<sip:{edge};transport={self.transport};lr>",
            f'reg_identity="{self.user}" <sip:{self.user}@{self.domain}>',
            "reg_expires=3600", "reg_sendregister=0", "publish=0", "dial_escape_plus=0",
            "quality_reporting_enabled=0", "avpf=0", "",
            # the password, not an ha1: a cached ha1 pins the client to MD5
            "[auth_info_0]", f"username={self.user}", f"userid={self.user}",
            f"passwd={self.password}", f"realm={self.realm}", f"domain={self.domain}", "",
        ])

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        # without ~/.local/share/linphone the core never leaves start-up
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():  # a second try starts a log of its own
            self.log_path.rename(self.log_path.with_name(self.log_path.name + ".first-try"))
        self.rc_path.write_text(self.linphonerc())
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LANG": "C.UTF-8"}
        # timeout(1): linphonec does not exit on EOF (it spins), so if the test runner dies
        # it would stay; this bounds its life. Signals sent to timeout reach linphonec.
        return (["timeout", "-k", "5", str(int(self.lifetime)),
                 "linphonec", "-c", str(self.rc_path), "-d", "6", "-l", str(self.log_path)],
                env)

    def _ready(self) -> bool:
        log = self.linphone_log()
        return ("linphonec>" in self.output() and not self._cannot_listen()
                and "listening point [" in log
                and f"on [sip:{self.source}:{self.sip_port};transport=UDP]" in log)

    def _cannot_listen(self) -> bool:
        return "bind() failed" in self.linphone_log()

    def linphone_log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace") if self.log_path.exists() else ""

    def log(self) -> str:
        return self.output() + "\n--- linphone.log ---\n" + self.linphone_log()

    def explain(self, tail: int = 12000) -> str:
        # the SIP part of the debug log, not the codec and sound card chatter
        sip = "\n\n".join(f"{'>>> sent' if t.out else '<<< received'}\n{t.message.raw.rstrip()}"
                          for t in self.traced())
        states = "\n".join(re.findall(r"^.*moving from state .*$", self.linphone_log(), re.M))
        rc = self.proc.poll() if self.proc else None
        text = f"{self.output()}\n--- call states ---\n{states}\n--- SIP ---\n{sip}"
        return (f"--- linphone ({self.source} -> {self.edge[0]}:{self.edge[1]}, rc={rc}, "
                f"log {self.log_path}) ---\n{text[-tail:]}")

    _TRACE = re.compile(rb"(message sent to|received \[\d+\] new bytes from) "
                        rb"\[(\w+)://([^\]]+)\](?:, size: \[(\d+)\] bytes|:)\n")

    def traced(self) -> list[Traced]:
        if not self.log_path.exists():
            return []
        data = self.log_path.read_bytes()
        out = []
        for m in self._TRACE.finditer(data):
            start = m.end()
            size = int(m.group(4) or re.search(rb"\[(\d+)\]", m.group(1)).group(1))  # type: ignore[union-attr]
            raw = data[start:start + size].decode(errors="replace")
            host, _, port = m.group(3).decode().rpartition(":")
            out.append(Traced(m.group(1).startswith(b"message sent"),
                              SipMessage(raw, (host, int(port or 0)))))
        return out

    def dial(self, uri: str) -> None:
        self.send(f"call {uri}")

    def hangup(self) -> None:
        self.send("terminate")

    def _quit(self) -> None:
        self.send("quit")


class Baresip(Softphone):
    """Debian's baresip: `-f DIR` with its own config and accounts, aubridge as the
    sound device, no registration (regint=0), SIP trace on (-s) into its output."""

    kind = "baresip"
    established_pattern = r"Call established"
    ended_pattern = r"Call with .* terminated \(duration"

    def config(self) -> str:
        low = free_media_port(self.source)
        return "\n".join([
            "poll_method\t\tepoll",
            f"net_interface\t\t{self.source}",  # an address: media (SDP c=) there too
            f"sip_listen\t\t{self.source}:{self.sip_port}",
            f"rtp_ports\t\t{low}-{low + 3}",
            "audio_source\t\taubridge,nul",
            "audio_player\t\taubridge,nul",
            "audio_alert\t\taubridge,nul2",
            "module_path\t\t/usr/lib/baresip/modules",
            "module\t\t\tstdio.so",
            "module\t\t\tg711.so",
            "module\t\t\taubridge.so",
            "module_app\t\taccount.so",
            "module_app\t\tmenu.so",
            "",
        ])

    def accounts(self) -> str:
        edge = f"{self.edge[0]}:{self.edge[1]}"
        return (f"<sip:{self.user}@{self.domain};transport=udp>;auth_pass={self.password};"
                f'outbound="sip:{edge}";regint=0\n')

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        conf = self.dir / "baresip"
        conf.mkdir(exist_ok=True)
        (conf / "config").write_text(self.config())
        (conf / "accounts").write_text(self.accounts())
        env = {"HOME": str(self.dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LANG": "C.UTF-8"}
        # -t: baresip quits by itself at the latest then, whatever the test does
        # stdbuf: its output is a file, which stdio would buffer past what the test waits for
        return (["stdbuf", "-oL", "-eL", "baresip", "-f", str(conf), "-s",
                 "-t", str(int(self.lifetime))], env)

    def _ready(self) -> bool:
        return "baresip is ready." in self.output()

    _TRACE = re.compile(r"\x1b\[36;1m#\n(\w+) (\S+) -> (\S+)\n(.*?)\x1b\[;m", re.S)

    def traced(self) -> list[Traced]:
        out = []
        local = f"{self.source}:{self.sip_port}"
        for m in self._TRACE.finditer(self.output()):
            src, dst, raw = m.group(2), m.group(3), m.group(4)
            outgoing = src == local
            host, _, port = (dst if outgoing else src).rpartition(":")
            out.append(Traced(outgoing, SipMessage(raw, (host, int(port)))))
        return out

    def explain(self, tail: int = 12000) -> str:
        # what it rewrites in place with a bare CR (the echo of each typed character, the
        # audio status each 100 ms): only the last version of such a line
        text = re.sub(r"[^\r\n]*\r(?!\n)", "", self.output())
        text = re.sub(r"\[\d+:\d\d:\d\d\] audio=\S+ \(bit/s\)\s*", "", text)
        text = text.replace("\x1b[36;1m", "").replace("\x1b[;m", "")
        rc = self.proc.poll() if self.proc else None
        return (f"--- baresip ({self.source} -> {self.edge[0]}:{self.edge[1]}, rc={rc}, "
                f"folder {self.dir}) ---\n{text[-tail:]}")

    def dial(self, uri: str) -> None:
        self.send(f"/dial {uri}")

    def hangup(self) -> None:
        self.send("/hangup")

    def _quit(self) -> None:
        self.send("/quit")

