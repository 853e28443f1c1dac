"""The WSGI entry point skips requests whose client has gone (a burst's abandoned requests
waiting in gunicorn's backlog), and serves those whose client still waits."""
from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.foundation

REQUEST = b"GET /api/datasets/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def served(sock) -> tuple[str, bool]:
    """The status the wrapped app answers for a request read from `sock`, and whether the
    inner app (Django) ran."""
    from miliao.wsgi import skip_abandoned

    ran, statuses = [], []

    def inner(environ, start_response):
        ran.append(True)
        start_response("200 OK", [])
        return [b"page"]

    skip_abandoned(inner)({"gunicorn.socket": sock}, lambda status, headers: statuses.append(status))
    return statuses[0], bool(ran)


def test_a_request_whose_client_closed_is_answered_499_without_running_django():
    server, client = socket.socketpair()
    with server, client:
        client.sendall(REQUEST)
        assert server.recv(4096) == REQUEST  # gunicorn has read the request
        client.close()  # the client gave up waiting
        assert served(server) == ("499 Client Closed Request", False)


def test_a_waiting_client_is_served_and_the_check_reads_nothing():
    server, client = socket.socketpair()
    with server, client:
        client.sendall(REQUEST)
        assert server.recv(4096) == REQUEST
        assert served(server) == ("200 OK", True)
        client.sendall(b"next")  # a peek leaves the stream as it was
        assert server.recv(16) == b"next"


def test_without_gunicorn_socket_the_app_runs():
    from miliao.wsgi import skip_abandoned

    statuses = []
    skip_abandoned(lambda environ, start: (start("200 OK", []), [b""])[1])({}, lambda s, h: statuses.append(s))
    assert statuses == ["200 OK"]
