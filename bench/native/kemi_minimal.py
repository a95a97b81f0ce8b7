"""The native baseline's request_route (bench/native/kamailio.cfg), line for line, as an
app_python3 KEMI script: the benchmark's `kemi` target, which measures what embedded
Python costs per SIP message before the edge's policy adds anything."""

import os

import KSR

REALM = "sip.example.net"
IP_SOURCE = os.environ["BN_IP_SOURCE"]
GATEWAY = os.environ["BN_GATEWAY"]
ACCOUNT = f"HGET {os.environ['BN_PREFIX']}account:%s ha1_md5"


class Minimal:
    def child_init(self, rank: int) -> int:
        return 0

    def ksr_request_route(self, msg: object) -> int:
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return 1
        if KSR.sanity.sanity_check(999, 7) < 0:
            return 1
        if KSR.siputils.has_totag() > 0:
            if KSR.rr.loose_route() > 0 or (KSR.is_ACK() and KSR.tm.t_check_trans() > 0):
                KSR.tm.t_relay()
            return 1
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return 1
        if not KSR.is_ACK():
            if KSR.tmx.t_precheck_trans() > 0:
                KSR.tm.t_check_trans()
                return 1
            KSR.tm.t_check_trans()
        if KSR.is_OPTIONS():
            KSR.sl.sl_send_reply(200, "OK")
            return 1
        if not KSR.is_INVITE():
            KSR.sl.sl_send_reply(405, "Method Not Allowed")
            return 1
        if KSR.pv.get("$si") != IP_SOURCE:
            if KSR.auth.has_credentials(REALM) < 0:
                KSR.auth.auth_challenge(REALM, 1)
                return 1
            if KSR.ndb_redis.redis_cmd_p1("r", ACCOUNT, KSR.pv.get("$au") or "", "ha1") < 0:
                KSR.sl.sl_send_reply(503, "Service Unavailable")
                return 1
            if KSR.auth.pv_auth_check(REALM, KSR.pv.get("$redis(ha1=>value)") or "", 1, 1) < 0:
                KSR.auth.auth_challenge(REALM, 1)
                return 1
            KSR.auth.consume_credentials()
        KSR.rr.record_route()
        KSR.pv.sets("$du", GATEWAY)
        KSR.tm.t_relay()
        return 1


def mod_init() -> Minimal:
    return Minimal()
