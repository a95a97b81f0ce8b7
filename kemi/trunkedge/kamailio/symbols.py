"""Names shared by kamailio.cfg and the Python adapter, defined once.

`runner.render` writes each as a `#!substdef` into the wrapper config, so kamailio.cfg
spells them `TE_HT_METRICS`, `TE_CB_FAILURE`, ...; the adapter uses the constants. The
callbacks are methods of `adapter.Edge` of the same name (a test checks both sides).
"""

from __future__ import annotations

# htables (shared memory)
HT_METRICS = "te_metrics"  # counters (core.counters names), dumped by `trunkedge status`
HT_BANS = "te_bans"  # this edge's copy of the banned addresses (expiring items)
HT_STATE = "te_state"  # state the workers share: the breaker, the watcher's lease
STATE_BREAKER = "redis_open_until"  # te_state item: breaker open until (monotonic ms)
STATE_LEASE = "watch"  # te_state item: the version the watcher vouches for, until when
HT_CALLS = "te_calls"  # this edge's calls holding channels: member -> scopes (watcher refreshes)
HT_ENDED = "te_ended"  # this edge's calls that ended: the watcher releases their channels
HT_STALE = "te_stale"  # entities provisioning touched lately: entity -> when (ms)
HT_KNOWN = "te_known"  # sources admitted lately: customers, exempt from the flood guard

# routes and callbacks Kamailio calls by name (methods of adapter.Edge)
CB_FAILURE = "ksr_failure_route"  # tm failure route of a relayed INVITE
CB_REPLY = "ksr_onreply_route"  # replies of the edge's transactions
CB_PRIVATE_REPLY = "ksr_private_reply_route"  # ... in a dialog whose caller is private
CB_SL_REPLY = "ksr_sl_reply"  # tm on_sl_reply: replies matching no transaction
CB_DISPATCHER_EVENT = "ksr_dispatcher_event"  # a gateway went up or down
CB_WATCH = "ksr_watch"  # rtimer: the watcher's process
CB_DIALOG_EVENT = "ksr_dialog_event"  # dialog: a call ended or failed (python_exec)
CB_XHTTP_EVENT = "ksr_xhttp_event"  # xhttp: an HTTP request on the metrics socket
WATCH_TIMER = "te_watch"  # the rtimer that runs CB_WATCH

# native route blocks the adapter runs (KSR.route), rendered into border.cfg by the runner:
# the headers a message loses at the border, one remove_hf each (no Python per header)
ROUTE_BORDER_INITIAL = "te_border_initial"  # an initial request of a customer (core.border)
ROUTE_BORDER_DIALOG = "te_border_dialog"  # a customer's request inside a dialog
ROUTE_STRIP_REPLY = "te_strip_reply"  # a reply on its way to the customer
ROUTE_STRIP_PRIVATE_REPLY = "te_strip_private_reply"  # ... of a private caller's dialog

# ndb_redis
REDIS_SERVER = "te"  # the server name in ndb_redis's `server` parameter
REDIS_REPLY = "te"  # the reply container the adapter reads ($redis(te=>...))

# AVPs
PRIVATE_AVP = "$avp(te_private)"  # the transaction's caller asked for privacy

# dialog variables: what the dialog module keeps with a call until it ends
HELD_VAR = "$dlg_var(te_held)"  # the channels the dialog holds (core.limits.Held)
ANSWERED_VAR = "$dlg_var(te_ans)"  # when the call was answered (s.µs, set natively)
CALL_VAR = "$dlg_var(te_cdr)"  # the call's record so far (kamailio.records)
FAILOVERS_VAR = "$dlg_var(te_fo)"
STATUS_VAR = "$dlg_var(te_code)"  # the final status, when not a 2xx
BY_EDGE_VAR = "$dlg_var(te_by_edge)"  # the edge answered it itself (every gateway failed)

DIALOG_END_FACTS = {
    "held": HELD_VAR, "answered": ANSWERED_VAR, "status": STATUS_VAR, "by_edge": BY_EDGE_VAR,
    "method": "$rm", "from_tag": "$ft", "call": CALL_VAR}
"""What event_route[dialog:end|failed] hands CB_DIALOG_EVENT in one string (Kamailio
formats it: no variable read back from Python): the event's name, then these, one per
line; the last (lines of its own) must stay last. runner.render_dialog_events writes it."""
DIALOG_END, DIALOG_FAILED = "dialog:end", "dialog:failed"  # a call ended: answered, or not
DIALOG_ENDED = (DIALOG_END, DIALOG_FAILED)
UNSET = "<null>"  # how Kamailio formats a variable that is not set

SUBSTITUTIONS = {
    "TE_HT_METRICS": HT_METRICS,
    "TE_HT_BANS": HT_BANS,
    "TE_HT_STATE": HT_STATE,
    "TE_CB_SL_REPLY": CB_SL_REPLY,
    "TE_CB_DISPATCHER_EVENT": CB_DISPATCHER_EVENT,
    "TE_CB_WATCH": CB_WATCH,
    "TE_HT_CALLS": HT_CALLS,
    "TE_HT_KNOWN": HT_KNOWN,
    "TE_HT_ENDED": HT_ENDED,
    "TE_HT_STALE": HT_STALE,
    "TE_WATCH_TIMER": WATCH_TIMER,
}
"""What kamailio.cfg names through the wrapper's #!substdef (the rest it never names)."""



def redis_servers(sentinels: int) -> tuple[str, ...]:
    """ndb_redis's server names, most preferred first: REDIS_SERVER, then `te1`, `te2`, ...
    with Sentinel (one per sentinel: runner.ndb_redis_servers)."""
    return (REDIS_SERVER, *(f"{REDIS_SERVER}{i}" for i in range(1, sentinels)))


CALLBACKS = (CB_FAILURE, CB_REPLY, CB_PRIVATE_REPLY, CB_SL_REPLY, CB_DISPATCHER_EVENT,
             CB_WATCH, CB_DIALOG_EVENT, CB_XHTTP_EVENT)
