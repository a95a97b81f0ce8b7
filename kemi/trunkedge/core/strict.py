"""Strict syntax checks the permissive core parser lets through (RFC 4475 §3.1.2). Pure.

Kamailio accepts, for example, trailing spaces after the request line, a Request-URI in
angle brackets, escaped headers in a Request-URI, a name-addr with spaces inside <> or an
addr-spec with a '?' outside them. A border element refuses such requests with 400 (505
for an unknown SIP version) before any decision is taken on them.
"""

from __future__ import annotations

import re

_REQUEST_LINE = re.compile(r"[!-~]+ [^\s<>]+ SIP/2\.0")
_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                   r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                   r"\d{2}:\d{2}:\d{2} GMT")

Problem = tuple[int, str]


def request_line(line: str) -> Problem | None:
    """`Method SP Request-URI SP SIP/2.0`, single spaces, nothing after the version."""
    line = line.rstrip("\r\n")
    if _REQUEST_LINE.fullmatch(line):
        if "?" in line.split(" ")[1]:
            return 400, "Bad Request-URI"  # headers are not allowed in a Request-URI
        return None
    if not line.rstrip().endswith("SIP/2.0"):
        return 505, "Version Not Supported"
    return 400, "Bad Request Line"


def address(value: str | None) -> Problem | None:
    """From/To/Contact: no spaces inside <...>; an addr-spec without <> may not carry
    '?' or ',' (RFC 3261 §20.10)."""
    if value is None:
        return None
    v = value.strip()
    if v == "*":
        return None
    if "<" in v:
        inner = v[v.index("<") + 1: v.find(">") if ">" in v else len(v)]
        if ">" not in v or inner != inner.strip() or not inner:
            return 400, "Bad Address"
        return None
    uri = v.split(";", 1)[0]
    if "?" in uri or "," in uri:
        return 400, "Bad Address"
    return None


def date(value: str | None) -> Problem | None:
    """Date: an RFC 1123 date in GMT (RFC 3261 §20.17)."""
    if value is None or _DATE.fullmatch(value.strip()):
        return None
    return 400, "Bad Date"
