"""Admission of an initial INVITE in Kamailio: the request's facts read once, one store
lookup, the core's decision carried out (challenge, refusal, or relay with the settled
caller identity), and the customer's limits held until the call ends."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import KSR

from trunkedge.core import digest
from trunkedge.core.admission import (
    Admit,
    CallFacts,
    Challenge,
    Decision,
    LimitAnswers,
    Refuse,
    after_commit,
    caller_ids_for,
    decide,
)
from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.identity import (
    IdentityEdits,
    IdentityFacts,
    IdentityRefused,
    is_anonymous,
    settle,
)
from trunkedge.core.limits import NO_LIMITS, Commit, Held, channel_scopes, scopes_of
from trunkedge.core.memo import MAX_KEY_CHARS, Bounded
from trunkedge.core.names import is_username
from trunkedge.core.pops import POP_NAMES, PopPlan
from trunkedge.core.reasons import Drop, Reason
from trunkedge.core.target import Target, parse_target
from trunkedge.core.views import AccountView, DomainView, Lookup
from trunkedge.kamailio import meter, symbols
from trunkedge.kamailio.ksr_io import (
    NdbTransport,
    SharedBreaker,
    ban_here,
    end_here,
    hold_here,
    leased,
    pv,
    remember_source,
    stale_since,
)
from trunkedge.kamailio.records import RECORDS
from trunkedge.kamailio.relay import Relay
from trunkedge.kamailio.replies import refuse
from trunkedge.settings import Settings
from trunkedge.store.reads import LimitWords, Store
from trunkedge.store.watcher import leased_version

POPS = frozenset(POP_NAMES)
CPS_RETRY_AFTER = "Retry-After: 1\r\n"  # a calls-per-second limit frees up within a second


def call_hash(call_id: str) -> str:
    """A call's short, token-safe name in the channel sets (Call-IDs may hold anything)."""
    return hashlib.blake2s(call_id.encode(), digest_size=8).hexdigest()
MAX_CREDENTIALS = 3  # Proxy-Authorization headers looked at (one per proxy's realm)


MEMO_LIMIT = 4096  # decisions remembered per worker (core.memo.Bounded)


@dataclass(frozen=True, slots=True)
class InitialRequest:
    """What an initial INVITE says that its admission needs, read from Kamailio once."""

    host: str
    method: str
    call_id: str
    ruri: str
    from_uri: str
    preferred: str | None  # P-Preferred-Identity
    privacy: str | None
    call: CallFacts

    def memo_key(self) -> tuple[str, ...] | None:
        """Everything a decision without credentials depends on but the store's views
        (None: with credentials, every request is new)."""
        if self.call.credentials is not None:
            return None
        key = (self.host, self.call.source_ip, self.call.ruri_user, self.from_uri,
               self.preferred or "\n", self.privacy or "\n")  # "\n": absent
        return key if sum(map(len, key)) <= MAX_KEY_CHARS else None


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The limits of a customer's calls as worked out from the store's views `domain` and
    `account` (the cached objects themselves), in the words the store sends for them."""

    domain: DomainView | None
    account: AccountView | None
    words: LimitWords
    channels: tuple[str, ...]  # the scopes whose calls in progress are limited


Settled = tuple[Decision, IdentityEdits | IdentityRefused | None]
"""A decision and, when it admits, the caller identity it settled."""


@dataclass(frozen=True, slots=True)
class Memo:
    """A decision worked out from the store's views `domain` (the cached object itself:
    when the cache fetches the domain again, the memo no longer applies)."""

    domain: DomainView | None
    settled: Settled


def read_request(realm: str) -> InitialRequest:
    values = []
    for i in range(MAX_CREDENTIALS):
        value = KSR.hdr.get_idx("Proxy-Authorization", i)
        if value is None:
            break
        values.append(value)
    from_uri = pv("$fu")
    return InitialRequest(
        host=pv("$rd"), method=pv("$rm"), call_id=pv("$ci"), ruri=pv("$ru"), from_uri=from_uri,
        preferred=KSR.hdr.get("P-Preferred-Identity"), privacy=KSR.hdr.get("Privacy"),
        call=CallFacts(source_ip=pv("$si"), ruri_user=pv("$rU"), from_user=pv("$fU"),
                       credentials=digest.credentials_for_realm(values, realm),
                       anonymous=is_anonymous(from_uri)),
    )


def identity_facts(request: InitialRequest, account: str | None) -> IdentityFacts:
    """What an admitted INVITE says about who calls."""
    return IdentityFacts(request.from_uri, request.preferred, request.privacy, account)


class Admission:
    def __init__(self, settings: Settings, secret: str, relay: Relay, edge_id: str) -> None:
        self.settings = settings
        self.realm = settings.realm
        self.relay = relay
        self.edge_id = edge_id
        ndb = NdbTransport(symbols.redis_servers(len(settings.redis.sentinels)),
                           settings.redis.timeout_ms / 1000)
        self.store = Store(settings.redis, ndb, settings.security.breaker_ms,
                           SharedBreaker(), on_lookup=meter.cache_lookup)
        self.nonces = digest.Nonces(secret, settings.realm, settings.auth.nonce_expire)
        self.opaque = self.nonces.opaque()
        r, lim = settings.routing, settings.limits
        self.plan = PopPlan(settings.default_pop, r.region_order, frozenset(settings.pops))
        self.retry_after = f"Retry-After: {settings.retry_after}\r\n"
        self.answers = LimitAnswers((lim.over_cps_code, lim.over_cps_phrase),
                                    (lim.over_channels_code, lim.over_channels_phrase))
        self.lease_ms = lim.channel_lease_s * 1000
        self.memo: Bounded[tuple[str, ...], Memo] = Bounded(MEMO_LIMIT)
        self.limits: Bounded[tuple[str, str], CallLimits] = Bounded(MEMO_LIMIT)
        self.tracks_every_call = settings.cdr.enabled or settings.metrics.address is not None

    def admit(self) -> None:
        """An initial INVITE: admission by the policy core, then relay to the POP."""
        request = read_request(self.realm)
        target = parse_target(request.host, self.realm, POPS)
        if target is None:
            refuse(Refuse(403, "Forbidden", Reason.FOREIGN_HOST), "")
            return
        try:
            self.admit_to(request, target)
        except StoreUnavailable as e:
            KSR.warn(f"trunkedge: store unavailable, answering 503: {e}\n")
            refuse(Refuse(503, "Service Unavailable", Reason.STORE_UNAVAILABLE), target.domain,
                   self.retry_after)

    def admit_to(self, request: InitialRequest, target: Target) -> None:
        """Look up (a round trip at most), decide, settle the identity, commit what every
        edge shares (a round trip, only for a digest claim or limits), relay."""
        now = time.time()
        creds = request.call.credentials
        state = self.nonces.check(creds.nonce, now) if creds else digest.NonceState.INVALID
        lookup = self.look_up(request, target)
        if lookup is None:
            return
        algorithms = (lookup.domain.algorithms if lookup.domain else ()) or \
            self.settings.auth.algorithms
        decision, identity = self.settled(request, target, lookup, state, algorithms)
        if isinstance(decision, Challenge):
            self.challenge(algorithms, decision.stale)
            return
        if isinstance(decision, Refuse):
            self.refuse(decision, request, target)
            return
        assert identity is not None
        if isinstance(identity, IdentityRefused):
            refuse(Refuse(403, "Caller ID Not Allowed", identity.reason), target.domain)
            return
        claim = digest.replay_claim(creds, state, self.nonces, now) if creds else None
        held = self.commit(request, target, decision, lookup, claim)
        if held is not False:
            self.relay_held(request, decision, identity, held, target.domain)

    def settled(self, request: InitialRequest, target: Target, lookup: Lookup,
                state: digest.NonceState, algorithms: tuple[str, ...]) -> Settled:
        """The core's decision and, when it admits, the caller identity: for a request
        without credentials remembered per worker (a PBX's calls repeat its facts), as
        long as the store's view of the domain is the one it was worked out from."""
        key = request.memo_key()
        if key is not None:
            memo = self.memo.get(key)
            if memo is not None and memo.domain is lookup.domain:
                return memo.settled
        decision = decide(target, request.call, lookup, self.verifier(request, state, algorithms),
                          realm=self.realm, plan=self.plan)
        identity = settle(identity_facts(request, decision.username),
                          caller_ids_for(decision, lookup), self.realm) \
            if isinstance(decision, Admit) else None
        worked_out = decision, identity
        if key is not None:
            self.memo.put(key, Memo(lookup.domain, worked_out))
        return worked_out

    def look_up(self, request: InitialRequest, target: Target) -> Lookup | None:
        """The call's domain and account; None: the source is banned (dropped)."""
        creds = request.call.credentials
        source = request.call.source_ip
        lookup = self.store.lookup(
            target.domain, creds.username if creds and is_username(creds.username) else "",
            source, leased_version(leased(), time.monotonic()), stale_since)
        if lookup.banned_for:
            ban_here(source, lookup.banned_for)
            meter.dropped(Drop.BANNED)
            return None
        return lookup

    def verifier(self, request: InitialRequest, state: digest.NonceState,
                 algorithms: tuple[str, ...]) -> Callable[[AccountView | None], digest.Verdict]:
        creds = request.call.credentials

        def verify(account: AccountView | None) -> digest.Verdict:
            assert creds is not None
            return digest.verify(creds, method=request.method, request_uri=request.ruri,
                                 ha1s=account.ha1 if account else None, allowed=algorithms,
                                 opaque=self.opaque, nonce_state=state)
        return verify

    def commit(self, request: InitialRequest, target: Target, admit: Admit, lookup: Lookup,
               claim: tuple[str, int] | None) -> Held | None | Literal[False]:
        """Claim the digest's nonce and the call's limits in one round trip (none when
        there is neither). Returns the channels held (None: none), or False when the call
        was refused or dropped here."""
        source = request.call.source_ip
        limits = self.limits_of(target.domain, admit, lookup)
        remember_source(source)  # attributed to a customer: its limits govern it
        if claim is None and not limits.words.keys:
            return None
        member = f"{self.edge_id}:{call_hash(request.call_id)}"
        outcome, banned_for = self.store.commit(source, claim, limits.words, member,
                                                self.lease_ms)
        if outcome is Commit.BANNED:
            ban_here(source, banned_for)
            meter.dropped(Drop.BANNED)
            return False
        final = after_commit(admit, outcome, self.answers)
        if isinstance(final, Refuse):
            self.refuse(final, request, target)
            return False
        return Held(member, limits.channels) if limits.channels else None

    def limits_of(self, domain: str, admit: Admit, lookup: Lookup) -> CallLimits:
        """The limits an admitted call counts against (core.limits.scopes_of) and the
        store's words for them, kept per worker while the store's views of the domain and
        the account are the ones they were worked out from."""
        account = lookup.account if admit.username else None
        key = (domain, admit.username or "")
        known = self.limits.get(key)
        if known is not None and known.domain is lookup.domain and known.account is account:
            return known
        scopes = scopes_of(domain, lookup.domain.limits if lookup.domain else NO_LIMITS,
                           admit.username, account.limits if account else NO_LIMITS)
        return self.limits.put(key, CallLimits(lookup.domain, account,
                                               self.store.limit_words(scopes),
                                               channel_scopes(scopes)))

    def relay_held(self, request: InitialRequest, admit: Admit, identity: IdentityEdits,
                   held: Held | None, domain: str) -> None:
        """Relay. The dialog module tracks the call until it ends, for its record, the
        channels it holds (released at once if it could not be relayed) and the gauge of
        calls in progress."""
        chosen = self.relay.select(admit, identity, request.call_id)
        if chosen is not None and (held is not None or self.tracks_every_call):
            KSR.dialog.dlg_manage()
            RECORDS.opened(request.call_id, request.call.source_ip, admit, identity, domain,
                           *chosen)
        if held is not None:
            if chosen is None:
                end_here(held)
                return
            KSR.pv.sets(symbols.HELD_VAR, held.encode())
            hold_here(held)
        if chosen is not None and not self.relay.forward() and held is not None:
            end_here(held)

    def refuse(self, refusal: Refuse, request: InitialRequest, target: Target) -> None:
        """Answer a refusal; a failed authentication counts towards a ban."""
        if refusal.reason.counts_towards_ban:
            meter.auth_failed()
            self.auth_failed(request.call.source_ip)
        headers = CPS_RETRY_AFTER if refusal.reason is Reason.OVER_CPS else ""
        refuse(refusal, target.domain, headers)

    def challenge(self, algorithms: tuple[str, ...], stale: bool) -> None:
        """407 with one Proxy-Authenticate per algorithm, one fresh nonce (RFC 8760 §2)."""
        nonce = self.nonces.issue(time.time())
        for header in digest.challenge_headers(self.realm, algorithms, nonce, self.opaque,
                                               stale):
            KSR.hdr.append_to_reply(header + "\r\n")
        KSR.sl.sl_send_reply(407, "Proxy Authentication Required")
        meter.challenged()

    def auth_failed(self, source: str) -> None:
        """Count a failed authentication; past the limit the address is banned everywhere."""
        sec = self.settings.security
        if self.store.record_failure(source, sec.ban_failures, sec.ban_window_s, sec.ban_time_s):
            ban_here(source, sec.ban_time_s)
            meter.banned()
            KSR.notice(f"trunkedge: banned {source} for {sec.ban_time_s}s after "
                       f"{sec.ban_failures} failed authentications\n")
