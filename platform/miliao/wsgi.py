"""WSGI entry point. Puts platform/ on sys.path like manage.py does."""
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "miliao.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402


def client_gone(sock) -> bool:
    """Whether the client closed its connection after sending its request: a peek reads the
    end of the stream (or a reset) instead of blocking. One non-blocking syscall."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except ValueError:  # a TLS socket (gunicorn's certfile) refuses flags: assume still there
        return False
    except OSError:  # reset by the peer
        return True


def skip_abandoned(app):
    """Under a burst, requests wait in the listen backlog; a client that gave up on one
    closes its connection, but a sync worker would still build the page for nobody and
    make every request behind it wait longer. gunicorn hands its socket to the app:
    a request whose client is gone is answered 499 (nginx's "client closed request",
    logged so) without running Django. Other servers (runserver, uvicorn) pass no socket.
    A client that half-closes its side after sending a request looks gone; HTTP clients
    and proxies do not do that."""

    def application(environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None and client_gone(sock):
            start_response("499 Client Closed Request", [("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    return application


application = skip_abandoned(get_wsgi_application())
