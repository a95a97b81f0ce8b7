"""Call detail records in Kamailio: what an admitted call is kept with its dialog (dialog
module variables), completed by the dialog's events, and appended to the local spool
(store.cdr_spool), from which the watcher publishes them to Redis. A refused initial
INVITE gets its record at once. The record's fields are core.cdr's."""

from __future__ import annotations

import time
from typing import NamedTuple

import KSR

from trunkedge.core import cdr
from trunkedge.core.admission import Admit, Refuse
from trunkedge.core.identity import IdentityEdits
from trunkedge.core.memo import Bounded
from trunkedge.kamailio import symbols
from trunkedge.kamailio.ksr_io import pv
from trunkedge.settings import Settings
from trunkedge.store.cdr_spool import Spool, encode


class DialogEnd(NamedTuple):
    """What Kamailio tells of a call that ended (answered) or failed: the dialog's
    variables and the message that ended it, in symbols.DIALOG_END_FACTS's order (each
    symbols.UNSET when not set)."""

    held: str
    answered: str  # "seconds.microseconds", set natively when the call was answered
    status: str
    by_edge: str
    method: str
    from_tag: str
    call: str  # symbols.CALL_VAR: the caller's From tag, a newline, the record's head

    @classmethod
    def parse(cls, text: str) -> DialogEnd | None:
        """None when the text does not hold every fact (never for what Kamailio wrote)."""
        values = text.split("\n", FACTS - 1)
        return cls._make(values) if len(values) == FACTS else None


FACTS = len(symbols.DIALOG_END_FACTS)
CUSTOMERS = 4096  # customers' record fields kept per worker (core.cdr.customer)


def now_ms() -> int:
    return int(time.time() * 1000)


def seconds_to_ms(text: str) -> int | None:
    """Kamailio's $TV(Sn) ("1796126457.352242") in ms; None when empty or not a time."""
    try:
        return int(float(text) * 1000) if text else None
    except ValueError:
        return None


class Records:
    """The edge's records (one per process: configured before the fork, see RECORDS)."""

    def __init__(self) -> None:
        self.enabled = False
        self.edge = self.directory = ""
        self.spool: Spool | None = None  # opened in the worker that first writes
        self.customers: Bounded[tuple[str | bool | None, ...], str] = Bounded(CUSTOMERS)
        self.routes: Bounded[tuple[str, str], str] = Bounded(CUSTOMERS)  # (POP, gateway)

    def configure(self, settings: Settings) -> None:
        self.enabled = settings.cdr.enabled
        self.edge = settings.cdr.edge
        self.directory = settings.cdr.spool_dir
        self.spool = None

    def write(self, line: bytes) -> None:
        if self.spool is None:
            self.spool = Spool(self.directory, self.edge)
        self.spool.append(line)

    def opened(self, call_id: str, source_ip: str, admit: Admit, identity: IdentityEdits,
               domain: str, pop: str, gateway: str) -> None:
        """An admitted call is relayed: what its record will say, kept with its dialog."""
        if not self.enabled:
            return
        customer = self.customers.of(
            (domain, admit.acl, admit.username, identity.asserted, identity.private),
            lambda _: cdr.customer(domain=domain, acl=admit.acl, account=admit.username,
                                   asserted=identity.asserted, private=identity.private,
                                   edge=self.edge))
        route = self.routes.of((pop, gateway), lambda _: cdr.route_fields(pop, gateway, 0))
        head = cdr.opened(call_id, now_ms(), source_ip, pv("$sp"), pv("$pr"), customer)
        # a newline parts them: none can be in a tag or in JSON text
        KSR.pv.sets(symbols.CALL_VAR, f"{pv('$ft')}\n{head}{route}")

    def failed_over(self, pop: str, gateway: str) -> None:
        """The call went on to another gateway: the record names the one that takes it."""
        if not self.enabled:
            return
        caller_tag, _, head = pv(symbols.CALL_VAR).partition("\n")
        if head:
            failovers = int(pv(symbols.FAILOVERS_VAR) or 0) + 1
            KSR.pv.sets(symbols.FAILOVERS_VAR, str(failovers))
            KSR.pv.sets(symbols.CALL_VAR,
                        f"{caller_tag}\n{cdr.routed(head, pop, gateway, failovers)}")

    def final(self, status: int, by_edge: bool = False) -> None:
        """A final answer other than 2xx (from the far end, or the edge's own)."""
        if self.enabled:
            KSR.pv.sets(symbols.STATUS_VAR, str(status))
            if by_edge:
                KSR.pv.sets(symbols.BY_EDGE_VAR, "1")

    def ended(self, answered: bool, end: DialogEnd) -> None:
        """The dialog ended (answered) or failed: its record goes to the spool."""
        caller_tag, known, head = end.call.partition("\n")
        if not self.enabled or not known:
            return
        unset = symbols.UNSET
        status = 200 if answered else int(end.status) if end.status != unset else 500
        hangup = cdr.hangup_of(answered, end.method, end.from_tag, caller_tag, status,
                               end.by_edge == "1")
        answer_ms = seconds_to_ms(end.answered) if end.answered != unset else None
        self.write(cdr.closed(head, answer_ms, now_ms(), status, hangup).encode())

    def refused(self, refusal: Refuse, domain: str) -> None:
        """A refused initial INVITE's record."""
        if self.enabled and pv("$rm") == "INVITE":
            self.write(encode(cdr.refused(
                call_id=pv("$ci"), at_ms=now_ms(), status=refusal.code, reason=refusal.label,
                domain=domain, source_ip=pv("$si"), source_port=pv("$sp"),
                transport=pv("$pr"), edge=self.edge)))


RECORDS = Records()
