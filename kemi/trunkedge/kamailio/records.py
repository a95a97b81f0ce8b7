"""Call detail records in Kamailio: what an admitted call is kept with its dialog (dialog
module variables), completed by the dialog's events, and appended to the local spool
(store.cdr_spool), from which the watcher publishes them to Redis. A refused initial
INVITE gets its record at once. The record's fields are core.cdr's."""

from __future__ import annotations

import time

import KSR

from trunkedge.core import cdr
from trunkedge.core.admission import Admit, Refuse
from trunkedge.core.identity import IdentityEdits
from trunkedge.kamailio import symbols
from trunkedge.kamailio.ksr_io import pv
from trunkedge.settings import Settings
from trunkedge.store.cdr_spool import Spool, encode

CALL_VAR = "$dlg_var(te_cdr)"  # the call as opened: CALL_PARTS, one per line
CALL_PARTS = 4  # the caller's From tag, the first POP and gateway, core.cdr.opened's head
POP_VAR, GATEWAY_VAR = "$dlg_var(te_pop)", "$dlg_var(te_gw)"  # after a failover
FAILOVERS_VAR = "$dlg_var(te_fo)"
STATUS_VAR = "$dlg_var(te_code)"  # the final status, when not a 2xx
BY_EDGE_VAR = "$dlg_var(te_by_edge)"  # the edge answered it itself (every gateway failed)


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

    def write(self, line: bytes) -> None:
        if self.spool is None:
            self.spool = Spool(self.directory, self.edge)
        self.spool.append(line)

    def opened(self, admit: Admit, identity: IdentityEdits, domain: str, pop: str,
               gateway: str) -> None:
        """An admitted call is relayed: what its record will say, kept with its dialog."""
        if not self.enabled:
            return
        head = cdr.opened(
            call_id=pv("$ci"), start_ms=now_ms(), domain=domain, acl=admit.acl,
            account=admit.username, source_ip=pv("$si"), source_port=pv("$sp"),
            transport=pv("$pr"), asserted=identity.asserted, private=identity.private,
            edge=self.edge)
        # newlines part them: none can be in a tag, a POP's name, a URI or in JSON text
        KSR.pv.sets(CALL_VAR, f"{pv('$ft')}\n{pop}\n{gateway}\n{head}")

    def failed_over(self, pop: str, gateway: str) -> None:
        if self.enabled:
            KSR.pv.sets(POP_VAR, pop)
            KSR.pv.sets(GATEWAY_VAR, gateway)
            KSR.pv.sets(FAILOVERS_VAR, str(int(pv(FAILOVERS_VAR) or 0) + 1))

    def final(self, status: int, by_edge: bool = False) -> None:
        """A final answer other than 2xx (from the far end, or the edge's own)."""
        if self.enabled:
            KSR.pv.sets(STATUS_VAR, str(status))
            if by_edge:
                KSR.pv.sets(BY_EDGE_VAR, "1")

    def ended(self, ended: bool) -> None:
        """The dialog ended (answered) or failed: its record goes to the spool."""
        parts = pv(CALL_VAR).split("\n", CALL_PARTS - 1)
        if not self.enabled or len(parts) != CALL_PARTS:
            return
        caller_tag, pop, gateway, head = parts
        answer = pv(symbols.ANSWERED_VAR)  # "seconds.microseconds", set by kamailio.cfg
        status = 200 if ended else int(pv(STATUS_VAR) or 500)
        hangup = cdr.hangup_of(ended, pv("$rm"), pv("$ft"), caller_tag, status,
                               pv(BY_EDGE_VAR) == "1")
        self.write(cdr.closed(
            head, answer_ms=seconds_to_ms(answer), end_ms=now_ms(), status=status,
            hangup=hangup, pop=pv(POP_VAR) or pop, gateway=pv(GATEWAY_VAR) or gateway,
            failovers=int(pv(FAILOVERS_VAR) or 0)).encode())

    def refused(self, refusal: Refuse, domain: str) -> None:
        """A refused initial INVITE's record."""
        if self.enabled and pv("$rm") == "INVITE":
            self.write(encode(cdr.refused(
                call_id=pv("$ci"), at_ms=now_ms(), status=refusal.code, reason=refusal.label,
                domain=domain, source_ip=pv("$si"), source_port=pv("$sp"),
                transport=pv("$pr"), edge=self.edge)))


RECORDS = Records()
