"""Call detail records: one per admitted call when it ends, one per refused initial
INVITE. Pure: the record's fields from the facts the adapter collects (docs/cdr.md).
Never a password, HA1 or nonce."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _quoted  # a JSON string, in C

FIELDS = ("kind", "call_id", "start_ms", "answer_ms", "end_ms", "duration_ms", "status",
          "hangup", "reason", "domain", "acl", "account", "source_ip", "source_port",
          "transport", "pop", "gateway", "failovers", "asserted", "private", "edge")
"""Every record has these fields, in this order (the CSV export's columns and the stream
entry's fields; a spool line may hold them in another order)."""


def customer(*, domain: str, acl: str, account: str | None, asserted: str, private: bool,
             edge: str) -> str:
    """The fields of an admitted call that are its customer's (the same for a customer's
    calls, so the adapter may keep them): opened()'s `customer`."""
    return (f'"domain":{_quoted(domain)},"acl":{_quoted(acl)},'
            f'"account":{_quoted(account or "")},"asserted":{_quoted(asserted)},'
            f'"private":"{1 if private else 0}","edge":{_quoted(edge)}')


def opened(call_id: str, start_ms: int, source_ip: str, source_port: str, transport: str,
           customer: str) -> str:
    """What is known of an admitted call when it is relayed, kept with its dialog until
    it ends: the record's JSON object so far, without its closing brace; then routed()
    and, at the end, closed() add the rest (no decoding and encoding again)."""
    return (f'{{"kind":"call","call_id":{_quoted(call_id)},"start_ms":"{start_ms}",'
            f'"source_ip":{_quoted(source_ip)},"source_port":{_quoted(source_port)},'
            f'"transport":{_quoted(transport)},{customer}')


ROUTED = ',"pop":'  # where routed()'s fields begin in a head


def routed(head: str, pop: str, gateway: str, failovers: int) -> str:
    """The head with the POP and gateway that have the call (replaced after a failover:
    the record names the ones that took it)."""
    if failovers:
        head = head[:head.rindex(ROUTED)]
    return head + route_fields(pop, gateway, failovers)


def route_fields(pop: str, gateway: str, failovers: int) -> str:
    """routed()'s fields (the same for every first try of a gateway: callers may keep them)."""
    return f'{ROUTED}{_quoted(pop)},"gateway":{_quoted(gateway)},"failovers":"{failovers}"'


def hangup_of(ended: bool, method: str, from_tag: str, caller_tag: str, status: int,
              by_edge: bool) -> str:
    """Who ended the call: an answered call by its BYE's From tag (RFC 3261 §15), or the
    dialog's timeout; an unanswered one: the caller (CANCEL, 487), the edge (its own 503
    after every gateway failed) or the far end (its final answer)."""
    if ended:
        if method != "BYE":
            return "timeout"
        return "caller" if from_tag == caller_tag else "callee"
    if status == 487:
        return "caller"
    return "edge" if by_edge else "callee"


def closed(head: str, answer_ms: int | None, end_ms: int, status: int, hangup: str) -> str:
    """The spool line of an admitted call that ended (answered or not): routed()'s head,
    then the end's fields (hangup_of's words need no quoting)."""
    if answer_ms is None:
        return (f'{head},"answer_ms":"","end_ms":"{end_ms}","duration_ms":"0",'
                f'"status":"{status}","hangup":"{hangup}","reason":""}}\n')
    return (f'{head},"answer_ms":"{answer_ms}","end_ms":"{end_ms}",'
            f'"duration_ms":"{max(0, end_ms - answer_ms)}","status":"{status}",'
            f'"hangup":"{hangup}","reason":""}}\n')


def refused(*, call_id: str, at_ms: int, status: int, reason: str, domain: str,
            source_ip: str, source_port: str, transport: str, edge: str) -> dict[str, str]:
    """The record of a refused initial INVITE (what support desks look up)."""
    record = {f: "" for f in FIELDS}
    record.update(kind="refused", call_id=call_id, start_ms=str(at_ms), end_ms=str(at_ms),
                  duration_ms="0", status=str(status), reason=reason, domain=domain,
                  source_ip=source_ip, source_port=source_port, transport=transport,
                  failovers="0", private="0", edge=edge)
    return record
