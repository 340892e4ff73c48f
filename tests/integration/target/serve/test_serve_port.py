"""``squall target serve`` on a port another process holds: a message naming it, exit 3."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from squall.cli import main
from squall.target.server import CannotListen, listen_socket


@pytest.fixture
def held_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def test_a_held_port_is_named_with_the_fix(held_port: int) -> None:
    with pytest.raises(CannotListen) as info:
        listen_socket("127.0.0.1", held_port)
    message = info.value.strerror
    assert f"cannot listen on 127.0.0.1:{held_port}" in message
    assert "choose another --port (0 picks a free one)" in message


def test_serve_exits_3_before_starting_workers(
    held_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    before = dict(os.environ)
    assert main(["target", "serve", "--port", str(held_port)]) == 3
    assert dict(os.environ) == before  # the workers' settings were not exported
    err = " ".join(capsys.readouterr().err.split())
    assert f"squall target: cannot listen on 127.0.0.1:{held_port}" in err


def test_a_free_port_is_bound_and_inheritable() -> None:
    sock = listen_socket("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
        assert sock.get_inheritable()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    finally:
        sock.close()
