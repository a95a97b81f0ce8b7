"""The edge's settings: one YAML file, validated into frozen dataclasses."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trunkedge.digest import ALGORITHMS
from trunkedge.errors import ConfigError
from trunkedge.names import network
from trunkedge.pops import POP_NAMES, REGIONS, Gateway

SETTINGS_ENV = "TRUNKEDGE_SETTINGS"
SECRET_ENV = "TRUNKEDGE_SECRET"

_LISTEN = re.compile(r"^(udp|tcp):(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})$")
_GATEWAY = re.compile(r"^sip:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(;[A-Za-z0-9=;_.-]*)?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                       r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "trunkedge:"
    timeout_ms: int = 100


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
    default_pop: str = "eu1"
    retry_after: int = 5
    source: Path | None = None

    @property
    def realm(self) -> str:
        """The digest realm is the base domain, the same for every customer domain."""
        return self.base_domain


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate the settings file; raise ConfigError naming the bad field."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ConfigError("settings", f"cannot read {p}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError("settings", f"{p} is not valid YAML: {e}") from e
    settings = parse_settings(raw)
    return Settings(**{**settings.__dict__, "source": p.resolve()})


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping")
    return value


def _int(section: Mapping[str, Any], key: str, default: int, name: str, lo: int, hi: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(name, f"must be an integer from {lo} to {hi}")
    return int(value)


def parse_settings(raw: object) -> Settings:
    """Validate a settings mapping as read from YAML."""
    if not isinstance(raw, Mapping):
        raise ConfigError("settings", "the file must hold a mapping")
    unknown = set(raw) - {"listen", "base_domain", "redis", "pops", "auth", "kamailio",
                          "default_pop", "retry_after", "routing", "security"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown setting")

    listen = raw.get("listen")
    if isinstance(listen, str):
        listen = [listen]
    if not listen or not isinstance(listen, list):
        raise ConfigError("listen", "give at least one socket, e.g. udp:127.0.0.1:5060")
    for sock in listen:
        if not isinstance(sock, str) or not _LISTEN.match(sock):
            raise ConfigError("listen", f"{sock!r} is not proto:address:port (udp or tcp)")

    base = raw.get("base_domain")
    if not isinstance(base, str) or not _HOSTNAME.match(base):
        raise ConfigError("base_domain", "must be a DNS name such as sip.example.net")

    pops_raw = raw.get("pops")
    if not isinstance(pops_raw, Mapping) or not pops_raw:
        raise ConfigError("pops", "must map POP names to lists of gateway SIP URIs")
    pops = {name: _gateways(f"pops.{name}", name, gws) for name, gws in pops_raw.items()}

    default_pop = raw.get("default_pop", "eu1")
    if default_pop not in pops:
        raise ConfigError("default_pop", f"{default_pop!r} is not a configured POP")

    r = _section(raw, "redis")
    url = r.get("url", os.environ.get("TRUNKEDGE_REDIS", RedisSettings.url))
    if not isinstance(url, str) or not url.startswith(("redis://", "unix://", "rediss://")):
        raise ConfigError("redis.url", "must be a redis:// or unix:// URL")
    prefix = r.get("prefix", RedisSettings.prefix)
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{0,64}", prefix):
        raise ConfigError("redis.prefix", "must be up to 64 of A-Z a-z 0-9 _ . : -")
    redis = RedisSettings(url=url, prefix=prefix,
                          timeout_ms=_int(r, "timeout_ms", 100, "redis.timeout_ms", 1, 10_000))

    a = _section(raw, "auth")
    secret = a.get("secret", "")
    if not isinstance(secret, str) or '"' in secret or "\\" in secret:
        raise ConfigError("auth.secret", "must be a string without quotes or backslashes")
    algs = a.get("algorithms", ["MD5"])
    if (not isinstance(algs, list) or not algs or len(set(algs)) != len(algs)
            or not set(algs) <= set(ALGORITHMS)):
        raise ConfigError("auth.algorithms", f"must list some of {', '.join(ALGORITHMS)}")
    auth = AuthSettings(secret=secret, nonce_expire=_int(a, "nonce_expire", 300,
                                                        "auth.nonce_expire", 1, 86_400),
                        algorithms=tuple(algs))

    sec = _section(raw, "security")
    exempt = sec.get("flood_exempt", [])
    if not isinstance(exempt, list):
        raise ConfigError("security.flood_exempt", "must be a list of CIDRs")
    scanners = sec.get("scanners", list(SCANNERS))
    if not isinstance(scanners, list) or not all(isinstance(x, str) and x for x in scanners):
        raise ConfigError("security.scanners", "must be a list of User-Agent substrings")
    security = SecuritySettings(
        ban_failures=_int(sec, "ban_failures", 5, "security.ban_failures", 1, 1000),
        ban_window_s=_int(sec, "ban_window_s", 60, "security.ban_window_s", 1, 86_400),
        ban_time_s=_int(sec, "ban_time_s", 600, "security.ban_time_s", 1, 604_800),
        flood_requests=_int(sec, "flood_requests", 200, "security.flood_requests", 1, 1_000_000),
        flood_window_s=_int(sec, "flood_window_s", 2, "security.flood_window_s", 1, 60),
        flood_exempt=tuple(str(network(x, "security.flood_exempt")) for x in exempt),
        scanners=tuple(x.lower() for x in scanners),
        breaker_ms=_int(sec, "breaker_ms", 500, "security.breaker_ms", 0, 60_000),
    )

    rt = _section(raw, "routing")
    order = rt.get("region_order", list(RoutingSettings.region_order))
    if not isinstance(order, list) or sorted(order) != sorted(REGIONS):
        raise ConfigError("routing.region_order", f"must list each of {', '.join(REGIONS)} once")
    routing = RoutingSettings(
        region_order=tuple(order),
        branch_timeout_ms=_int(rt, "branch_timeout_ms", 1500, "routing.branch_timeout_ms",
                               100, 60_000),
        ring_timeout_s=_int(rt, "ring_timeout_s", 120, "routing.ring_timeout_s", 5, 3600),
        probe_interval_s=_int(rt, "probe_interval_s", 2, "routing.probe_interval_s", 1, 3600),
        probe_timeout_ms=_int(rt, "probe_timeout_ms", 1500, "routing.probe_timeout_ms",
                              100, 60_000),
        strip_reply_headers=_header_names(rt.get("strip_reply_headers", list(INTERNAL_HEADERS))),
        mask_ip=_ip(rt.get("mask_ip", RoutingSettings.mask_ip), "routing.mask_ip"),
        topology_hiding=_bool(rt, "topology_hiding", True, "routing.topology_hiding"),
    )

    k = _section(raw, "kamailio")
    kam = KamailioSettings(
        children=_int(k, "children", 4, "kamailio.children", 1, 64),
        tcp_children=_int(k, "tcp_children", 2, "kamailio.tcp_children", 1, 64),
        shm_mb=_int(k, "shm_mb", 1024, "kamailio.shm_mb", 64, 65_536),
        pkg_mb=_int(k, "pkg_mb", 16, "kamailio.pkg_mb", 4, 1024),
        log_level=_int(k, "log_level", 2, "kamailio.log_level", -5, 3),
        memory_manager=_choice(k, "memory_manager", "tlsf", "kamailio.memory_manager",
                               MEMORY_MANAGERS),
    )
    return Settings(
        listen=tuple(listen), base_domain=base.lower(), pops=pops, redis=redis, auth=auth,
        routing=routing, security=security, kamailio=kam, default_pop=default_pop,
        retry_after=_int(raw, "retry_after", 5, "retry_after", 1, 3600),
    )


def _gateways(field_name: str, pop: object, raw: object) -> tuple[Gateway, ...]:
    """A POP's gateways: SIP URIs, or mappings {uri, priority, weight}."""
    if pop not in POP_NAMES:
        raise ConfigError(field_name, f"unknown POP; known: {', '.join(POP_NAMES)}")
    if isinstance(raw, str | Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(field_name, "must be a non-empty list of SIP URIs")
    gateways = []
    for item in raw:
        spec = item if isinstance(item, Mapping) else {"uri": item}
        if set(spec) - {"uri", "priority", "weight"}:
            raise ConfigError(field_name, "a gateway is a SIP URI or {uri, priority, weight}")
        uri = spec.get("uri")
        if not isinstance(uri, str) or not _GATEWAY.match(uri):
            raise ConfigError(field_name, f"{uri!r} is not a SIP URI like sip:10.0.0.1:5060")
        weight = spec.get("weight")
        gateways.append(Gateway(
            uri=uri,
            priority=_int(spec, "priority", 0, f"{field_name}.priority", 0, 1000),
            weight=None if weight is None else _int(spec, "weight", 0, f"{field_name}.weight",
                                                    1, 100),
        ))
    return tuple(gateways)


def _header_names(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(h, str) and re.fullmatch(r"[A-Za-z0-9!%*_+`'~.-]+", h) for h in raw
    ):
        raise ConfigError("routing.strip_reply_headers", "must be a list of header names")
    return tuple(raw)


def _ip(raw: object, name: str) -> str:
    try:
        return str(ipaddress.ip_address(str(raw)))
    except ValueError as e:
        raise ConfigError(name, f"{raw!r} is not an IP address") from e


def _choice(section: Mapping[str, Any], key: str, default: str, name: str,
            choices: tuple[str, ...]) -> str:
    value = section.get(key, default)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}")
    return str(value)


def _bool(section: Mapping[str, Any], key: str, default: bool, name: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(name, "must be true or false")
    return value
