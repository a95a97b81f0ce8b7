"""The edge's settings: one YAML file, validated into frozen dataclasses."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from trunkedge.core.digest import ALGORITHMS
from trunkedge.core.errors import ConfigError
from trunkedge.core.names import network
from trunkedge.core.pops import POP_NAMES, REGIONS, Gateway
from trunkedge.core.transports import SECURE, listener_transport, uri_transport

SETTINGS_ENV = "TRUNKEDGE_SETTINGS"
SECRET_ENV = "TRUNKEDGE_SECRET"
REDIS_ENV = "TRUNKEDGE_REDIS"  # redis.url when the file gives none

_LISTEN = re.compile(r"^(udp|tcp|tls):(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})$")
_GATEWAY = re.compile(r"^sip:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(;[A-Za-z0-9=;_.-]*)?$")
_HTTP_LISTEN = re.compile(r"(\[[0-9a-fA-F:]+\]|[0-9.]+):([1-9][0-9]{0,4})")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                       r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!%*_+`'~.-]+")
_EDGE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SENTINEL = re.compile(r"([A-Za-z0-9.-]{1,253}):([0-9]{1,5})")  # no IPv6: ndb_redis splits at ':'
_MASTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SENTINELS = 5  # ndb_redis 5.6 (redis_client.h MAXIMUM_SENTINELS)
NDB_REDIS_UNSAFE = frozenset(';,!"\\ \t\r\n')
"""Characters a value in ndb_redis's `server` spec cannot hold: `;` and `,` end an attribute
(5.6 core/parser/parse_param.c), `!` and `"` would end the substdef it is rendered into."""


@dataclass(frozen=True)
class RedisSettings:
    """One Redis at `url` (its password and db in the URL), or the master that Redis
    Sentinel names: `sentinels` (host:port, 1-5) and `master_name`, with `password` and `db`
    for the master (the sentinels themselves take no password: ndb_redis 5.6 sends none)."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "trunkedge:"
    timeout_ms: int = 100
    sentinels: tuple[str, ...] = ()
    master_name: str = ""
    password: str = ""
    db: int = 0

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each sentinel, in the settings' order (none: use `url`)."""
        return [(host, int(port)) for host, _, port in (s.rpartition(":") for s in self.sentinels)]


@dataclass(frozen=True)
class AuthSettings:
    secret: str = ""
    nonce_expire: int = 300
    algorithms: tuple[str, ...] = ("MD5",)  # for domains that set none, preferred first


SCANNERS = ("friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sundayddr", "iwar",
            "vaxsipuseragent", "pplsip", "smap", "sipscan")
"""User-Agent substrings of well-known SIP scanners (compared case-insensitively)."""


@dataclass(frozen=True)
class SecuritySettings:
    """Brute force bans (shared by the edges through Redis), flood limits, scanners."""

    ban_failures: int = 5  # failed authentications from one address within ban_window_s
    ban_window_s: int = 60
    ban_time_s: int = 600  # ... ban it this long, on every edge
    flood_requests: int = 200  # requests per flood_window_s per address (pike)
    flood_window_s: int = 2
    flood_exempt: tuple[str, ...] = ()  # CIDRs never flood-limited (gateways never are)
    scanners: tuple[str, ...] = SCANNERS
    breaker_ms: int = 500  # after a Redis failure, answer 503 at once for this long


INTERNAL_HEADERS = ("P-Charging-Vector", "P-Charging-Function-Addresses", "P-Charge-Info",
                    "P-Visited-Network-ID", "P-Access-Network-Info")
"""Trusted-realm headers (RFC 7315, RFC 8496) removed from replies to the customer."""


@dataclass(frozen=True)
class RoutingSettings:
    """How calls reach the POPs: order of regions, failover and health probing timers."""

    region_order: tuple[str, ...] = ("eu", "us", "apac")
    branch_timeout_ms: int = 1500  # no reply at all from a gateway: try the next one
    ring_timeout_s: int = 120  # a provisional reply came: wait this long for an answer
    probe_interval_s: int = 2  # OPTIONS keepalive to every gateway
    probe_timeout_ms: int = 1500  # an OPTIONS unanswered this long marks the gateway down
    strip_reply_headers: tuple[str, ...] = INTERNAL_HEADERS
    mask_ip: str = "127.0.0.8"  # shown in place of hidden addresses; never a client's
    topology_hiding: bool = True  # topoh: neither side sees the other's addresses


MEMORY_MANAGERS = ("tlsf", "qm", "fm")


@dataclass(frozen=True)
class KamailioSettings:
    children: int = 4
    tcp_children: int = 2
    shm_mb: int = 1024
    pkg_mb: int = 16
    log_level: int = 2
    # Kamailio's memory manager (-x). TLSF allocates in constant time; the default "qm"
    # walked its free lists for half of all CPU under load (bench/run.py, perf).
    memory_manager: str = "tlsf"


TLS_MIN_VERSIONS = {"TLSv1.2": "TLSv1.2+"}
"""min_version -> Kamailio 5.6's tls `method` (TLSv1.2+ negotiates 1.3 when offered; 5.6
has no TLS 1.3-only method)."""


@dataclass(frozen=True)
class TlsSettings:
    """SIP over TLS (RFC 3261 §26.2, RFC 5630) on the `tls:` listeners: the edge's
    certificate (PEM files; relative paths from the settings file's folder), what it asks
    of clients, and how long a connection may stay open without traffic."""

    certificate: str = ""  # the edge's certificate chain, leaf first
    private_key: str = ""  # its key, unencrypted (readable by the edge only)
    ca_list: str = ""  # CAs for client certificates (verify_client) and TLS gateways
    min_version: str = "TLSv1.2"
    verify_client: bool = False  # require a client certificate that ca_list signed
    handshake_timeout_s: int = 10  # a connection (TCP too) that has carried no SIP yet
    idle_timeout_s: int = 3605  # one that has carried SIP: closed after this long idle
    max_connections: int = 2048  # TLS connections at once (Kamailio's tls_max_connections)


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics over HTTP (Kamailio's xhttp + xhttp_prom), off when unset."""

    listen: str = ""  # "127.0.0.1:9090": GET /metrics there (loopback by default)

    @property
    def address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class LimitsSettings:
    """How customer limits are enforced (the limits themselves are provisioned)."""

    channel_lease_s: int = 30  # a dead edge's calls stop counting after this long
    max_call_s: int = 14_400  # a call with no BYE ends after this long (dialog timeout)
    known_source_s: int = 300  # an admitted source skips the flood guard this long
    over_cps_code: int = 503  # with Retry-After: come back in a second (RFC 3261 §21.5.4)
    over_cps_phrase: str = "Service Unavailable"
    over_channels_code: int = 403  # the customer's own limit: not worth a retry elsewhere
    over_channels_phrase: str = "Channel Limit Exceeded"


@dataclass(frozen=True)
class CdrSettings:
    """Call detail records: the edge's local spool, and the Redis stream they go to."""

    spool_dir: str = "/var/spool/trunkedge"  # every record is appended here first
    stream_maxlen: int = 1_000_000  # XADD MAXLEN ~: entries the stream keeps, about
    edge_name: str = ""  # names this edge in records, spool files and ids; empty: host name
    enabled: bool = True

    @property
    def edge(self) -> str:
        """The edge name, or the host name and a tag of the spool folder: stable across
        restarts (the publisher resumes by it), distinct for edges side by side."""
        if self.edge_name:
            return self.edge_name
        host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:56] or "edge"
        return f"{host}-{hashlib.sha256(self.spool_dir.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class Settings:
    listen: tuple[str, ...]
    base_domain: str
    pops: Mapping[str, tuple[Gateway, ...]]
    redis: RedisSettings = field(default_factory=RedisSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    kamailio: KamailioSettings = field(default_factory=KamailioSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    cdr: CdrSettings = field(default_factory=CdrSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    default_pop: str = "eu1"
    retry_after: int = 5
    source: Path | None = None

    @property
    def realm(self) -> str:
        """The digest realm is the base domain, the same for every customer domain."""
        return self.base_domain


_TOP_LEVEL = frozenset(f.name for f in fields(Settings)) - {"source"}

_Check = Callable[[object, str], Any]
"""Validates one setting's value, named in any ConfigError; returns the value to keep."""


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate the settings file; raise ConfigError naming the bad field."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ConfigError("settings", f"cannot read {p}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError("settings", f"{p} is not valid YAML: {e}") from e
    return replace(parse_settings(raw), source=p.resolve())


def parse_settings(raw: object) -> Settings:
    """Validate a settings mapping as read from YAML; the first bad field raises ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError("settings", "the file must hold a mapping")
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown setting")
    listen = _listen(raw.get("listen"))
    base_domain = _base_domain(raw.get("base_domain"))
    pops = _pops(raw.get("pops"))
    default_pop = _default_pop(raw.get("default_pop", Settings.default_pop), pops)
    redis, auth, security = _redis(raw), _auth(raw), _security(raw)
    routing, kamailio, limits = _routing(raw), _kamailio(raw), _limits(raw)
    metrics, tls = _metrics(raw), _tls(raw, listen, pops)
    return Settings(listen=listen, base_domain=base_domain, pops=pops, default_pop=default_pop,
                    redis=redis, auth=auth, security=security, routing=routing, kamailio=kamailio,
                    limits=limits, cdr=_cdr(raw), metrics=metrics, tls=tls,
                    **_checked(raw, "", {"retry_after": _integer(1, 3600)}))


def _checked(values: Mapping[str, Any], prefix: str,
             checks: Mapping[str, _Check]) -> dict[str, Any]:
    """The keys of `values` that `checks` knows and `values` holds, each checked, in the order
    of `checks`. The dataclass built from them supplies the default of every key left out."""
    return {key: check(values[key], prefix + key) for key, check in checks.items() if key in values}


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A section such as `redis:`; absent or empty is {}. Unknown keys in it are ignored."""
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping")
    return value


# Top-level settings.

def _listen(value: object) -> tuple[str, ...]:
    """One listen socket or a list of them, each udp|tcp|tls:address:port."""
    if isinstance(value, str):
        value = [value]
    if not value or not isinstance(value, list):
        raise ConfigError("listen", "give at least one socket, e.g. udp:127.0.0.1:5060")
    for sock in value:
        if not isinstance(sock, str) or not _LISTEN.match(sock):
            raise ConfigError("listen", f"{sock!r} is not proto:address:port (udp, tcp or tls)")
    return tuple(value)


def _base_domain(value: object) -> str:
    """The base domain (and digest realm): a DNS name, kept in lower case."""
    if not isinstance(value, str) or not _HOSTNAME.match(value):
        raise ConfigError("base_domain", "must be a DNS name such as sip.example.net")
    return value.lower()


def _pops(value: object) -> dict[str, tuple[Gateway, ...]]:
    """The POPs: a non-empty mapping of POP name to its gateways."""
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("pops", "must map POP names to lists of gateway SIP URIs")
    return {name: _gateways(f"pops.{name}", name, gws) for name, gws in value.items()}


def _default_pop(value: object, pops: Mapping[str, object]) -> str:
    """The default POP must be one of the configured POPs."""
    if value not in pops:
        raise ConfigError("default_pop", f"{value!r} is not a configured POP")
    return str(value)


def _gateways(field_name: str, pop: object, raw: object) -> tuple[Gateway, ...]:
    """A POP's gateways: SIP URIs, or mappings {uri, priority, weight}."""
    if pop not in POP_NAMES:
        raise ConfigError(field_name, f"unknown POP; known: {', '.join(POP_NAMES)}")
    if isinstance(raw, str | Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(field_name, "must be a non-empty list of SIP URIs")
    return tuple(_gateway(field_name, item) for item in raw)


def _gateway(field_name: str, item: object) -> Gateway:
    """One gateway: a SIP URI, or {uri, priority, weight} (a null weight is no weight)."""
    spec = item if isinstance(item, Mapping) else {"uri": item}
    if set(spec) - {"uri", "priority", "weight"}:
        raise ConfigError(field_name, "a gateway is a SIP URI or {uri, priority, weight}")
    uri = spec.get("uri")
    if not isinstance(uri, str) or not _GATEWAY.match(uri):
        raise ConfigError(field_name, f"{uri!r} is not a SIP URI like sip:10.0.0.1:5060")
    return Gateway(uri=uri, **_checked(spec, f"{field_name}.", {
        "priority": _integer(0, 1000), "weight": _optional(_integer(1, 100))}))


# Sections: each check table covers every field of its dataclass, in the order checked.

def _redis(raw: Mapping[str, Any]) -> RedisSettings:
    """The redis section: one Redis (`url`; REDIS_ENV, when set, stands in for a url left
    out) or Sentinel (`sentinels` and `master_name`, with `password` and `db`), not both."""
    values = dict(_section(raw, "redis"))
    env_url = os.environ.get(REDIS_ENV)
    if env_url is not None and "sentinels" not in values:
        values.setdefault("url", env_url)
    _redis_mode(values)
    return RedisSettings(**_checked(values, "redis.", {
        "url": _redis_url, "prefix": _key_prefix, "timeout_ms": _integer(1, 10_000),
        "sentinels": _sentinels, "master_name": _master_name, "password": _ndb_value,
        "db": _integer(0, 1023)}))


def _redis_mode(values: Mapping[str, Any]) -> None:
    """`url`, or `sentinels` with `master_name`: the keys of the other mode are refused."""
    if "sentinels" not in values:
        for key in ("master_name", "password", "db"):
            if key in values:
                raise ConfigError(f"redis.{key}", "only with redis.sentinels (else in redis.url)")
    elif "url" in values:
        raise ConfigError("redis.url", "give redis.url or redis.sentinels, not both")
    elif "master_name" not in values:
        raise ConfigError("redis.master_name", "the name Sentinel monitors the master under "
                          "is needed with redis.sentinels")


def _auth(raw: Mapping[str, Any]) -> AuthSettings:
    """The auth section: the shared secret, nonce lifetime and digest algorithms."""
    return AuthSettings(**_checked(_section(raw, "auth"), "auth.", {
        "secret": _secret, "algorithms": _algorithms, "nonce_expire": _integer(1, 86_400)}))


def _security(raw: Mapping[str, Any]) -> SecuritySettings:
    """The security section: brute force bans, flood limits, scanner User-Agents."""
    return SecuritySettings(**_checked(_section(raw, "security"), "security.", {
        "flood_exempt": _cidrs,
        "scanners": _scanners,
        "ban_failures": _integer(1, 1000),
        "ban_window_s": _integer(1, 86_400),
        "ban_time_s": _integer(1, 604_800),
        "flood_requests": _integer(1, 1_000_000),
        "flood_window_s": _integer(1, 60),
        "breaker_ms": _integer(0, 60_000),
    }))


def _metrics(raw: Mapping[str, Any]) -> MetricsSettings:
    """The metrics section: where /metrics is served (empty: nowhere)."""
    return MetricsSettings(**_checked(_section(raw, "metrics"), "metrics.", {
        "listen": _http_listen}))


def _http_listen(value: object, name: str) -> str:
    """ADDRESS:PORT of an HTTP listener (IPv6 in brackets), or "" for none."""
    if value in ("", None):
        return ""
    if not isinstance(value, str) or not _HTTP_LISTEN.fullmatch(value):
        raise ConfigError(name, f"{value!r} is not ADDRESS:PORT, e.g. 127.0.0.1:9090")
    _ip(value.rpartition(":")[0].strip("[]"), name)
    return value


def _limits(raw: Mapping[str, Any]) -> LimitsSettings:
    """The limits section: leases, the longest call, and the answers when over a limit."""
    return LimitsSettings(**_checked(_section(raw, "limits"), "limits.", {
        "channel_lease_s": _integer(3, 3600),
        "max_call_s": _integer(60, 604_800),
        "known_source_s": _integer(1, 86_400),
        "over_cps_code": _integer(400, 699),
        "over_cps_phrase": _phrase,
        "over_channels_code": _integer(400, 699),
        "over_channels_phrase": _phrase,
    }))


def _cdr(raw: Mapping[str, Any]) -> CdrSettings:
    """The cdr section: the spool folder, the stream's length, the edge's name."""
    return CdrSettings(**_checked(_section(raw, "cdr"), "cdr.", {
        "spool_dir": _absolute_path,
        "stream_maxlen": _integer(1_000, 1_000_000_000),
        "edge_name": _edge_name,
        "enabled": _boolean,
    }))


def _phrase(value: object, name: str) -> str:
    """A SIP reason phrase: printable text on one line."""
    if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 80:
        raise ConfigError(name, "must be a reason phrase: 1-80 printable characters")
    return value


def _routing(raw: Mapping[str, Any]) -> RoutingSettings:
    """The routing section: region order, failover and probe timers, topology hiding."""
    return RoutingSettings(**_checked(_section(raw, "routing"), "routing.", {
        "region_order": _region_order,
        "branch_timeout_ms": _integer(100, 60_000),
        "ring_timeout_s": _integer(5, 3600),
        "probe_interval_s": _integer(1, 3600),
        "probe_timeout_ms": _integer(100, 60_000),
        "strip_reply_headers": _header_names,
        "mask_ip": _ip,
        "topology_hiding": _boolean,
    }))


def _kamailio(raw: Mapping[str, Any]) -> KamailioSettings:
    """The kamailio section: worker counts, memory sizes and manager, log level."""
    return KamailioSettings(**_checked(_section(raw, "kamailio"), "kamailio.", {
        "children": _integer(1, 64),
        "tcp_children": _integer(1, 64),
        "shm_mb": _integer(64, 65_536),
        "pkg_mb": _integer(4, 1024),
        "log_level": _integer(-5, 3),
        "memory_manager": _one_of(MEMORY_MANAGERS),
    }))


def _tls(raw: Mapping[str, Any], listen: tuple[str, ...],
         pops: Mapping[str, tuple[Gateway, ...]]) -> TlsSettings:
    """The tls section, needed by a `tls:` listener; a TLS gateway needs such a listener
    (Kamailio sends TLS from one). The files are read when the edge starts."""
    tls = TlsSettings(**_checked(_section(raw, "tls"), "tls.", {
        "certificate": _file_path,
        "private_key": _file_path,
        "ca_list": _file_path,
        "min_version": _one_of(tuple(TLS_MIN_VERSIONS)),
        "verify_client": _boolean,
        "handshake_timeout_s": _integer(1, 300),
        "idle_timeout_s": _integer(10, 86_400),
        "max_connections": _integer(1, 65_536),
    }))
    has_listener = any(listener_transport(sock) in SECURE for sock in listen)
    if has_listener:
        for key in ("certificate", "private_key"):
            if not getattr(tls, key):
                raise ConfigError(f"tls.{key}", "needed by the tls: listener")
    if tls.verify_client and not tls.ca_list:
        raise ConfigError("tls.ca_list", "needed by tls.verify_client")
    for pop, gateways in pops.items():
        if not has_listener and any(uri_transport(g.uri) in SECURE for g in gateways):
            raise ConfigError(f"pops.{pop}", "a ;transport=tls gateway needs a tls: listener")
    return tls


# Checks of one value (see _Check).

def _integer(lo: int, hi: int) -> _Check:
    """A check for an integer from lo to hi; true and false are not integers here."""
    def integer_in_range(value: object, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(name, f"must be an integer from {lo} to {hi}")
        return int(value)
    return integer_in_range


def _optional(check: _Check) -> _Check:
    """`check`, except that null passes as None."""
    def none_or_checked(value: object, name: str) -> Any:
        return None if value is None else check(value, name)
    return none_or_checked


def _one_of(choices: tuple[str, ...]) -> _Check:
    """A check for one of `choices`."""
    def one_of_choices(value: object, name: str) -> str:
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}")
        return str(value)
    return one_of_choices


def _boolean(value: object, name: str) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise ConfigError(name, "must be true or false")
    return value


def _absolute_path(value: object, name: str) -> str:
    """An absolute file system path."""
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise ConfigError(name, "must be an absolute path")
    return value


def _edge_name(value: object, name: str) -> str:
    """Empty (the host name), or 1-64 letters, digits and `_.-`."""
    if not isinstance(value, str) or (value and not _EDGE_NAME.fullmatch(value)):
        raise ConfigError(name, "must be 1-64 letters, digits, '_', '.' or '-' (or empty)")
    return value


def _file_path(value: object, name: str) -> str:
    """A file name for Kamailio's tls.cfg ("": none): no white space, quotes, `#`, `=` or
    brackets."""
    if not isinstance(value, str) or re.search(r'[\s"#=\[\]]', value):
        raise ConfigError(name, "must be a file path without spaces, quotes, # = [ ]")
    return value


def _redis_url(value: object, name: str) -> str:
    """A redis://, rediss:// or unix:// URL."""
    if not isinstance(value, str) or not value.startswith(("redis://", "unix://", "rediss://")):
        raise ConfigError(name, "must be a redis:// or unix:// URL")
    return value


def _sentinels(value: object, name: str) -> tuple[str, ...]:
    """1 to MAX_SENTINELS distinct host:port (a name or IPv4 address: ndb_redis 5.6 splits
    the entry at its first `:`)."""
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not 1 <= len(value) <= MAX_SENTINELS
            or len(set(map(str, value))) != len(value)):
        raise ConfigError(name, f"must list 1 to {MAX_SENTINELS} distinct host:port")
    for entry in value:
        found = _SENTINEL.fullmatch(entry) if isinstance(entry, str) else None
        if found is None or not 1 <= int(found.group(2)) <= 65_535:
            raise ConfigError(name, f"{entry!r} is not host:port (a name or IPv4 address)")
    return tuple(value)


def _master_name(value: object, name: str) -> str:
    """The name Sentinel monitors the master under (`sentinel monitor NAME ...`)."""
    if not isinstance(value, str) or not _MASTER_NAME.fullmatch(value):
        raise ConfigError(name, "must be 1-64 of A-Z a-z 0-9 _ . -")
    return value


def _ndb_value(value: object, name: str) -> str:
    """A string ndb_redis's server spec can carry (see NDB_REDIS_UNSAFE)."""
    if not isinstance(value, str) or NDB_REDIS_UNSAFE & set(value):
        raise ConfigError(name, "must be a string without ; , ! \" \\ or white space")
    return value


def _key_prefix(value: object, name: str) -> str:
    """The Redis key prefix: up to 64 characters safe in a key."""
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise ConfigError(name, "must be up to 64 of A-Z a-z 0-9 _ . : -")
    return value


def _secret(value: object, name: str) -> str:
    """The shared secret; it is written into the Kamailio config between double quotes."""
    if not isinstance(value, str) or '"' in value or "\\" in value:
        raise ConfigError(name, "must be a string without quotes or backslashes")
    return value


def _algorithms(value: object, name: str) -> tuple[str, ...]:
    """A non-empty list of distinct digest algorithms from ALGORITHMS."""
    if (not isinstance(value, list) or not value or len(set(value)) != len(value)
            or not set(value) <= set(ALGORITHMS)):
        raise ConfigError(name, f"must list some of {', '.join(ALGORITHMS)}")
    return tuple(value)


def _cidrs(value: object, name: str) -> tuple[str, ...]:
    """A list of addresses or CIDR ranges, kept in normal form."""
    if not isinstance(value, list):
        raise ConfigError(name, "must be a list of CIDRs")
    return tuple(str(network(x, name)) for x in value)


def _scanners(value: object, name: str) -> tuple[str, ...]:
    """A list of non-empty User-Agent substrings, kept in lower case."""
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise ConfigError(name, "must be a list of User-Agent substrings")
    return tuple(x.lower() for x in value)


def _region_order(value: object, name: str) -> tuple[str, ...]:
    """Each region of REGIONS exactly once."""
    if not isinstance(value, list) or sorted(value) != sorted(REGIONS):
        raise ConfigError(name, f"must list each of {', '.join(REGIONS)} once")
    return tuple(value)


def _header_names(value: object, name: str) -> tuple[str, ...]:
    """A list of SIP header names."""
    if not isinstance(value, list) or not all(
        isinstance(h, str) and _HEADER_NAME.fullmatch(h) for h in value
    ):
        raise ConfigError(name, "must be a list of header names")
    return tuple(value)


def _ip(value: object, name: str) -> str:
    """An IPv4 or IPv6 address, kept in normal form."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError as e:
        raise ConfigError(name, f"{value!r} is not an IP address") from e
