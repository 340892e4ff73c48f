"""A refused WebSocket upgrade says what its HTTP status means and what to check."""

from __future__ import annotations

import pytest

from squall.engine.client import upgrade_refused

DETAIL = "expected upgrade response with status 101 Switching Protocols, but received {}"


@pytest.mark.parametrize(
    ("status", "check"),
    [
        (401, "the target refused the credentials: check the Authorization header / token"),
        (403, "the target refused the credentials: check the Authorization header / token"),
        (404, "no WebSocket endpoint at that path: check the URL"),
        (429, "the target turned the connection away: overloaded, or at a limit"),
        (503, "the target turned the connection away: overloaded, or at a limit"),
        (500, "the target failed while answering the upgrade: see its logs"),
        (502, "the target failed while answering the upgrade: see its logs"),
        (400, "check the URL and the Authorization header / token"),
    ],
)
def test_each_refusal_names_its_status_and_what_to_check(status: int, check: str) -> None:
    detail = DETAIL.format(status)
    assert upgrade_refused(status, detail).startswith(f"HTTP {status}: {detail}; {check}")


@pytest.mark.parametrize("status", [500, 502, 503, 404])
def test_a_server_side_refusal_does_not_send_the_user_to_the_token(status: int) -> None:
    assert "token" not in upgrade_refused(status, DETAIL.format(status))


def test_a_redirect_names_where_it_pointed_and_is_not_followed() -> None:
    why = upgrade_refused(302, "redirect", "ws://127.0.0.1:8765/v2/ws")
    assert why == (
        "HTTP 302, a redirect to 'ws://127.0.0.1:8765/v2/ws'; squall does not follow "
        "redirects: connect to the URL the service answers on"
    )


def test_no_http_answer_asks_whether_it_is_a_websocket_server() -> None:
    why = upgrade_refused(None, "bad status line")
    assert why == (
        "no HTTP response came back: bad status line; is it a WebSocket server, on that port?"
    )
