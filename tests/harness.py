"""Real processes for the tests: redis-server, the edge (`trunkedge run`), SIPp UAC/UAS.

Everything binds loopback addresses on free ports and is stopped by its own PID.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
SCENARIOS = ROOT / "sipp-scenarios"
BASE = "sip.example.net"
POPS = ("eu1", "eu2", "us1", "us2", "apac1", "apac2")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port")


def free_media_port(host: str = "127.0.0.1") -> int:
    """A base port for SIPp's media sockets (audio and video RTP/RTCP: base..base+3),
    outside the kernel's ephemeral range so that other sockets do not take them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        base = random.randrange(20000, 30000, 4)
        socks = []
        try:
            for port in range(base, base + 4):
                s = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free media ports")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid`."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = proc_stat(int(stat.parent.name))
        if fields and int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU of a process and its children so far (utime, stime)."""
    ticks = 0
    for p in [pid, *children_of(pid)]:
        fields = proc_stat(p)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def stop_process(
    proc: subprocess.Popen[bytes], timeout: float = 10, sig: int = signal.SIGTERM
) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- Redis ---------------------------------------------------------------------------------
class RedisServer:
    """A redis-server of the tests' own, on a free loopback port, data in `workdir`."""

    def __init__(self, workdir: Path, args: Sequence[str] = ()) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = tuple(args)  # more redis-server options, e.g. ("--replicaof", HOST, PORT)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--dbfilename", "dump.rdb", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", *self.args],
            stdout=(self.dir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )
        wait_until(self.ping, 10, "redis-server")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self, save: bool = True) -> None:
        """Stop the server; with `save`, its data is reloaded by the next start()."""
        if self.proc is None:
            return
        if save and self.proc.poll() is None:
            self.client().save()
        stop_process(self.proc)
        self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang, as with a slow or wedged Redis."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


# -- SIPp ----------------------------------------------------------------------------------
@dataclass
class SippResult:
    returncode: int
    log: str
    errors: str
    stdout: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def landed(self) -> list[str]:
        """Gateways that answered, from the scenario's `landed=` log lines."""
        return [ln.split("=", 1)[1].split()[0] for ln in self.log.splitlines()
                if ln.startswith("landed=")]

    @property
    def connected(self) -> list[str]:
        """The P-Asserted-Identity of each answer as the customer received it ('' if none)."""
        return [ln.split("connected=", 1)[1].split(" pcv=")[0].strip()
                for ln in self.log.splitlines() if ln.startswith("landed=")]

    def explain(self) -> str:
        return f"rc={self.returncode}\n--log--\n{self.log}\n--errors--\n{self.errors[-3000:]}"


class Gateway:
    """A POP gateway: a long-running SIPp UAS that names itself in X-Gateway.

    It answers calls (gateway_answers.xml), or runs another gateway scenario
    (`scenario="gateway_busy_486"`). It always answers the edge's OPTIONS keepalives.
    """

    def __init__(self, name: str, workdir: Path, host: str = "127.0.0.1",
                 scenario: str = "gateway_answers") -> None:
        self.name = name
        self.host = host
        self.port = free_port(host)
        self.uri = f"sip:{host}:{self.port}"
        self.dir = workdir
        self.scenario = scenario
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / f"{self.scenario}.xml"), "-key", "gw", self.name,
             "-i", self.host, "-p", str(self.port), "-mp", str(free_media_port(self.host)),
             "-nostdin", "-trace_err", "-error_file", str(self.err_path),
             "-trace_logs", "-log_file", str(self.log_path)],
            stdout=subprocess.DEVNULL, stderr=(self.dir / f"{self.name}.stderr").open("ab"),
            cwd=self.dir,
        )
        # SIPp binds its port before reading the scenario; wait until it is taken.
        try:
            wait_until(lambda: self._port_taken(), 5, f"gateway {self.name} to listen")
        except TimeoutError:
            self.stop()
            raise

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def err_path(self) -> Path:
        return self.dir / f"{self.name}.err"

    def mark(self) -> tuple[int, int]:
        """Where the gateway's log and error file end now (see identities_since)."""
        return tuple(p.stat().st_size if p.exists() else 0  # type: ignore[return-value]
                     for p in (self.log_path, self.err_path))

    def identities_since(self, mark: tuple[int, int]) -> list[str]:
        """The `identity ...` lines logged since `mark`; fails on any check that failed."""
        def read(path: Path, offset: int) -> str:
            if not path.exists():
                return ""
            with path.open(errors="replace") as f:
                f.seek(offset)
                return f.read()
        errors = read(self.err_path, mark[1])
        assert "regexp" not in errors.lower(), f"gateway {self.name} check failed: {errors}"
        return [ln.strip() for ln in read(self.log_path, mark[0]).splitlines()
                if ln.startswith("identity ")]

    def _port_taken(self) -> bool:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            try:
                s.bind((self.host, self.port))
            except OSError:
                return True
            return False

    def kill(self) -> None:
        """Die at once (SIGKILL), as a crashed gateway does."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def run_sipp(
    scenario: str,
    edge: str,
    *,
    workdir: Path,
    number: str,
    domain: str,
    from_user: str = "pbx",
    source: str = "127.0.0.1",
    from_host: str | None = None,
    from_display: str = "",
    headers: Sequence[str] = (),
    auth: tuple[str, str] | None = None,
    calls: int = 1,
    rate: float | None = None,
    transport: str = "u1",
    timeout: float = 20,
    hold_ms: int = 200,
    extra: Sequence[str] = (),
) -> SippResult:
    """Run a UAC scenario against `edge` (host:port); returns once SIPp exits."""
    run_dir = workdir / f"sipp-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    log, err = run_dir / "calls.log", run_dir / "errors.log"
    argv = [
        "sipp", "-sf", str(SCENARIOS / f"{scenario}.xml"), edge,
        "-i", source, "-p", str(free_port(source)), "-mp", str(free_media_port(source)),
        "-t", transport, "-m", str(calls), "-s", number,
        "-key", "domain", domain, "-key", "from_user", from_user, "-d", str(hold_ms),
        "-key", "from_host", from_host or domain, "-key", "from_display", from_display,
        "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-trace_logs", "-log_file", str(log), "-trace_err", "-error_file", str(err),
    ]
    if len(headers) > 4:
        raise ValueError("at most 4 extra headers")
    for i in range(4):
        argv += ["-key", f"hdr{i + 1}", headers[i] if i < len(headers) else "X-Pad: 1"]
    if rate:
        argv += ["-r", str(rate)]
    if auth:
        # SIPp puts "sip:" in front of -auth_uri itself
        argv += ["-au", auth[0], "-ap", auth[1], "-auth_uri", f"{number}@{domain}"]
    argv += list(extra)
    proc = subprocess.run(argv, cwd=run_dir, capture_output=True, timeout=timeout + 30)
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return SippResult(proc.returncode, read(log), read(err), proc.stdout.decode(errors="replace"))


# -- a tiny SIP client for what SIPp does not check -----------------------------------------
def sip_request(
    edge: tuple[str, int],
    method: str,
    ruri: str,
    *,
    source: str = "127.0.0.1",
    headers: Iterable[str] = (),
    timeout: float = 2.0,
) -> str | None:
    """Send one request over UDP; return the first final (or only) response, or None."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        host, port = s.getsockname()[:2]
        branch = "z9hG4bK" + uuid.uuid4().hex
        via_host = f"[{host}]" if family == socket.AF_INET6 else host
        fields = {
            "Via": f"SIP/2.0/UDP {via_host}:{port};branch={branch};rport",
            "Max-Forwards": "70",
            "From": f"<sip:probe@{via_host}>;tag={uuid.uuid4().hex[:8]}",
            "To": f"<{ruri}>",
            "Call-ID": uuid.uuid4().hex,
            "CSeq": f"1 {method}",
            "Contact": f"<sip:probe@{via_host}:{port}>",
        }
        extra = []
        for h in headers:  # a header named like a default one replaces it
            name, value = h.split(":", 1)
            if name in fields:
                fields[name] = value.strip()
            else:
                extra.append(h)
        lines = [f"{method} {ruri} SIP/2.0", *(f"{k}: {v}" for k, v in fields.items()),
                 *extra, "Content-Length: 0"]
        s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), edge)
        s.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65535).decode(errors="replace")
            except TimeoutError:
                return None
            if not data.startswith("SIP/2.0 1"):
                return data
        return None


def status_of(response: str | None) -> int | None:
    return int(response.split()[1]) if response else None


def header_values(message: str, name: str) -> list[str]:
    """Values of every `name:` header (case-insensitive; no compact forms)."""
    head = message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    return [ln.split(":", 1)[1].strip() for ln in head
            if ":" in ln and ln.split(":", 1)[0].strip().lower() == name.lower()]


class SipCall:
    """A minimal UAC over UDP for exact header checks: INVITE, then ACK and BYE."""

    def __init__(self, edge: tuple[str, int], ruri: str, source: str = "127.0.0.1",
                 from_user: str = "pbx", headers: Sequence[str] = (),
                 from_addr: str | None = None) -> None:
        self.edge, self.ruri, self.headers = edge, ruri, list(headers)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(5)
        host, port = self.sock.getsockname()
        self.local = f"{host}:{port}"
        self.call_id, self.tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        host = ruri.split("@")[-1]
        self.from_hdr = f"{from_addr or f'<sip:{from_user}@{host}>'};tag={self.tag}"
        self.to_hdr = f"<{ruri}>"
        self.route: list[str] = []
        self.target = ruri
        self.responses: list[str] = []
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, method: str, uri: str, cseq: int, branch: str, extra: Sequence[str]) -> None:
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.local};branch={branch};rport",
                 "Max-Forwards: 70", f"From: {self.from_hdr}", f"To: {self.to_hdr}",
                 f"Call-ID: {self.call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:pbx@{self.local}>", *extra, "Content-Length: 0"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.edge)

    def _final(self) -> str:
        while True:
            data = self.sock.recv(65535).decode(errors="replace")
            if data.startswith("SIP/2.0"):
                self.responses.append(data)
                if not data.startswith("SIP/2.0 1"):
                    return data

    def invite(self, headers: Sequence[str] = (), timeout: float = 5.0) -> str:
        """One INVITE transaction (a new CSeq each time, same dialog identifiers); the
        final response ("" if none came within `timeout`), ACKed as RFC 3261 says."""
        self.cseq += 1
        branch = "z9hG4bK" + uuid.uuid4().hex
        self._send("INVITE", self.ruri, self.cseq, branch, [*self.headers, *headers])
        self.sock.settimeout(timeout)
        try:
            final = self._final()
        except TimeoutError:
            return ""
        finally:
            self.sock.settimeout(5)
        if final.startswith("SIP/2.0 2"):
            self.to_hdr = header_values(final, "To")[0]
            self.route = header_values(final, "Record-Route")
            self.target = header_values(final, "Contact")[0].strip("<>").split(">")[0]
            self._send("ACK", self.target, self.cseq, "z9hG4bK" + uuid.uuid4().hex,
                       [f"Route: {r}" for r in self.route])
        else:  # ACK of a negative final: same branch, hop by hop, the reply's To tag
            to_hdr, self.to_hdr = self.to_hdr, header_values(final, "To")[0]
            self._send("ACK", self.ruri, self.cseq, branch, [])
            self.to_hdr = to_hdr
        return final

    def answer_request(self) -> str:
        """Wait for a request from the edge (e.g. the far end's BYE), answer it 200."""
        while True:
            data, addr = self.sock.recvfrom(65535)
            text = data.decode(errors="replace")
            if not text.startswith("SIP/2.0"):
                break
        keep = [f"{n}: {v}" for n in ("Via", "From", "To", "Call-ID", "CSeq")
                for v in header_values(text, n)]
        reply = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0"]) + "\r\n\r\n"
        self.sock.sendto(reply.encode(), addr)
        self.sock.close()
        return text

    def bye(self) -> str:
        self.cseq += 1
        self._send("BYE", self.target, self.cseq, "z9hG4bK" + uuid.uuid4().hex,
                   [f"Route: {r}" for r in self.route])
        final = self._final()
        self.sock.close()
        return final


# -- the edge ------------------------------------------------------------------------------
@dataclass
class Edge:
    """`trunkedge run` with its own settings file, runtime folder and log."""

    workdir: Path
    redis_url: str
    gateways: dict[str, str]
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    extra_listen: tuple[str, ...] = ()
    children: int = 2
    shm_mb: int = 128
    log_level: int = 2
    memory_manager: str = "tlsf"
    routing: dict[str, object] = field(default_factory=dict)
    # the customer addresses the load tests use are exempt from flood limits
    security: dict[str, object] = field(default_factory=lambda: {
        "flood_exempt": ["127.0.0.1/32", "127.0.0.2/32", "::1/128"]})
    auth: dict[str, object] = field(default_factory=dict)
    limits: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    cdr: dict[str, object] = field(default_factory=dict)
    redis: dict[str, object] = field(default_factory=dict)  # in place of redis_url (Sentinel)
    tls: dict[str, object] = field(default_factory=dict)  # the tls section (tls: listeners)
    tcp_children: int = 2
    proc: subprocess.Popen[bytes] | None = None

    @property
    def settings_path(self) -> Path:
        return self.workdir / "settings.yaml"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kamailio.log"

    @property
    def spool_dir(self) -> Path:
        """This edge's call detail record spool (cdr.spool_dir)."""
        return self.workdir / "cdr"

    def write_settings(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = {
            "listen": [f"udp:{self.host}:{self.port}", f"tcp:{self.host}:{self.port}",
                       *self.extra_listen],
            "base_domain": BASE,
            "redis": {"prefix": "te-test:", "timeout_ms": 100,
                      **(self.redis or {"url": self.redis_url})},
            "pops": {pop: [uri] for pop, uri in self.gateways.items()},
            "auth": {"secret": "test-secret", "nonce_expire": 300, **self.auth},
            "kamailio": {"children": self.children, "tcp_children": self.tcp_children,
                         "shm_mb": self.shm_mb,
                         "pkg_mb": 16, "log_level": self.log_level,
                         "memory_manager": self.memory_manager},
            "retry_after": 7,
            "routing": self.routing,
            "security": self.security,
            "limits": self.limits,
            "metrics": self.metrics,
            "cdr": {"spool_dir": str(self.spool_dir), **self.cdr},
            "tls": self.tls,
        }
        self.settings_path.write_text(yaml.safe_dump(settings))

    def start(self) -> None:
        self.write_settings()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "trunkedge"), "run", "--config", str(self.settings_path),
             "--rundir", str(self.rundir)],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(self.ready, 20, "the edge to answer OPTIONS", interval=0.2)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"edge did not start:\n{self.log()[-4000:]}") from None

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"edge exited:\n{self.log()[-4000:]}")
        reply = sip_request((self.host, self.port), "OPTIONS", f"sip:{self.address}",
                            timeout=0.3)
        return status_of(reply) == 200

    def children_pids(self) -> list[int]:
        """PIDs of Kamailio processes whose parent is the edge's main process."""
        return children_of(self.proc.pid) if self.proc else []

    def cpu_seconds(self) -> float:
        """User + system CPU of the edge's Kamailio processes so far (from /proc)."""
        assert self.proc is not None
        return cpu_seconds_of(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop Kamailio (SIGTERM or SIGINT) and return its exit status."""
        if self.proc is None:
            return None
        stop_process(self.proc, timeout=15, sig=sig)
        status, self.proc = self.proc.returncode, None
        return status

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def rundir(self) -> Path:
        return self.workdir / "run"

    def status(self) -> dict[str, Any]:
        """`trunkedge status`: POPs, gateway states and counters."""
        out = self.cli("status", "--rundir", str(self.rundir))
        assert out.returncode == 0, out.stderr
        return dict(yaml.safe_load(out.stdout))

    def gateway_states(self) -> dict[str, str]:
        return {gw["uri"]: gw["state"] for pop in self.status()["pops"].values()
                for gw in pop["gateways"]}

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Provision through the product's command line, on this edge's settings."""
        return subprocess.run(
            [str(VENV_BIN / "trunkedge"), "--config", str(self.settings_path), *args],
            input=stdin, capture_output=True, text=True, timeout=30,
        )

    def provision(self, config: dict[str, object]) -> None:
        path = self.workdir / f"import-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(config))
        result = self.cli("import", str(path))
        assert result.returncode == 0, result.stderr



def challenges(reply: str) -> list[dict[str, str]]:
    """The Proxy-Authenticate challenges of a 407, in order, as parameter dicts."""
    out = []
    for value in header_values(reply, "Proxy-Authenticate"):
        scheme, _, rest = value.partition(" ")
        params = {k.lower(): (v1 if v1 else v2)
                  for k, v1, v2 in re.findall(r'([A-Za-z-]+)=(?:"([^"]*)"|([^,\s]+))', rest)}
        params["scheme"] = scheme
        out.append(params)
    return out


def authorization(challenge: dict[str, str], user: str, password: str, method: str,
                  uri: str, nc: str = "00000001", cnonce: str = "0a4f113b",
                  algorithm: str | None = None, response_uri: str | None = None) -> str:
    """A Proxy-Authorization header answering `challenge` (RFC 7616, qop=auth), computed
    independently of the product's code. `response_uri` puts another uri in the header."""
    alg = algorithm or challenge.get("algorithm", "MD5")
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]
    def H(text: str) -> str:
        return h(text.encode()).hexdigest()
    ha1 = H(f"{user}:{challenge['realm']}:{password}")
    ha2 = H(f"{method}:{uri}")
    resp = H(f"{ha1}:{challenge['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Proxy-Authorization: Digest username="{user}", realm="{challenge["realm"]}", '
            f'nonce="{challenge["nonce"]}", uri="{response_uri or uri}", response="{resp}", '
            f'algorithm={alg}, qop=auth, nc={nc}, cnonce="{cnonce}", '
            f'opaque="{challenge.get("opaque", "")}"')


class RedisMonitor:
    """The commands a Redis runs while the `with` block runs (MONITOR): exact counts of
    what the edge's workers send, apart from what its watcher sends."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.commands: list[str] = []
        self._stop = False
        self._thread: Any = None

    def __enter__(self) -> RedisMonitor:
        import threading

        ready = threading.Event()

        def watch() -> None:
            with self.server.client().monitor() as m:
                ready.set()
                while not self._stop:
                    self.commands.append(str(m.next_command()["command"]))

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        ready.wait(5)
        time.sleep(0.1)
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.2)  # the last commands reach the monitor
        self._stop = True
        self.server.client().ping()  # wakes the monitor up to see the stop
        self._thread.join(5)

    def count(self, prefix: str) -> int:
        """Commands starting with `prefix` (e.g. "EVALSHA <sha>")."""
        return sum(c.startswith(prefix) for c in self.commands)
