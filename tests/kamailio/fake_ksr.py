"""A stand-in for Kamailio's `KSR` module: one SIP request's state in, every call the
adapter makes recorded. For unit tests of the adapter's route order; the real thing is
tested end to end."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    """The request the fake Kamailio holds, and how its modules answer."""

    method: str = "INVITE"
    ruri: str = "sip:+3123456789@acme.sip.example.net"
    source: str = "192.0.2.10"
    proto: str = "udp"  # $pr: the transport the request came over
    headers: dict[str, list[str]] = field(default_factory=dict)
    to_tag: bool = False
    flood: bool = False  # pike says the source floods
    max_forwards_exhausted: bool = False
    sane: bool = True
    transaction: int = -1  # t_check_trans: 1 matches, 0 retransmission, -1 new
    redis_up: bool = False
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    htable: dict[tuple[str, str], Any] = field(default_factory=dict)

    def pv(self, name: str) -> Any:
        rest = self.ruri.partition(":")[2]  # sip: or sips:
        user, host = rest.split("@", 1) if "@" in rest else ("", rest)
        line = f"{self.method} {self.ruri} SIP/2.0"
        return {"$si": self.source, "$sp": "5060", "$pr": self.proto, "$rm": self.method,
                "$ru": self.ruri, "$rd": host, "$rU": user, "$fU": "caller",
                "$fu": "sip:caller@example.com",
                "$ci": "call-1", "$(mb{line.at,0})": line}.get(name)

    def replies(self) -> list[tuple[int, str]]:
        return [(c[1], c[2]) for c in self.calls if c[0] in ("sl_send_reply", "t_reply")]


def install() -> Message:
    """Put a fresh fake KSR into sys.modules (the adapter modules look it up at call
    time through their module global) and return its message."""
    msg = Message()
    ksr = sys.modules.get("KSR")
    if not isinstance(ksr, types.ModuleType) or not hasattr(ksr, "_fake"):
        ksr = types.ModuleType("KSR")
        ksr._fake = True  # type: ignore[attr-defined]
        sys.modules["KSR"] = ksr
    _wire(ksr, msg)
    return msg


def _wire(ksr: types.ModuleType, msg: Message) -> None:
    def rec(name: str, result: Callable[..., Any] | Any = 1) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            msg.calls.append((name, *args))
            return result(*args) if callable(result) else result
        return call

    def hdr_get(name: str) -> str | None:
        values = msg.headers.get(name)
        return values[0] if values else None

    def hdr_get_idx(name: str, i: int) -> str | None:
        values = msg.headers.get(name) or []
        return values[i] if i < len(values) else None

    ns = types.SimpleNamespace
    for level in ("dbg", "info", "notice", "warn", "err", "crit"):
        setattr(ksr, level, rec(level, None))
    ksr.force_rport = rec("force_rport", True)  # type: ignore[attr-defined]
    ksr.route = rec("route", 1)  # type: ignore[attr-defined]
    ksr.is_ACK = lambda: msg.method == "ACK"  # type: ignore[attr-defined]
    ksr.pv = ns(get=msg.pv, seti=rec("pv_seti"), sets=rec("pv_sets"))  # type: ignore[attr-defined]
    ksr.hdr = ns(get=hdr_get, get_idx=hdr_get_idx, remove=rec("hdr_remove"),  # type: ignore[attr-defined]
                 append=rec("hdr_append"), append_to_reply=rec("append_to_reply"))
    ksr.sl = ns(sl_send_reply=rec("sl_send_reply"), sl_reply_error=rec("sl_reply_error"))  # type: ignore[attr-defined]
    ksr.maxfwd = ns(process_maxfwd=rec(  # type: ignore[attr-defined]
        "process_maxfwd", lambda _: -1 if msg.max_forwards_exhausted else 1))
    ksr.sanity = ns(sanity_check=rec(  # type: ignore[attr-defined]
        "sanity_check", lambda *_: 1 if msg.sane else -1))
    ksr.siputils = ns(has_totag=lambda: 1 if msg.to_tag else -1)  # type: ignore[attr-defined]
    ksr.pike = ns(pike_check_req=lambda: -1 if msg.flood else 1)  # type: ignore[attr-defined]
    ksr.dispatcher = ns(ds_is_from_lists=lambda: -1,  # type: ignore[attr-defined]
                        ds_select_routes=rec("ds_select_routes", -1))
    ksr.tm = ns(t_check_trans=rec("t_check_trans", lambda: msg.transaction),  # type: ignore[attr-defined]
                t_relay=rec("t_relay"), t_reply=rec("t_reply"), t_on_reply=rec("t_on_reply"),
                t_on_failure=rec("t_on_failure"), t_set_fr=rec("t_set_fr"))
    ksr.tmx = ns(t_precheck_trans=lambda: -1)  # type: ignore[attr-defined]
    ksr.tcpops = ns(tcp_set_connection_lifetime=rec("tcp_set_connection_lifetime"))  # type: ignore[attr-defined]
    ksr.nathelper = ns(add_contact_alias=rec("add_contact_alias"),  # type: ignore[attr-defined]
                       handle_ruri_alias=rec("handle_ruri_alias"))
    ksr.rr = ns(loose_route=rec("loose_route", -1), is_direction=lambda _: 1,  # type: ignore[attr-defined]
                record_route_params=rec("record_route_params"))

    def redis_cmd(*args: Any) -> int:
        msg.calls.append(("redis_cmd", *args))
        return 1 if msg.redis_up else -1

    ksr.ndb_redis = ns(redis_cmd=redis_cmd, redis_cmd_p1=redis_cmd,  # type: ignore[attr-defined]
                       redis_cmd_p2=redis_cmd, redis_cmd_p3=redis_cmd)
    ksr.htable = ns(  # type: ignore[attr-defined]
        sht_get=lambda t, k: msg.htable.get((t, k)),
        sht_inc=lambda t, k: msg.htable.__setitem__((t, k), msg.htable.get((t, k), 0) + 1),
        sht_seti=lambda t, k, v: msg.htable.__setitem__((t, k), v),
        sht_sets=lambda t, k, v: msg.htable.__setitem__((t, k), v),
        sht_setxi=lambda t, k, v, e: msg.htable.__setitem__((t, k), v),
        sht_rm=lambda t, k: msg.htable.pop((t, k), None),
    )
