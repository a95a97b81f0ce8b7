"""Relaying with Kamailio's tm and dispatcher: an admitted call to its POPs in order
(failover in the failure route), and requests inside a dialog the edge sealed."""

from __future__ import annotations

import KSR

from trunkedge.core.admission import Admit, Refuse
from trunkedge.core.border import ASSERTED, removed_initially
from trunkedge.core.dialog_seal import DialogSeal
from trunkedge.core.identity import IdentityEdits
from trunkedge.core.pops import POP_OF_SET, dispatcher_rules, gateway_unreachable, should_fail_over
from trunkedge.core.reasons import Reason
from trunkedge.core.transports import CONNECTED, pop_leg_uri
from trunkedge.kamailio import meter, symbols
from trunkedge.kamailio.ksr_io import pv, remove_headers
from trunkedge.kamailio.records import RECORDS
from trunkedge.kamailio.replies import log_refusal, refuse, reply
from trunkedge.settings import Settings


class Relay:
    def __init__(self, settings: Settings, seal: DialogSeal) -> None:
        self.seal = seal
        self.gateways = settings.pops
        self.ring_ms = settings.routing.ring_timeout_s * 1000
        self.branch_ms = settings.routing.branch_timeout_ms
        self.retry_after = f"Retry-After: {settings.retry_after}\r\n"
        self.rules: dict[tuple[str, ...], str] = {}  # POP order -> ds_select_routes rules
        self.log_info = settings.kamailio.log_level >= 2  # INFO: one line per admission
        internal = settings.routing.strip_reply_headers
        self.removed_initially = frozenset(removed_initially(internal))  # ROUTE_BORDER_INITIAL

    def select(self, admit: Admit, identity: IdentityEdits,
               call_id: str) -> tuple[str, str] | None:
        """Prepare the relay to the first live gateway of the first POP (failover walks the
        rest): the (POP, gateway) chosen, or None when no gateway is up (answered 503)."""
        KSR.route(symbols.ROUTE_BORDER_INITIAL)  # the POP never sees its route, digest, ...
        remove_headers(n for n in identity.remove if n not in self.removed_initially)
        for line in identity.add:
            KSR.hdr.append(line + "\r\n")
        if identity.private:
            KSR.pv.seti(symbols.PRIVATE_AVP, 1)
        alias_contact()
        if KSR.dispatcher.ds_select_routes(self.rules_for(admit.pops), "d") < 0:
            refuse(Refuse(503, "Service Unavailable", Reason.NO_GATEWAY_UP), "",
                   self.retry_after)
            return None
        KSR.rr.record_route_params(self.seal.route_params(call_id, identity.private))
        pop, gateway = current_pop(), pv("$du")
        meter.admitted(admit.acl, pop, gateway)
        if self.log_info:
            log_admission(admit, identity, pop, call_id)
        return pop, gateway

    def rules_for(self, pops: tuple[str, ...]) -> str:
        """dispatcher's rules for a POP order: a handful per worker, computed once each."""
        rules = self.rules.get(pops)
        if rules is None:
            rules = self.rules[pops] = dispatcher_rules(pops, self.gateways)
        return rules

    def forward(self) -> bool:
        """Relay to the gateway selected ($du), on its transport: a sips: Request-URI goes
        as sip: on a leg that is not TLS (core.transports)."""
        uri = pop_leg_uri(pv("$ru"), pv("$du"))
        if uri is not None:
            KSR.pv.sets("$ru", uri)
        KSR.tm.t_on_failure(symbols.CB_FAILURE)
        private = KSR.pv.get(symbols.PRIVATE_AVP) == 1
        KSR.tm.t_on_reply(symbols.CB_PRIVATE_REPLY if private else symbols.CB_REPLY)
        KSR.tm.t_set_fr(self.ring_ms, self.branch_ms)
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()
            return False
        return True

    def failure(self) -> None:
        """A gateway failed: next gateway (same POP, then the next POP) or one final 503."""
        if KSR.tm.t_is_canceled() > 0:
            RECORDS.final(487)
            return
        code = KSR.tm.t_get_status_code()
        if not should_fail_over(code):
            RECORDS.final(code)
            return  # the far end's answer (404, 486, 603, ...) goes back as it is
        pop, gw = current_pop(), pv("$xavp(_dsdst_=>uri)")
        if gateway_unreachable(code, KSR.tm.t_branch_replied() > 0):
            KSR.dispatcher.ds_mark_dst_state("ip")  # skipped until its OPTIONS are answered
        if KSR.dispatcher.ds_next_dst() > 0:
            nxt = current_pop()
            meter.failed_over(pop, gw, nxt, pv("$du"))
            RECORDS.failed_over(nxt, pv("$du"))
            KSR.notice(f"trunkedge: failover code={code} from={pop}:{gw} to={nxt}:{pv('$du')}"
                       f" callid={pv('$ci')}\n")
            self.forward()
            return
        KSR.notice(f"trunkedge: all gateways failed code={code} last={pop}:{gw}"
                   f" callid={pv('$ci')}\n")
        meter.failed_over(pop, gw, None, "")
        meter.refused(Reason.ALL_GATEWAYS_FAILED)
        RECORDS.final(503, by_edge=True)
        KSR.hdr.append_to_reply(self.retry_after)
        KSR.tm.t_reply(503, "Service Unavailable")

    def in_dialog(self) -> None:
        """Requests inside a dialog follow the Record-Route set the edge sealed."""
        if KSR.rr.loose_route() > 0:
            self.sealed_route()
            return
        if KSR.is_ACK():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return  # ACK of a reply the edge sent itself: absorbed
        reply(481, "Call/Transaction Does Not Exist")

    def sealed_route(self) -> None:
        """Relay along the Route set only with the edge's seal of this Call-ID; a request
        from the customer loses what may not cross the border (core.border), one towards
        a private customer the asserted identity."""
        private = self.seal.check(KSR.hdr.get("Route"), pv("$ci"))
        if private is None:
            log_refusal(Refuse(403, "Forbidden", Reason.FORGED_ROUTE), "")
            if not KSR.is_ACK():
                reply(403, "Forbidden")
            return
        if KSR.rr.is_direction("downstream") > 0:  # from the customer: never trusted
            KSR.route(symbols.ROUTE_BORDER_DIALOG)
            alias_contact()
            KSR.tm.t_on_reply(symbols.CB_PRIVATE_REPLY if private else symbols.CB_REPLY)
        else:  # towards the customer: over its connection (alias_contact), if it has one
            KSR.nathelper.handle_ruri_alias()
            if private:  # outside the trusted realm
                KSR.hdr.remove(ASSERTED)
        KSR.tm.t_set_fr(self.ring_ms, 5000)
        KSR.tm.t_relay()


def current_pop() -> str:
    """The POP of the destination dispatcher selected last (head of its XAVP list)."""
    group = KSR.pv.get("$xavp(_dsdst_=>grp)")
    return POP_OF_SET.get(int(group), "?") if group is not None else "?"


def alias_contact() -> None:
    """A customer on TCP or TLS is reached back over its connection, not at its Contact's
    address: nathelper adds that connection's address to the Contact (`;alias=`) when the
    Contact names another; handle_ruri_alias() sends the far end's requests there."""
    if pv("$pr") in CONNECTED:
        KSR.nathelper.add_contact_alias()


def log_admission(admit: Admit, identity: IdentityEdits, pop: str, call_id: str) -> None:
    KSR.info(
        f"trunkedge: admitted pops={','.join(admit.pops)} first={pop} gw={pv('$du')}"
        f" acl={admit.acl} user={admit.username or '-'} cli={identity.asserted}"
        f"{' private' if identity.private else ''} src={pv('$si')} proto={pv('$pr')}"
        f" ruri={pv('$ru')} callid={call_id}\n"
    )
