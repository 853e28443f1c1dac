"""gunicorn's configuration for the portal: `gunicorn -c platform/miliao/gunicorn_conf.py`.

Every value can be set from the environment (deploy/env.example). Behind the TLS proxy:
the proxy holds the slow clients and TLS, gunicorn the Django workers.
"""
from __future__ import annotations

import gc
import os
import re
import sys
from pathlib import Path

from gunicorn.glogging import Logger

REPO_DIR = Path(__file__).resolve().parents[2]
# The same import path as manage.py: platform/ (the Django apps) and the repo root.
sys.path[:0] = [str(REPO_DIR / "platform"), str(REPO_DIR)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "miliao.settings")

wsgi_app = "miliao.wsgi:application"
bind = os.environ.get("MILIAO_WEB_BIND", "127.0.0.1:8000")
# One sync worker per core this process may use: the portal's requests are CPU, not waiting
# (the proxy holds slow clients). On 2 cores, 4 workers took twice the CPU per answer of 2 and
# answered the catalogue at 200/s with p99 174 ms against 6 ms (bench/README.md).
workers = int(os.environ.get("MILIAO_WEB_WORKERS") or max(2, len(os.sched_getaffinity(0))))
# More than one thread makes the workers gthread workers.
threads = int(os.environ.get("MILIAO_WEB_THREADS") or 1)
# A worker silent this long is killed and replaced, so a request that hangs frees its
# worker; on a stop or reload, requests in flight get graceful_timeout to finish.
timeout = int(os.environ.get("MILIAO_WEB_TIMEOUT_S") or 30)
graceful_timeout = int(os.environ.get("MILIAO_WEB_GRACEFUL_TIMEOUT_S") or 20)
# Connections waiting to be accepted; beyond this the kernel refuses them, rather than
# queueing work that clients will have given up on by the time a worker is free.
backlog = int(os.environ.get("MILIAO_WEB_BACKLOG") or 64)
keepalive = 5
# No runtime control socket (gunicornc): nothing uses it, and its default path in $HOME would
# be shared by every gunicorn of the same user.
control_socket_disable = True
# Django, its URL map and what the views import (numpy, torch, web3, ...) load once in the
# master, before it listens, and the workers fork from it ready: the first request does not
# pay for the imports, a worker is never killed by `timeout` while still importing them, and
# no connection is accepted before the portal can answer it.
preload_app = True


def on_starting(server):
    from django.urls import get_resolver

    get_resolver().url_patterns  # imports every view module


def pre_fork(server, worker):
    # What the master loaded (Django, torch, numpy, web3: millions of objects) lives as long
    # as the worker; frozen, the worker's full garbage collections skip it, instead of walking
    # it all in the middle of some request (the catalogue's slowest answers were these pauses).
    gc.freeze()

# Access log on stdout: client, time, method, path without the query string (it may hold
# tokens), status, bytes, milliseconds. No cookies, Authorization, Referer or query.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'

# A signed download link's path is its secret: the log shows only that it was one.
SECRET_PATH = re.compile(r"^(/api/downloads/)[^/]+")


class AccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = SECRET_PATH.sub(r"\1<token>", atoms["U"] or "")
        return atoms


logger_class = AccessLogger
