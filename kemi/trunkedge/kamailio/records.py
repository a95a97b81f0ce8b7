"""Call detail records in Kamailio: what an admitted call is kept with its dialog (dialog
module variables), completed by the dialog's events, and appended to the local spool
(store.cdr_spool), from which the watcher publishes them to Redis. A refused initial
INVITE gets its record at once. The record's fields are core.cdr's."""

from __future__ import annotations

import time
from dataclasses import dataclass

import KSR

from trunkedge.core import cdr
from trunkedge.core.admission import Admit, Refuse
from trunkedge.core.identity import IdentityEdits
from trunkedge.kamailio import symbols
from trunkedge.kamailio.ksr_io import pv
from trunkedge.settings import Settings
from trunkedge.store.cdr_spool import Spool, encode

CALL_PARTS = 4  # symbols.CALL_VAR's lines: the caller's From tag, the first POP and
# gateway, core.cdr.opened's head


@dataclass(frozen=True, slots=True)
class DialogEnd:
    """What Kamailio tells of a call that ended (answered) or failed: the dialog's
    variables and the message that ended it, in symbols.DIALOG_END_FACTS's order ("" for
    what is not set)."""

    held: str
    answered: str  # "seconds.microseconds", set natively when the call was answered
    status: str
    by_edge: str
    pop: str
    gateway: str
    failovers: str
    method: str
    from_tag: str
    call: str

    @classmethod
    def parse(cls, text: str) -> DialogEnd | None:
        """None when the text does not hold every fact (never for what Kamailio wrote)."""
        values = text.split("\n", FACTS - 1)
        if len(values) != FACTS:
            return None
        return cls(*["" if v == symbols.UNSET else v for v in values])


FACTS = len(symbols.DIALOG_END_FACTS)


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
        head = cdr.opened(
            call_id=call_id, start_ms=now_ms(), domain=domain, acl=admit.acl,
            account=admit.username, source_ip=source_ip, source_port=pv("$sp"),
            transport=pv("$pr"), asserted=identity.asserted, private=identity.private,
            edge=self.edge)
        # newlines part them: none can be in a tag, a POP's name, a URI or in JSON text
        KSR.pv.sets(symbols.CALL_VAR, f"{pv('$ft')}\n{pop}\n{gateway}\n{head}")

    def failed_over(self, pop: str, gateway: str) -> None:
        if self.enabled:
            KSR.pv.sets(symbols.POP_VAR, pop)
            KSR.pv.sets(symbols.GATEWAY_VAR, gateway)
            KSR.pv.sets(symbols.FAILOVERS_VAR, str(int(pv(symbols.FAILOVERS_VAR) or 0) + 1))

    def final(self, status: int, by_edge: bool = False) -> None:
        """A final answer other than 2xx (from the far end, or the edge's own)."""
        if self.enabled:
            KSR.pv.sets(symbols.STATUS_VAR, str(status))
            if by_edge:
                KSR.pv.sets(symbols.BY_EDGE_VAR, "1")

    def ended(self, answered: bool, end: DialogEnd) -> None:
        """The dialog ended (answered) or failed: its record goes to the spool."""
        parts = end.call.split("\n", CALL_PARTS - 1)
        if not self.enabled or len(parts) != CALL_PARTS:
            return
        caller_tag, pop, gateway, head = parts
        status = 200 if answered else int(end.status or 500)
        hangup = cdr.hangup_of(answered, end.method, end.from_tag, caller_tag, status,
                               end.by_edge == "1")
        self.write(cdr.closed(
            head, answer_ms=seconds_to_ms(end.answered), end_ms=now_ms(), status=status,
            hangup=hangup, pop=end.pop or pop, gateway=end.gateway or gateway,
            failovers=int(end.failovers or 0)).encode())

    def refused(self, refusal: Refuse, domain: str) -> None:
        """A refused initial INVITE's record."""
        if self.enabled and pv("$rm") == "INVITE":
            self.write(encode(cdr.refused(
                call_id=pv("$ci"), at_ms=now_ms(), status=refusal.code, reason=refusal.label,
                domain=domain, source_ip=pv("$si"), source_port=pv("$sp"),
                transport=pv("$pr"), edge=self.edge)))


RECORDS = Records()
