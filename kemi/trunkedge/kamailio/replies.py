"""The edge's own answers, and the log line and counter of every refusal."""

from __future__ import annotations

import KSR

from trunkedge.core.admission import Refuse
from trunkedge.kamailio import meter
from trunkedge.kamailio.ksr_io import pv
from trunkedge.kamailio.records import RECORDS


def reply(code: int, phrase: str, headers: str = "") -> None:
    """A stateless reply (sl), with extra header lines (each ending in CRLF)."""
    if headers:
        KSR.hdr.append_to_reply(headers)
    KSR.sl.sl_send_reply(code, phrase)


def refuse(refusal: Refuse, domain: str, headers: str = "") -> None:
    log_refusal(refusal, domain)
    RECORDS.refused(refusal, domain)
    reply(refusal.code, refusal.phrase, headers)


def log_refusal(refusal: Refuse, domain: str, answered: str = "") -> None:
    """Count the refusal and log why, at NOTICE (never a password, HA1 or nonce).
    `answered` says who answered when the edge did not ("by sanity")."""
    meter.refused(refusal.reason)
    what = answered or str(refusal.code)
    KSR.notice(
        f"trunkedge: refused {what} reason={refusal.label} method={pv('$rm')}"
        f" domain={domain or '-'} host={pv('$rd')} src={pv('$si')}:{pv('$sp')} proto={pv('$pr')}"
        f" from={pv('$fU')} callid={pv('$ci')}\n"
    )
