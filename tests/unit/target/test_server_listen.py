"""A port that cannot be bound: the message names the host or the port, whichever is wrong."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from squall.target.server import CannotListen, listen_problem, listen_socket

HOST_FIX = "pass an address of this machine to --host, such as 127.0.0.1"
PORT_FIX = "choose another --port (0 picks a free one)"


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def test_an_address_of_another_machine_is_named_as_the_host_problem() -> None:
    held = listen_problem("127.0.0.1", 8765, _error(errno.EADDRINUSE))
    assert held == (  # the port's problem, as before
        f"cannot listen on 127.0.0.1:8765: {os.strerror(errno.EADDRINUSE)}; choose another "
        "--port (0 picks a free one) or --host, or stop the process that holds it"
    )
    message = listen_problem("elsewhere.example", 8765, _error(errno.EADDRNOTAVAIL))
    assert message.startswith(
        f"cannot listen on elsewhere.example:8765: {os.strerror(errno.EADDRNOTAVAIL)}: "
        "elsewhere.example is not an address of this machine; "
    )
    assert HOST_FIX in message
    assert "--port" not in message


def test_a_name_that_does_not_resolve_is_named_as_the_host_problem() -> None:
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    message = listen_problem("notahost.invalid", 8765, gai)
    assert message.startswith(
        "cannot listen on notahost.invalid:8765: Name or service not known: "
        "'notahost.invalid' is not a name this machine can resolve; "
    )
    assert HOST_FIX in message
    assert "--port" not in message


def test_a_privileged_port_is_named_as_such() -> None:
    message = listen_problem("127.0.0.1", 80, _error(errno.EACCES))
    assert "this user may not listen on port 80 (a port below 1024 needs privileges)" in message
    assert message.endswith(PORT_FIX)
    assert "stop the process" not in message


def test_binding_an_address_this_machine_lacks_raises_the_host_problem() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): documentation only, on no machine.
    with pytest.raises(CannotListen) as info:
        listen_socket("192.0.2.1", 0)
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert "192.0.2.1 is not an address of this machine" in info.value.strerror
