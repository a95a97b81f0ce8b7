"""Admission of an initial INVITE in Kamailio: the request's facts read once, one store
lookup, the core's decision carried out (challenge, refusal, or relay with the settled
caller identity)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import KSR

from trunkedge.core import counters, digest
from trunkedge.core.admission import (
    Admit,
    CallFacts,
    Challenge,
    Decision,
    Refuse,
    caller_ids_for,
    decide,
)
from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.identity import IdentityFacts, IdentityRefused, is_anonymous, settle
from trunkedge.core.names import is_username
from trunkedge.core.pops import POP_NAMES, PopPlan
from trunkedge.core.reasons import Drop, Reason
from trunkedge.core.target import Target, parse_target
from trunkedge.core.views import AccountView, Lookup
from trunkedge.kamailio.ksr_io import NdbTransport, SharedBreaker, ban_here, count, leased, pv
from trunkedge.kamailio.relay import Relay
from trunkedge.kamailio.replies import refuse
from trunkedge.settings import Settings
from trunkedge.store.reads import Store
from trunkedge.store.watcher import leased_version

POPS = frozenset(POP_NAMES)
MAX_CREDENTIALS = 3  # Proxy-Authorization headers looked at (one per proxy's realm)


@dataclass(frozen=True, slots=True)
class InitialRequest:
    """What an initial INVITE says that its admission needs, read from Kamailio once."""

    host: str
    method: str
    ruri: str
    from_uri: str
    call: CallFacts


def read_request(realm: str) -> InitialRequest:
    values = []
    for i in range(MAX_CREDENTIALS):
        value = KSR.hdr.get_idx("Proxy-Authorization", i)
        if value is None:
            break
        values.append(value)
    from_uri = pv("$fu")
    return InitialRequest(
        host=pv("$rd"), method=pv("$rm"), ruri=pv("$ru"), from_uri=from_uri,
        call=CallFacts(source_ip=pv("$si"), ruri_user=pv("$rU"), from_user=pv("$fU"),
                       credentials=digest.credentials_for_realm(values, realm),
                       anonymous=is_anonymous(from_uri)),
    )


def read_identity(request: InitialRequest, account: str | None) -> IdentityFacts:
    """What an admitted INVITE says about who calls (read only once it is admitted)."""
    return IdentityFacts(request.from_uri, KSR.hdr.get("P-Preferred-Identity"),
                         KSR.hdr.get("Privacy"), account)


class Admission:
    def __init__(self, settings: Settings, secret: str, relay: Relay) -> None:
        self.settings = settings
        self.realm = settings.realm
        self.relay = relay
        self.store = Store(settings.redis, NdbTransport(), settings.security.breaker_ms,
                           SharedBreaker())
        self.nonces = digest.Nonces(secret, settings.realm, settings.auth.nonce_expire)
        self.opaque = self.nonces.opaque()
        r = settings.routing
        self.plan = PopPlan(settings.default_pop, r.region_order, frozenset(settings.pops))
        self.retry_after = f"Retry-After: {settings.retry_after}\r\n"

    def admit(self) -> None:
        """An initial INVITE: admission by the policy core, then relay to the POP."""
        request = read_request(self.realm)
        target = parse_target(request.host, self.realm, POPS)
        if target is None:
            refuse(Refuse(403, "Forbidden", Reason.FOREIGN_HOST), "")
            return
        try:
            decided = self.decide(request, target)
        except StoreUnavailable as e:
            KSR.warn(f"trunkedge: store unavailable, answering 503: {e}\n")
            refuse(Refuse(503, "Service Unavailable", Reason.STORE_UNAVAILABLE), target.domain,
                   self.retry_after)
            return
        if decided is not None:
            self.carry_out(request, target, *decided)

    def decide(self, request: InitialRequest,
               target: Target) -> tuple[Decision, Lookup, tuple[str, ...]] | None:
        """Look the call up (one round trip at most) and decide; None: the source is
        banned (dropped). A failed authentication is counted towards a ban."""
        now = time.time()
        creds = request.call.credentials
        state = self.nonces.check(creds.nonce, now) if creds else digest.NonceState.INVALID
        claim = digest.replay_claim(creds, state, self.nonces, now) if creds else None
        source = request.call.source_ip
        lookup = self.store.lookup(
            target.domain, creds.username if creds and is_username(creds.username) else "",
            source, claim, leased_version(leased(), time.monotonic()))
        if lookup.banned_for:
            ban_here(source, lookup.banned_for)
            count(counters.dropped(Drop.BANNED))
            return None
        algorithms = (lookup.domain.algorithms if lookup.domain else ()) or \
            self.settings.auth.algorithms

        def verify(account: AccountView | None) -> digest.Verdict:
            assert creds is not None
            return digest.verify(creds, method=request.method, request_uri=request.ruri,
                                 ha1s=account.ha1 if account else None, allowed=algorithms,
                                 opaque=self.opaque, nonce_state=state)

        decision = decide(target, request.call, lookup, verify, realm=self.realm,
                          plan=self.plan)
        if isinstance(decision, Refuse) and decision.reason.counts_towards_ban:
            self.auth_failed(source)
        return decision, lookup, algorithms

    def carry_out(self, request: InitialRequest, target: Target, decision: Decision,
                  lookup: Lookup, algorithms: tuple[str, ...]) -> None:
        if isinstance(decision, Admit):
            identity = settle(read_identity(request, decision.username),
                              caller_ids_for(decision, lookup), self.realm)
            if isinstance(identity, IdentityRefused):
                refuse(Refuse(403, "Caller ID Not Allowed", identity.reason), target.domain)
            else:
                self.relay.call(decision, identity)
        elif isinstance(decision, Challenge):
            self.challenge(algorithms, decision.stale)
        else:
            refuse(decision, target.domain)

    def challenge(self, algorithms: tuple[str, ...], stale: bool) -> None:
        """407 with one Proxy-Authenticate per algorithm, one fresh nonce (RFC 8760 §2)."""
        nonce = self.nonces.issue(time.time())
        for header in digest.challenge_headers(self.realm, algorithms, nonce, self.opaque,
                                               stale):
            KSR.hdr.append_to_reply(header + "\r\n")
        KSR.sl.sl_send_reply(407, "Proxy Authentication Required")

    def auth_failed(self, source: str) -> None:
        """Count a failed authentication; past the limit the address is banned everywhere."""
        sec = self.settings.security
        if self.store.record_failure(source, sec.ban_failures, sec.ban_window_s, sec.ban_time_s):
            ban_here(source, sec.ban_time_s)
            count(counters.BANNED)
            KSR.notice(f"trunkedge: banned {source} for {sec.ban_time_s}s after "
                       f"{sec.ban_failures} failed authentications\n")
