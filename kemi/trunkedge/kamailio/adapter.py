"""The KEMI adapter: the object app_python3 calls for every SIP message.

Its request route reads like Kamailio's own kamailio-basic-kemi-python.py: a short list of
named steps, each of which may end the request. The decisions are the pure core's
(core.*); the steps carry them out with Kamailio's modules. Only trunkedge.kamailio
talks to `KSR`.
"""

from __future__ import annotations

import gc
import os
import re
import socket

import KSR

from trunkedge.core.admission import Refuse
from trunkedge.core.dialog_seal import DialogSeal
from trunkedge.core.limits import Held
from trunkedge.core.memo import MAX_KEY_CHARS, Bounded
from trunkedge.core.methods import ALLOW, LOCAL_ANSWERS, OutOfDialog, classify
from trunkedge.core.names import NetworkSet
from trunkedge.core.reasons import Drop, Reason
from trunkedge.core.scanners import is_scanner
from trunkedge.core.strict import Problem
from trunkedge.core.strict import address as strict_address
from trunkedge.core.strict import date as strict_date
from trunkedge.core.strict import request_line as strict_request_line
from trunkedge.core.transports import CONNECTED, UNSUPPORTED_SCHEME, refuses_sips
from trunkedge.kamailio import meter, symbols, tls
from trunkedge.kamailio.calls import MEMO_LIMIT, Admission
from trunkedge.kamailio.ksr_io import (
    HtableBoard,
    end_here,
    guarded,
    is_banned_here,
    items_in,
    known_source,
    pv,
)
from trunkedge.kamailio.records import RECORDS, DialogEnd
from trunkedge.kamailio.relay import Relay
from trunkedge.kamailio.replies import log_refusal, refuse, reply
from trunkedge.settings import SECRET_ENV, SETTINGS_ENV, Settings, load_settings
from trunkedge.store.cdr_stream import publisher_for
from trunkedge.store.watcher import Watcher

WATCH_S = 1.0  # each call of the watcher's timer watches this long
GC_YOUNG_THRESHOLD = 20_000  # allocations between collections of the youngest generation
MAX_FORWARDS = 10  # Max-Forwards added when missing (RFC 3261 §16.6)
# sanity: the default checks but digest credentials (the edge parses those itself)
SANITY_CHECKS, SANITY_URI_CHECKS = 3047 - 2048, 7


class Edge:
    """app_python3's handler object: entry points, then the request route's steps."""

    def __init__(self, settings: Settings, secret: str) -> None:
        self.settings = settings
        self.security = settings.security
        self.flood_exempt = NetworkSet(settings.security.flood_exempt)
        self.exempt_sources: Bounded[str, bool] = Bounded(MEMO_LIMIT)  # source -> exempt
        self.scanner_agents: Bounded[str, bool] = Bounded(MEMO_LIMIT)  # User-Agent -> scanner
        self.relay = Relay(settings, DialogSeal(secret))
        self.calls = Admission(settings, secret, self.relay, edge_id())
        self.watcher: Watcher | None = None  # made in the timer process that runs it
        address = settings.metrics.address
        self.metrics_port = str(address[1]) if address else ""
        meter.Prometheus.on = address is not None
        RECORDS.configure(settings)
        self.pop_of_gateway = {gw.uri: pop for pop, gws in settings.pops.items() for gw in gws}
        self.idle_s = settings.tls.idle_timeout_s if tls.enabled(settings) else 0

    # -- app_python3 entry points ---------------------------------------------------------
    def child_init(self, rank: int) -> int:
        return 0

    def ksr_request_route(self, msg: object) -> int:
        if not guarded(self.request, "request route"):
            KSR.sl.sl_send_reply(500, "Server Internal Error")
        return 1

    def ksr_sl_reply(self, event: str) -> int:
        """A reply that matches no transaction of the edge: dropped, never forwarded
        statelessly (tm's on_sl_reply)."""
        return 0

    def ksr_onreply_route(self, msg: object) -> int:
        """Replies on their way to the customer lose the trusted realm's internal headers
        (core.border.removed_from_replies, a native route block)."""
        KSR.route(symbols.ROUTE_STRIP_REPLY)
        return 1

    def ksr_private_reply_route(self, msg: object) -> int:
        """... and, in a private dialog, any identity."""
        KSR.route(symbols.ROUTE_STRIP_PRIVATE_REPLY)
        return 1

    def ksr_failure_route(self, msg: object) -> int:
        guarded(self.relay.failure, "failure route")
        return 1

    def ksr_watch(self, *_: object) -> int:
        """rtimer's callback, in a process of its own: keep the workers' lease fresh."""
        if self.watcher is None:
            log = self.log_notice
            self.watcher = Watcher(self.settings.redis, HtableBoard(), log,
                                   channel_lease_s=self.settings.limits.channel_lease_s,
                                   publisher=publisher_for(self.settings, log))
            for uri, pop in self.pop_of_gateway.items():  # dispatcher starts them active
                meter.gateway_state(pop, uri, True)
        watcher = self.watcher
        guarded(lambda: watcher.run_for(WATCH_S), "watcher")
        guarded(self.measure, "gauges")
        return 1

    @staticmethod
    def log_notice(line: str) -> None:
        KSR.notice(f"trunkedge: {line}\n")

    @staticmethod
    def measure() -> None:
        """The gauges the watcher's process keeps: calls in progress, active bans."""
        meter.gauges(meter.statistic("active_dialogs"), len(items_in(symbols.HT_BANS)))

    def ksr_dispatcher_event(self, msg: object, event: str) -> int:
        """dispatcher's event_callback: app_python3 passes the message and the event name
        ("dispatcher:dst-down", "dispatcher:dst-up")."""
        state, uri = event.split("-")[-1], pv("$ru")
        KSR.notice(f"trunkedge: gateway {state} {uri}\n")
        pop = self.pop_of_gateway.get(uri)
        if pop is not None:
            meter.gateway_state(pop, uri, state == "up")
        return 1

    def ksr_xhttp_event(self, msg: object, event: str = "") -> int:
        """xhttp's event_callback: GET /metrics on the metrics socket (xhttp_prom), and
        404 for anything else."""
        if pv("$Rp") == self.metrics_port and KSR.xhttp_prom.check_uri() > 0:
            meter.requests_at_scrape()
            KSR.xhttp_prom.dispatch()
        else:
            # a one-word phrase: Kamailio re-parses every stateless reply it sends, and an
            # HTTP status line with a two-word phrase logs a parse ERROR
            KSR.xhttp.xhttp_reply(404, "NotFound", "text/plain", "not found\n")
        return 1

    def ksr_dialog_event(self, msg: object, facts: str) -> int:
        """A dialog ended (BYE from either side, timeout) or failed (CANCEL, a final
        error): the event_route[dialog:end|failed] blocks call it (python_exec) with the
        event's name and the call's facts (records.DialogEnd), one per line."""
        event, _, rest = facts.partition("\n")
        if event in symbols.DIALOG_ENDED:
            guarded(self.dialog_ended, "dialog event", event == symbols.DIALOG_END, rest)
        return 1

    @staticmethod
    def dialog_ended(answered: bool, facts: str) -> None:
        """Its channels are free, its record is written."""
        end = DialogEnd.parse(facts)
        if end is None:
            KSR.err(f"trunkedge: dialog event without its facts: {facts!r}\n")
            return
        if end.held != symbols.UNSET:
            held = Held.decode(end.held)
            if held is not None:
                end_here(held)
        RECORDS.ended(answered, end)

    # -- the request route ----------------------------------------------------------------
    def request(self) -> None:
        """Every request: the steps in order; the first that deals with it ends it."""
        method, proto = pv("$rm"), pv("$pr")  # each read once per request
        meter.request(method)
        if self.metrics_port and proto in CONNECTED and pv("$Rp") == self.metrics_port:
            return  # SIP on the metrics socket (TCP): not ours to answer
        if self.route_reqinit() or self.route_transport(proto) or self.route_withindlg() \
                or self.route_strict() or self.route_banned():
            return
        kind = classify(method)
        if kind is OutOfDialog.CANCEL:
            self.route_cancel()
        elif kind is OutOfDialog.ACK:
            self.route_ack()
        elif self.route_retransmission():
            return
        elif kind is OutOfDialog.ADMIT:
            self.calls.admit()
        else:
            self.route_local(kind)

    def route_reqinit(self) -> bool:
        """Scanners and unattributed floods dropped; NAT (rport, RFC 3581); Max-Forwards;
        sanity."""
        agent = KSR.hdr.get("User-Agent") or ""
        if (self.scanner_agents.of(agent, self.names_scanner) if len(agent) <= MAX_KEY_CHARS
                else self.names_scanner(agent)):
            meter.dropped(Drop.SCANNER)
            return True  # no answer at all: scanners learn nothing
        if self.floods(pv("$si")):
            meter.dropped(Drop.FLOOD)
            return True
        KSR.force_rport()
        if KSR.maxfwd.process_maxfwd(MAX_FORWARDS) < 0:
            reply(483, "Too Many Hops")
            return True
        if KSR.sanity.sanity_check(SANITY_CHECKS, SANITY_URI_CHECKS) < 0:
            log_refusal(Refuse(400, "Bad Request", Reason.MALFORMED), "", answered="by sanity")
            return True  # sanity answered it (400, 420, 505, ...) or dropped it
        return False

    def names_scanner(self, user_agent: str) -> bool:
        return is_scanner(user_agent, self.security.scanners)

    def floods(self, source: str) -> bool:
        """The flood guard (pike) for traffic not yet attributed to a customer: neither
        exempt, nor a gateway, nor admitted lately (a customer's limits govern that)."""
        return (not self.exempt_sources.of(source, self.flood_exempt.__contains__)
                and not known_source(source)
                and KSR.dispatcher.ds_is_from_lists() < 0 and KSR.pike.pike_check_req() < 0)

    def route_transport(self, proto: str) -> bool:
        """With TLS, a TCP or TLS connection that carries SIP gets tls.idle_timeout_s (the
        handshake timeout until then); a sips: Request-URI outside a dialog must have come
        over TLS, else 416 (RFC 3261 §26.2.2, RFC 5630)."""
        if self.idle_s and proto in CONNECTED:
            KSR.tcpops.tcp_set_connection_lifetime(self.idle_s)
        if not refuses_sips(pv("$ru"), proto) or KSR.siputils.has_totag() > 0:
            return False
        if not KSR.is_ACK():
            refuse(Refuse(*UNSUPPORTED_SCHEME, Reason.SIPS_WITHOUT_TLS), "")
        return True

    def route_withindlg(self) -> bool:
        """A request with a To-tag belongs to a dialog (RFC 3261 §12.2)."""
        if KSR.siputils.has_totag() < 0:
            return False
        self.relay.in_dialog()
        return True

    def route_strict(self) -> bool:
        """Strict syntax (RFC 4475) of what the core parser lets through: 400/505."""
        problem = self.strict_problem()
        if problem is None:
            return False
        if not KSR.is_ACK():
            refuse(Refuse(problem[0], problem[1], Reason.MALFORMED), "")
        return True

    @staticmethod
    def strict_problem() -> Problem | None:
        return (strict_request_line(pv("$(mb{line.at,0})"))
                or strict_address(KSR.hdr.get("From")) or strict_address(KSR.hdr.get("To"))
                or strict_address(KSR.hdr.get("Contact")) or strict_date(KSR.hdr.get("Date")))

    @staticmethod
    def route_banned() -> bool:
        """An address banned for brute force (on any edge): dropped before any policy."""
        if not is_banned_here(pv("$si")):
            return False
        meter.dropped(Drop.BANNED)
        return True

    @staticmethod
    def route_cancel() -> None:
        """CANCEL follows its INVITE's transaction, else 481 (RFC 3261 §9.2)."""
        if KSR.tm.t_check_trans() > 0:
            KSR.tm.t_relay()
        else:
            reply(481, "Call/Transaction Does Not Exist")

    @staticmethod
    def route_ack() -> None:
        """An ACK without To-tag belongs to a transaction (a non-2xx final), or nothing."""
        if KSR.tm.t_check_trans() > 0:
            KSR.tm.t_relay()

    @staticmethod
    def route_retransmission() -> bool:
        """A retransmission: absorbed by the transaction it belongs to."""
        if KSR.tmx.t_precheck_trans() > 0:  # being processed by another worker
            KSR.tm.t_check_trans()
            return True
        return KSR.tm.t_check_trans() == 0

    @staticmethod
    def route_local(kind: OutOfDialog) -> None:
        """The edge's own answer: keepalive, no dialog, method not allowed."""
        answer = LOCAL_ANSWERS[kind]
        headers = f"Allow: {ALLOW}\r\n" if answer.allow else ""
        if answer.reason is not None:
            refuse(Refuse(answer.code, answer.phrase, answer.reason), "", headers)
        else:
            reply(answer.code, answer.phrase, headers)


def edge_id() -> str:
    """This edge's name in the shared channel sets: host and a random part, new at every
    start (a restarted edge's old calls expire with their leases)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:32] or "edge"
    return f"{host}-{os.urandom(4).hex()}"


def mod_init() -> Edge:
    """app_python3's entry point: runs once in the main process, before the fork."""
    settings = load_settings(os.environ[SETTINGS_ENV])
    secret = os.environ.get(SECRET_ENV) or settings.auth.secret
    if not secret:
        raise RuntimeError(f"no secret: set auth.secret or {SECRET_ENV}")
    tls.guard_fork(settings)  # OpenSSL 3's per-thread state out of the forks (kamailio#3791)
    edge = Edge(settings, secret)
    settle_memory()
    return edge


def settle_memory() -> None:
    """Before the fork: what exists now (modules, settings, caches' shells) lives as long
    as Kamailio, so the cyclic collector never scans it again (gc.freeze: nor do its
    scans touch, and so copy, the pages every worker shares with the main process); and
    the youngest generation is collected less often (a request makes short-lived objects
    only, freed by reference counting)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
