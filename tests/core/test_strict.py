"""The strict syntax checks run before any policy: request line, addresses, Date."""

from __future__ import annotations

import pytest

from trunkedge.core import strict


@pytest.mark.parametrize(("line", "want"), [
    pytest.param("INVITE sip:+31@acme.sip.example.net SIP/2.0", None, id="well-formed"),
    pytest.param("OPTIONS sip:x@example.com SIP/2.0  ", (400, "Bad Request Line"),
                 id="trailing-spaces"),
    pytest.param("OPTIONS  sip:x@example.com SIP/2.0", (400, "Bad Request Line"),
                 id="two-spaces"),
    pytest.param("INVITE <sip:x@example.com> SIP/2.0", (400, "Bad Request Line"),
                 id="uri-in-angle-brackets"),
    pytest.param("INVITE sip:x@example.com;a=b c SIP/2.0", (400, "Bad Request Line"),
                 id="space-in-uri"),
    pytest.param("INVITE sip:x@example.com?Route=%3Csip:y%3E SIP/2.0",
                 (400, "Bad Request-URI"), id="headers-in-request-uri"),
    pytest.param("OPTIONS sip:x@example.com SIP/7.0", (505, "Version Not Supported"),
                 id="sip-7.0"),
])
def test_a_malformed_request_line_gets_the_rfc_answer(
        line: str, want: tuple[int, str] | None) -> None:
    assert strict.request_line(line + "\r") == want


@pytest.mark.parametrize(("value", "ok"), [
    pytest.param('"Bell, A" <sip:a@example.com>;tag=1', True, id="display-name-with-comma"),
    pytest.param("sip:a@example.com;tag=1", True, id="bare-uri"),
    pytest.param("*", True, id="contact-star"),
    pytest.param(None, True, id="absent"),
    pytest.param('"W" < sip:t@example.org >', False, id="spaces-inside-brackets"),
    pytest.param("sip:a@example.com?Route=%3Csip:x%3E", False, id="headers-in-bare-uri"),
    pytest.param("<sip:a@example.com", False, id="unclosed-bracket"),
])
def test_from_to_and_contact_must_be_well_formed_addresses(value: str | None, ok: bool) -> None:
    assert (strict.address(value) is None) == ok


def test_a_date_header_must_be_in_gmt() -> None:
    assert strict.date("Sat, 13 Nov 2010 23:29:00 GMT") is None
    assert strict.date("Fri, 01 Jan 2010 16:00:00 EST") == (400, "Bad Date")
    assert strict.date(None) is None
