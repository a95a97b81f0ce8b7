"""The KEMI adapter: the only module that talks to Kamailio (`KSR`).

It gathers a request's facts, asks the pure core (methods, target, policy) what to do,
and carries the decision out with Kamailio's modules (sl, tm, rr, auth).
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import KSR

from trunkedge import digest, strict
from trunkedge.dialog_token import DialogSeal
from trunkedge.errors import StoreUnavailable
from trunkedge.guard import is_scanner
from trunkedge.identity import REMOVED, IdentityEdits, IdentityFacts, IdentityRefused, settle
from trunkedge.methods import ALLOW, OutOfDialog, classify
from trunkedge.model import AccountView
from trunkedge.names import NetworkSet, is_username
from trunkedge.policy import (
    Admit,
    CallFacts,
    Challenge,
    Credentials,
    DigestCheck,
    DigestResult,
    Refuse,
    caller_ids_for,
    decide,
)
from trunkedge.pops import (
    POP_NAMES,
    POP_OF_SET,
    PopPlan,
    dispatcher_rules,
    gateway_unreachable,
    should_fail_over,
)
from trunkedge.settings import SECRET_ENV, SETTINGS_ENV, Settings, load_settings
from trunkedge.store import Script, Store
from trunkedge.target import parse_target
from trunkedge.watcher import Watcher, leased_version

METRICS = "te_metrics"  # htable of counters, dumped by `trunkedge status`
BANS = "te_bans"  # htable: this edge's copy of the banned addresses (expiring items)
STATE = "te_state"  # htable: state shared by the workers (breaker, the watcher's lease)
LEASE = "watch"  # te_state item: the version the watcher vouches for, and until when
WATCH_S = 1.0  # each call of the watcher's timer watches this long
AUTH_FAILURES = ("wrong-credentials", "auth-user-not-from-user")
# sanity: the default checks but digest credentials (the edge parses those itself)
SANITY_CHECKS, SANITY_URI_CHECKS = 3047 - 2048, 7
FAILURE_ROUTE = "ksr_failure_route"
REPLY_ROUTE = "ksr_onreply_route"
PRIVATE_REPLY_ROUTE = "ksr_private_reply_route"
PRIVATE_AVP = "$avp(te_private)"  # the transaction's caller asked for privacy


def _guarded(route: Callable[[], None], where: str) -> bool:
    """Run a route; an unexpected exception is logged (never a silent, hung worker)."""
    try:
        route()
    except Exception:
        trace = traceback.format_exc().replace("\n", " | ")
        KSR.err(f"trunkedge: internal error in {where}: {trace}\n")
        return False
    return True


def _pv(name: str) -> str:
    value = KSR.pv.get(name)
    return "" if value is None else str(value)


class NdbTransport:
    """Redis through Kamailio's ndb_redis (a C client: nearly free per call). Arguments
    that are not plain tokens travel as %s parameters (at most three per command)."""

    SERVER = REPLY = "te"
    SAFE = re.compile(r"[A-Za-z0-9_.:+@=,-]+")

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        tokens, params = [], []
        for arg in (script.sha, str(len(keys)), *keys, *args):
            if self.SAFE.fullmatch(arg):
                tokens.append(arg)
            else:
                tokens.append("%s")
                params.append(arg)
        command = "EVALSHA " + " ".join(tokens)
        for attempt in range(2):
            if self._command(command, params) >= 0:
                return KSR.pv.get(f"$redis({self.REPLY}=>value)")
            error = str(KSR.pv.get(f"$redis({self.REPLY}=>info)") or "no answer")
            if "NOSCRIPT" not in error or attempt:
                raise StoreUnavailable(f"redis: {error}")
            if self._command("SCRIPT LOAD %s", [script.source]) < 0:
                raise StoreUnavailable("redis: cannot load a script")
        raise AssertionError("unreachable")

    def _command(self, command: str, params: list[str]) -> int:
        n = KSR.ndb_redis
        if not params:
            return n.redis_cmd(self.SERVER, command, self.REPLY)
        if len(params) == 1:
            return n.redis_cmd_p1(self.SERVER, command, params[0], self.REPLY)
        if len(params) == 2:
            return n.redis_cmd_p2(self.SERVER, command, params[0], params[1], self.REPLY)
        if len(params) == 3:
            return n.redis_cmd_p3(self.SERVER, command, params[0], params[1], params[2],
                                  self.REPLY)
        raise ValueError(f"too many non-token arguments for ndb_redis: {len(params)}")


class SharedBreaker:
    """The store's circuit breaker state in shared memory: every worker sees it."""

    def get(self) -> int:
        value = KSR.htable.sht_get(STATE, "redis_open_until")
        return int(value) if value else 0

    def set(self, open_until_ms: int) -> None:
        KSR.htable.sht_seti(STATE, "redis_open_until", open_until_ms)


class HtableBoard:
    """The watcher's board: its lease in te_state, the bans it hears of in te_bans."""

    def lease(self, value: str) -> None:
        KSR.htable.sht_sets(STATE, LEASE, value)

    def withdraw(self) -> None:
        KSR.htable.sht_rm(STATE, LEASE)

    def ban(self, address: str, seconds: int) -> None:
        KSR.htable.sht_setxi(BANS, address, 1, seconds)


class Edge:
    """The object app_python3 calls for every SIP message."""

    def __init__(self, settings: Settings, secret: str) -> None:
        self.settings = settings
        self.realm = settings.realm
        self.seal = DialogSeal(secret)
        self.pops = frozenset(POP_NAMES)
        self.security = settings.security
        self.store = Store(settings.redis, NdbTransport(), settings.security.breaker_ms,
                           SharedBreaker())
        self.flood_exempt = NetworkSet(settings.security.flood_exempt)
        self.nonces = digest.Nonces(secret, settings.realm, settings.auth.nonce_expire)
        self.opaque = self.nonces.opaque()
        r = settings.routing
        self.plan = PopPlan(settings.default_pop, r.region_order, frozenset(settings.pops))
        self.ring_ms = r.ring_timeout_s * 1000
        self.branch_ms = r.branch_timeout_ms
        self.retry_after = f"Retry-After: {settings.retry_after}\r\n"
        self.strip_headers = r.strip_reply_headers
        self.rules: dict[tuple[str, ...], str] = {}  # POP order -> ds_select_routes rules
        self.log_info = settings.kamailio.log_level >= 2  # INFO: one line per admission
        self.watcher: Watcher | None = None  # made in the timer process that runs it

    # -- app_python3 entry points ---------------------------------------------------------
    def child_init(self, rank: int) -> int:
        return 0

    def ksr_request_route(self, msg: object) -> int:
        if not _guarded(self.request, "request route"):
            KSR.sl.sl_send_reply(500, "Server Internal Error")
        return 1

    def ksr_sl_reply(self, event: str) -> int:
        """A reply that matches no transaction of the edge: dropped, never forwarded
        statelessly (tm's on_sl_reply)."""
        return 0

    def ksr_onreply_route(self, msg: object) -> int:
        """Replies on their way to the customer lose the trusted realm's internal headers."""
        for name in self.strip_headers:
            KSR.hdr.remove(name)
        return 1

    def ksr_private_reply_route(self, msg: object) -> int:
        """... and, in a private dialog, any identity."""
        KSR.hdr.remove("P-Asserted-Identity")
        return self.ksr_onreply_route(msg)

    def ksr_failure_route(self, msg: object) -> int:
        _guarded(self.failure, "failure route")
        return 1

    def ksr_watch(self, *_: object) -> int:
        """rtimer's callback, in a process of its own: keep the workers' lease fresh."""
        if self.watcher is None:
            self.watcher = Watcher(self.settings.redis, HtableBoard(),
                                   lambda line: KSR.notice(f"trunkedge: {line}\n"))
        _guarded(lambda: self.watcher.run_for(WATCH_S) if self.watcher else None, "watcher")
        return 1

    def ksr_dispatcher_event(self, event: str) -> int:
        KSR.notice(f"trunkedge: gateway {event.split('-')[-1]} {_pv('$ru')}\n")
        return 1

    # -- routing --------------------------------------------------------------------------
    def request(self) -> None:
        source = _pv("$si")
        if is_scanner(KSR.hdr.get("User-Agent"), self.security.scanners):
            self.count("dropped:scanner")
            return  # no answer at all: scanners learn nothing
        if (source not in self.flood_exempt and KSR.dispatcher.ds_is_from_lists() < 0
                and KSR.pike.pike_check_req() < 0):
            self.count("dropped:flood")
            return
        KSR.force_rport()  # answer where the request came from (NAT), RFC 3581
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return
        if KSR.sanity.sanity_check(SANITY_CHECKS, SANITY_URI_CHECKS) < 0:
            self.log_refusal(Refuse(400, "Bad Request", "malformed"), "")
            return  # sanity answered it (400, 420, 505, ...) or dropped it
        if KSR.siputils.has_totag() > 0:
            self.in_dialog()
            return
        problem = (strict.request_line(_pv("$(mb{line.at,0})"))
                   or strict.address(KSR.hdr.get("From")) or strict.address(KSR.hdr.get("To"))
                   or strict.address(KSR.hdr.get("Contact")) or strict.date(KSR.hdr.get("Date")))
        if problem:
            if not KSR.is_ACK():
                self.refuse(Refuse(problem[0], problem[1], "malformed"), "")
            return
        if KSR.htable.sht_get(BANS, source) is not None:
            self.count("dropped:banned")
            return
        kind = classify(_pv("$rm"))
        if kind is OutOfDialog.CANCEL:
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            else:
                KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
            return
        if kind is OutOfDialog.ACK:
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return
        if KSR.tmx.t_precheck_trans() > 0:  # retransmission being processed by another worker
            KSR.tm.t_check_trans()
            return
        if KSR.tm.t_check_trans() == 0:  # retransmission of a known transaction: absorbed
            return
        if kind is OutOfDialog.KEEPALIVE:
            self.reply(200, "OK", f"Allow: {ALLOW}\r\n")
        elif kind is OutOfDialog.NO_DIALOG:
            self.reply(481, "Call/Transaction Does Not Exist")
        elif kind is OutOfDialog.NOT_ALLOWED:
            self.refuse(Refuse(405, "Method Not Allowed", "method-not-allowed"), "",
                        f"Allow: {ALLOW}\r\n")
        else:
            self.admit()

    def in_dialog(self) -> None:
        """Requests inside a dialog follow the Record-Route set the edge signed."""
        if KSR.rr.loose_route() > 0:
            private = self.seal.check(KSR.hdr.get("Route"), _pv("$ci"))
            if private is None:
                self.log_refusal(Refuse(403, "Forbidden", "forged-route"), "")
                if not KSR.is_ACK():
                    self.reply(403, "Forbidden")
                return
            if KSR.rr.is_direction("downstream") > 0:  # from the customer: never trusted
                for name in REMOVED:
                    KSR.hdr.remove(name)
                KSR.tm.t_on_reply(PRIVATE_REPLY_ROUTE if private else REPLY_ROUTE)
            elif private:  # towards the customer: outside the trusted realm
                KSR.hdr.remove("P-Asserted-Identity")
            KSR.tm.t_set_fr(self.ring_ms, 5000)
            KSR.tm.t_relay()
            return
        if KSR.is_ACK():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return  # ACK of a reply the edge sent itself: absorbed
        self.reply(481, "Call/Transaction Does Not Exist")

    def admit(self) -> None:
        """An initial INVITE: admission by the policy core, then relay to the POP."""
        target = parse_target(_pv("$rd"), self.realm, self.pops)
        source = _pv("$si")
        creds = self.credentials()
        facts = CallFacts(
            source_ip=source,
            ruri_user=_pv("$rU"),
            from_user=_pv("$fU"),
            credentials=Credentials(creds.username, creds.realm) if creds else None,
        )
        domain = target.domain if target else ""
        if target is None:
            self.refuse(Refuse(403, "Forbidden", "foreign-host"), domain)
            return
        now = time.time()
        try:
            lookup = self.store.lookup(
                target.domain, self.lookup_name(creds), source, self.claim(creds, now),
                leased_version(KSR.htable.sht_get(STATE, LEASE), time.monotonic()))
            if lookup.banned_for:
                KSR.htable.sht_setxi(BANS, source, 1, lookup.banned_for)
                self.count("dropped:banned")
                return
            algorithms = (lookup.domain.algorithms if lookup.domain else ()) or \
                self.settings.auth.algorithms

            def verify(account: AccountView | None) -> DigestCheck:
                assert creds is not None
                return self.verify_digest(creds, account, algorithms, lookup.nonce_claimed, now)

            decision = decide(target, facts, lookup, verify, realm=self.realm, plan=self.plan)
            if isinstance(decision, Refuse) and decision.reason.startswith(AUTH_FAILURES):
                self.auth_failed(source)
        except StoreUnavailable as e:
            KSR.warn(f"trunkedge: store unavailable, answering 503: {e}\n")
            self.refuse(Refuse(503, "Service Unavailable", "store-unavailable"), domain,
                        self.retry_after)
            return
        if isinstance(decision, Admit):
            identity = settle(
                IdentityFacts(_pv("$fu"), KSR.hdr.get("P-Preferred-Identity"),
                              KSR.hdr.get("Privacy")),
                caller_ids_for(decision, lookup), self.realm,
            )
            if isinstance(identity, IdentityRefused):
                self.refuse(Refuse(403, "Caller ID Not Allowed", identity.reason), domain)
            else:
                self.relay(decision, identity)
        elif isinstance(decision, Challenge):
            self.challenge(algorithms, decision.stale)
        else:
            self.refuse(decision, domain)

    def credentials(self) -> digest.Credentials | None:
        """The request's Digest credentials for our realm (other realms are not ours)."""
        for i in range(3):
            value = KSR.hdr.get_idx("Proxy-Authorization", i)
            if value is None:
                return None
            creds = digest.parse_credentials(value)
            if creds is not None and creds.realm.lower() == self.realm:
                return creds
        return None

    @staticmethod
    def lookup_name(creds: digest.Credentials | None) -> str:
        """The username to look up: only one that could be an account's."""
        return creds.username if creds and is_username(creds.username) else ""

    def claim(self, creds: digest.Credentials | None, now: float) -> tuple[str, int] | None:
        """The (nonce, nc) to claim in the same round trip as the lookup: only for a nonce
        of ours still valid, claimed until it expires (a replay fails on every edge)."""
        if creds is None or not creds.nc or not digest.NONCE_COUNT.fullmatch(creds.nc) or \
                self.nonces.check(creds.nonce, now) is not digest.NonceState.VALID:
            return None
        return f"{creds.nonce}:{creds.nc.lower()}", self.nonces.remaining(creds.nonce, now)

    def verify_digest(self, creds: digest.Credentials, account: AccountView | None,
                      algorithms: tuple[str, ...], claimed: bool | None,
                      now: float) -> DigestCheck:
        """The digest seam: RFC 7616/8760 in Python; the (nonce, nc) was claimed in Redis
        by the lookup, so a replay to any edge of the cluster fails."""
        verdict = digest.verify(creds, method=_pv("$rm"), request_uri=_pv("$ru"),
                                ha1s=account.ha1 if account else None, allowed=algorithms,
                                nonces=self.nonces, now=now)
        if verdict.outcome is digest.Outcome.STALE:
            return DigestCheck(DigestResult.STALE, verdict.detail)
        if verdict.outcome is digest.Outcome.WRONG:
            return DigestCheck(DigestResult.WRONG, verdict.detail)
        if claimed is not True:
            return DigestCheck(DigestResult.WRONG, "replay")
        return DigestCheck(DigestResult.OK, "ok")

    def challenge(self, algorithms: tuple[str, ...], stale: bool) -> None:
        nonce = self.nonces.issue(time.time())
        for header in digest.challenge_headers(self.realm, algorithms, nonce, self.opaque,
                                               stale):
            KSR.hdr.append_to_reply(header + "\r\n")
        KSR.sl.sl_send_reply(407, "Proxy Authentication Required")

    def auth_failed(self, source: str) -> None:
        """Count a failed authentication; past the limit the address is banned everywhere."""
        sec = self.security
        if self.store.record_failure(source, sec.ban_failures, sec.ban_window_s, sec.ban_time_s):
            KSR.htable.sht_setxi(BANS, source, 1, sec.ban_time_s)
            self.count("banned")
            KSR.notice(f"trunkedge: banned {source} for {sec.ban_time_s}s after "
                       f"{sec.ban_failures} failed authentications\n")

    def relay(self, admit: Admit, identity: IdentityEdits) -> None:
        """Relay to the first live gateway of the first POP; failover walks the rest."""
        KSR.hdr.remove("Proxy-Authorization")  # the POP never sees the customer's digest
        for name in identity.remove:
            KSR.hdr.remove(name)
        for line in identity.add:
            KSR.hdr.append(line + "\r\n")
        if identity.private:
            KSR.pv.seti(PRIVATE_AVP, 1)
        rules = self.rules.get(admit.pops)
        if rules is None:  # a handful of orders per worker: computed once each
            rules = self.rules[admit.pops] = dispatcher_rules(admit.pops, self.settings.pops)
        if KSR.dispatcher.ds_select_routes(rules, "d") < 0:
            self.refuse(Refuse(503, "Service Unavailable", "no-gateway-up"), "",
                        self.retry_after)
            return
        KSR.rr.record_route_params(self.seal.route_params(_pv("$ci"), identity.private))
        pop = self.current_pop()
        self.count(f"admitted:{admit.acl}", f"sent:{pop}", f"sent:{pop}:{_pv('$du')}")
        if self.log_info:
            self.log_admission(admit, identity, pop)
        self.forward()

    def log_admission(self, admit: Admit, identity: IdentityEdits, pop: str) -> None:
        KSR.info(
            f"trunkedge: admitted pops={','.join(admit.pops)} first={pop} gw={_pv('$du')}"
            f" acl={admit.acl} user={admit.username or '-'} cli={identity.asserted}"
            f"{' private' if identity.private else ''} src={_pv('$si')}"
            f" ruri={_pv('$ru')} callid={_pv('$ci')}\n"
        )

    def forward(self) -> None:
        KSR.tm.t_on_failure(FAILURE_ROUTE)
        KSR.tm.t_on_reply(PRIVATE_REPLY_ROUTE if KSR.pv.get(PRIVATE_AVP) == 1 else REPLY_ROUTE)
        KSR.tm.t_set_fr(self.ring_ms, self.branch_ms)
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    def failure(self) -> None:
        """A gateway failed: next gateway (same POP, then the next POP) or one final 503."""
        if KSR.tm.t_is_canceled() > 0:
            return
        code = KSR.tm.t_get_status_code()
        if not should_fail_over(code):
            return  # the far end's answer (404, 486, 603, ...) goes back as it is
        pop, gw = self.current_pop(), _pv("$xavp(_dsdst_=>uri)")
        if gateway_unreachable(code, KSR.tm.t_branch_replied() > 0):
            KSR.dispatcher.ds_mark_dst_state("ip")  # skipped until its OPTIONS are answered again
        self.count(f"failover:{pop}", f"failover:{pop}:{gw}")
        if KSR.dispatcher.ds_next_dst() > 0:
            nxt = self.current_pop()
            self.count(f"sent:{nxt}", f"sent:{nxt}:{_pv('$du')}")
            KSR.notice(f"trunkedge: failover code={code} from={pop}:{gw} to={nxt}:{_pv('$du')}"
                       f" callid={_pv('$ci')}\n")
            self.forward()
            return
        KSR.notice(f"trunkedge: all gateways failed code={code} last={pop}:{gw}"
                   f" callid={_pv('$ci')}\n")
        self.count("refused:all-gateways-failed")
        KSR.hdr.append_to_reply(self.retry_after)
        KSR.tm.t_reply(503, "Service Unavailable")

    def current_pop(self) -> str:
        """The POP of the destination dispatcher selected last (head of its XAVP list)."""
        group = KSR.pv.get("$xavp(_dsdst_=>grp)")
        return POP_OF_SET.get(int(group), "?") if group is not None else "?"

    # -- helpers --------------------------------------------------------------------------
    def reply(self, code: int, phrase: str, headers: str = "") -> None:
        if headers:
            KSR.hdr.append_to_reply(headers)
        KSR.sl.sl_send_reply(code, phrase)

    def count(self, *names: str) -> None:
        for name in names:
            KSR.htable.sht_inc(METRICS, name)

    def refuse(self, refusal: Refuse, domain: str, headers: str = "") -> None:
        self.log_refusal(refusal, domain)
        self.reply(refusal.code, refusal.phrase, headers)

    def log_refusal(self, refusal: Refuse, domain: str) -> None:
        self.count(f"refused:{refusal.reason}")
        KSR.notice(
            f"trunkedge: refused {refusal.code} reason={refusal.reason} method={_pv('$rm')}"
            f" domain={domain or '-'} host={_pv('$rd')} src={_pv('$si')}:{_pv('$sp')}"
            f" from={_pv('$fU')} callid={_pv('$ci')}\n"
        )


def mod_init() -> Edge:
    """app_python3's entry point: runs once in the main process, before the fork."""
    settings = load_settings(os.environ[SETTINGS_ENV])
    secret = os.environ.get(SECRET_ENV) or settings.auth.secret
    if not secret:
        raise RuntimeError(f"no secret: set auth.secret or {SECRET_ENV}")
    return Edge(settings, secret)
