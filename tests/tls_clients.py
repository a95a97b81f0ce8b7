"""SIP over TLS from Python's `ssl` (Debian's SIPp 3.6.1 has no TLS): a customer's
connection placing calls (`TlsCall`), bad peers (a ClientHello and silence, garbage, a
connection closed at once), and many connections placing calls at once (`load`).

Messages are framed as on any stream transport: headers up to the blank line, then
Content-Length bytes of body (RFC 3261 §18.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients import SipMessage, sip_uri_of
from harness import authorization, challenges

SDP = "\r\n".join(["v=0", "o=pbx 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
                   "m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", ""])


def client_context(ca: Path | None) -> ssl.SSLContext:
    """A TLS client context: verifying the edge against `ca`, or not at all."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if ca is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def content_length(head: str) -> int:
    found = re.search(r"^(?:Content-Length|l)\s*:\s*(\d+)", head, re.I | re.M)
    return int(found.group(1)) if found else 0


def build(start: str, headers: Sequence[str], body: str = "") -> str:
    """A SIP message: start line, headers, Content-Length (and the SDP type if a body)."""
    extra = ["Content-Type: application/sdp"] if body else []
    return "\r\n".join([start, *headers, *extra, f"Content-Length: {len(body)}"]) \
        + "\r\n\r\n" + body


def uac_route_set(response: SipMessage) -> list[str]:
    """A UAC's route set: the response's Record-Route entries in reverse (RFC 3261
    §12.1.2); with the edge's two (one per transport) the order matters."""
    return [r.strip() for v in response.headers("Record-Route") for r in v.split(",")][::-1]


def reply_to(request: SipMessage, status: str = "200 OK") -> str:
    """A response echoing the request's Via, From, To, Call-ID and CSeq."""
    keep = [f"{name}: {value}" for name in ("Via", "From", "To", "Call-ID", "CSeq")
            for value in request.headers(name)]
    return build(f"SIP/2.0 {status}", keep)


def connect(edge: tuple[str, int], *, source: str = "127.0.0.1", ca: Path | None = None,
            timeout: float = 5.0) -> TlsConnection:
    """A TLS connection to the edge from `source`, its certificate checked against `ca`."""
    raw = socket.create_connection(edge, timeout=timeout, source_address=(source, 0))
    return TlsConnection(client_context(ca).wrap_socket(raw, server_hostname=edge[0]))


class TlsConnection:
    """One TLS connection (either end); SIP messages in and out, in full."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        host, port = self.sock.getsockname()[:2]
        self.local = f"{host}:{port}"
        self.buffer = b""
        self.received: list[SipMessage] = []

    @property
    def peer_fingerprint(self) -> str:
        """SHA-256 of the certificate the edge presented."""
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha256(der).hexdigest()

    @property
    def version(self) -> str:
        return str(self.sock.version())

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def read(self, timeout: float = 5.0) -> SipMessage:
        """The next message; TimeoutError if none comes in time, EOFError if closed."""
        deadline = time.monotonic() + timeout
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end >= 0:
                head = self.buffer[:head_end].decode(errors="replace")
                end = head_end + 4 + content_length(head)
                if len(self.buffer) >= end:
                    raw, self.buffer = self.buffer[:end], self.buffer[end:]
                    message = SipMessage(raw.decode(errors="replace"))
                    self.received.append(message)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no SIP message from the edge")
            self.sock.settimeout(left)
            data = self.sock.recv(65535)
            if not data:
                raise EOFError("the edge closed the connection")
            self.buffer += data

    def final(self, cseq: tuple[int, str], timeout: float = 5.0) -> SipMessage:
        """The final response to the request `cseq` (provisional ones skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.read(max(deadline - time.monotonic(), 0.01))
            if not message.is_request and message.cseq == cseq and message.status >= 200:
                return message

    def options(self, ruri: str, timeout: float = 5.0) -> SipMessage:
        """An OPTIONS keepalive outside a dialog; its final response."""
        branch, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        self.send(build(f"OPTIONS {ruri} SIP/2.0", [
            f"Via: SIP/2.0/TLS {self.local};branch=z9hG4bK{branch};rport",
            "Max-Forwards: 70", f"From: <sip:probe@{self.local}>;tag={tag}",
            f"To: <{ruri}>", f"Call-ID: {branch}", "CSeq: 1 OPTIONS"]))
        return self.final((1, "OPTIONS"), timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class TlsCall:
    """A customer's call over a TLS connection: INVITE (answering a 407 when it has
    credentials), ACK, then BYE from either side. Its Contact names a port nothing
    listens on, as a PBX's listening port behind NAT: the edge must use the connection."""

    conn: TlsConnection
    ruri: str
    from_user: str = "pbx"
    credentials: tuple[str, str] | None = None
    contact_port: int = 5999
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    cseq: int = 0
    to: str = ""
    route: list[str] = field(default_factory=list)
    target: str = ""
    responses: list[SipMessage] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.ruri.split("@")[-1]

    def _headers(self, method: str, branch: str, to: str, extra: Sequence[str]) -> list[str]:
        host = self.conn.local.rsplit(":", 1)[0]
        return [f"Via: SIP/2.0/TLS {self.conn.local};branch={branch};rport",
                "Max-Forwards: 70", f"From: <sip:{self.from_user}@{self.host}>;tag={self.tag}",
                f"To: {to}", f"Call-ID: {self.call_id}", f"CSeq: {self.cseq} {method}",
                f"Contact: <sip:{self.from_user}@{host}:{self.contact_port};transport=tls>",
                *extra]

    def _invite_once(self, extra: Sequence[str]) -> SipMessage:
        self.cseq += 1
        branch = "z9hG4bK" + uuid.uuid4().hex
        self.conn.send(build(f"INVITE {self.ruri} SIP/2.0",
                             self._headers("INVITE", branch, f"<{self.ruri}>", extra), SDP))
        final = self.conn.final((self.cseq, "INVITE"), 10)
        self.responses.append(final)
        if final.status >= 300:  # ACK of a negative final: same branch, its To tag
            self.conn.send(build(f"ACK {self.ruri} SIP/2.0",
                                 self._headers("ACK", branch, final.header("To"), [])))
        return final

    def invite(self, extra: Sequence[str] = ()) -> SipMessage:
        """The final response; a 2xx is ACKed along the Record-Route set."""
        final = self._invite_once(extra)
        if final.status == 407 and self.credentials is not None:
            challenge = challenges(final.raw)[0]
            user, password = self.credentials
            final = self._invite_once([*extra, authorization(
                challenge, user, password, "INVITE", self.ruri)])
        if 200 <= final.status < 300:
            self.to = final.header("To")
            self.route = uac_route_set(final)
            self.target = sip_uri_of(final.header("Contact"))
            self.conn.send(build(f"ACK {self.target} SIP/2.0", [
                *self._headers("ACK", "z9hG4bK" + uuid.uuid4().hex, self.to, []),
                *(f"Route: {r}" for r in self.route)]))
        return final

    def bye(self) -> SipMessage:
        """Hang up from the customer's side; the final response."""
        self.cseq += 1
        self.conn.send(build(f"BYE {self.target} SIP/2.0", [
            *self._headers("BYE", "z9hG4bK" + uuid.uuid4().hex, self.to, []),
            *(f"Route: {r}" for r in self.route)]))
        return self.conn.final((self.cseq, "BYE"))

    def answer_request(self, timeout: float = 10.0) -> SipMessage:
        """Wait for a request from the edge on the connection (the far end's BYE), 200 it."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.conn.read(max(deadline - time.monotonic(), 0.01))
            if message.is_request:
                self.conn.send(reply_to(message))
                return message


# -- a POP gateway over TLS --------------------------------------------------------------
class TlsGateway:
    """A POP gateway on TLS (a UAS in threads): OPTIONS and BYE answered 200, INVITE 100
    then 200 with its Record-Route echoed; every request but OPTIONS kept (`requests`)."""

    def __init__(self, cert: Path, key: Path, name: str = "us1", host: str = "127.0.0.1") -> None:
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.2)
        self.contact = f"{host}:{self.listener.getsockname()[1]}"
        self.uri = f"sip:{self.contact};transport=tls"
        self.requests: list[SipMessage] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                raw, _ = self.listener.accept()
                sock = self.ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                continue
            threading.Thread(target=self._serve, args=(TlsConnection(sock),), daemon=True).start()

    def _serve(self, conn: TlsConnection) -> None:
        while not self.stopped.is_set():
            try:
                message = conn.read(0.5)
            except TimeoutError:
                continue
            except (EOFError, OSError):
                return
            if message.is_request and message.method != "OPTIONS":
                self.requests.append(message)
            if not message.is_request or message.method == "ACK":
                continue
            if message.method == "INVITE":
                conn.send(reply_to(message, "100 Trying"))
                conn.send(self._answer(message))
            else:
                conn.send(reply_to(message))

    def _answer(self, invite: SipMessage) -> str:
        keep = [f"{name}: {value}" for name in ("Via", "From") for value in invite.headers(name)]
        return build("SIP/2.0 200 OK", [
            *keep, f"To: {invite.header('To')};tag=tlsgw{uuid.uuid4().hex[:8]}",
            f"Call-ID: {invite.call_id}", f"CSeq: {invite.header('CSeq')}",
            *(f"Record-Route: {v}" for v in invite.headers("Record-Route")),
            f"Contact: <sip:gw@{self.contact};transport=tls>", f"X-Gateway: {self.name}",
            "P-Asserted-Identity: <sip:+442000000000@pop.example.net;user=phone>"], SDP)

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


# -- bad peers ---------------------------------------------------------------------------
def client_hello() -> bytes:
    """The first flight of a real TLS handshake (a ClientHello), as bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(None).wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def raw_connection(edge: tuple[str, int], payload: bytes = b"") -> socket.socket:
    """A plain TCP connection to the TLS port that sent `payload` (and is left open)."""
    sock = socket.create_connection(edge, timeout=5)
    if payload:
        sock.sendall(payload)
    return sock


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """The edge closed `sock` within `timeout` (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def garbage(size: int) -> bytes:
    return os.urandom(size)


# -- load --------------------------------------------------------------------------------
@dataclass
class LoadResult:
    """What `load` saw: calls answered and ended, and every failure with its reason."""

    calls: int = 0
    failed: list[str] = field(default_factory=list)
    connections: int = 0
    fingerprints: set[str] = field(default_factory=set)


class _Stream:
    """One asyncio TLS connection's messages (the async twin of TlsConnection.read)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        host, port = writer.get_extra_info("sockname")[:2]
        self.local = f"{host}:{port}"

    async def read(self) -> SipMessage:
        head = await self.reader.readuntil(b"\r\n\r\n")
        body = await self.reader.readexactly(content_length(head.decode(errors="replace")))
        return SipMessage((head + body).decode(errors="replace"))

    async def final(self, cseq: tuple[int, str]) -> SipMessage:
        while True:
            message = await self.read()
            if message.is_request:  # nothing but responses is expected here
                self.writer.write(reply_to(message).encode())
            elif message.cseq == cseq and message.status >= 200:
                return message


async def _one_call(stream: _Stream, ruri: str, hold_s: float,
                    credentials: tuple[str, str] | None) -> str | None:
    """One call on `stream`: None when it was answered and hung up, else what failed."""
    call_id, tag, host = uuid.uuid4().hex, uuid.uuid4().hex[:8], ruri.split("@")[-1]
    local_host, user = stream.local.rsplit(":", 1)[0], credentials[0] if credentials else "pbx"

    def headers(method: str, cseq: int, to: str, branch: str) -> list[str]:
        return [f"Via: SIP/2.0/TLS {stream.local};branch={branch};rport", "Max-Forwards: 70",
                f"From: <sip:{user}@{host}>;tag={tag}", f"To: {to}", f"Call-ID: {call_id}",
                f"CSeq: {cseq} {method}", f"Contact: <sip:{user}@{local_host}:5999;transport=tls>"]

    cseq, auth = 1, []
    while True:
        branch = "z9hG4bK" + uuid.uuid4().hex
        stream.writer.write(build(f"INVITE {ruri} SIP/2.0",
                                  [*headers("INVITE", cseq, f"<{ruri}>", branch), *auth],
                                  SDP).encode())
        final = await stream.final((cseq, "INVITE"))
        if final.status == 407 and credentials and not auth:
            stream.writer.write(build(f"ACK {ruri} SIP/2.0", headers(
                "ACK", cseq, final.header("To"), branch)).encode())
            auth = [authorization(challenges(final.raw)[0], *credentials, "INVITE", ruri)]
            cseq += 1
            continue
        break
    if final.status != 200:
        return f"INVITE answered {final.start_line}"
    to = final.header("To")
    route = [f"Route: {r}" for r in uac_route_set(final)]
    target = sip_uri_of(final.header("Contact"))
    stream.writer.write(build(f"ACK {target} SIP/2.0", [
        *headers("ACK", cseq, to, "z9hG4bK" + uuid.uuid4().hex), *route]).encode())
    await asyncio.sleep(hold_s)
    cseq += 1
    stream.writer.write(build(f"BYE {target} SIP/2.0", [
        *headers("BYE", cseq, to, "z9hG4bK" + uuid.uuid4().hex), *route]).encode())
    bye = await stream.final((cseq, "BYE"))
    return None if bye.status == 200 else f"BYE answered {bye.start_line}"


async def _caller(edge: tuple[str, int], ruri: str, until: float, pace_s: float,
                  source: str, credentials: tuple[str, str] | None, ca: Path | None,
                  result: LoadResult) -> None:
    """One connection placing calls one after another until `until` (monotonic)."""
    await asyncio.sleep(random.random() * pace_s)  # spread the connections' first calls
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            *edge, ssl=client_context(ca), server_hostname=edge[0],
            local_addr=(source, 0)), 20)
    except (OSError, TimeoutError, ssl.SSLError) as e:
        result.failed.append(f"connect: {e!r}")
        return
    result.connections += 1
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    result.fingerprints.add(hashlib.sha256(der).hexdigest())
    stream = _Stream(reader, writer)
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                failure = await asyncio.wait_for(
                    _one_call(stream, ruri, pace_s / 4, credentials), 30)
            except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError) as e:
                result.failed.append(f"call: {e!r}")
                return
            if failure is None:
                result.calls += 1
            else:
                result.failed.append(failure)
            await asyncio.sleep(max(0.0, pace_s - (time.monotonic() - started)))
    finally:
        writer.close()


def load(edge: tuple[str, int], ruri: str, *, connections: int, duration_s: float,
         pace_s: float, ca: Path | None = None,
         digest: tuple[str, tuple[str, str]] | None = None) -> LoadResult:
    """`connections` TLS connections, each placing a call every `pace_s` (held a quarter
    of it) for `duration_s`. With `digest` = (source, credentials), every other connection
    comes from that source and answers the 407."""
    result = LoadResult()
    until = time.monotonic() + duration_s

    async def run_all() -> None:
        callers = []
        for i in range(connections):
            source, credentials = ("127.0.0.1", None)
            if digest is not None and i % 2:
                source, credentials = digest[0], digest[1]
            callers.append(_caller(edge, ruri, until, pace_s, source, credentials, ca, result))
        await asyncio.gather(*callers)

    asyncio.run(run_all())
    return result
