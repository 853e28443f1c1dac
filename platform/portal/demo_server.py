"""gunicorn's configuration for `manage.py demo`: the production one (miliao/gunicorn_conf.py)
with one worker process, whose threads serve the requests and one of which works the
`ledger` queue. The embedded chain (CHAIN_RPC_URL=embedded) is a file that one process at a
time may open, and both anchoring and the lineage pages use it, so they share that process.
"""
import os

from miliao.gunicorn_conf import *  # noqa: F401,F403

workers = 1
threads = 8


def post_worker_init(worker):
    from portal.management.commands.demo import ledger_thread

    worker.ledger = ledger_thread(os.environ.get("MILIAO_DEMO_HOST", "demo"))
    worker.ledger.__enter__()


def worker_exit(server, worker):
    ledger = getattr(worker, "ledger", None)
    if ledger is not None:
        ledger.__exit__(None, None, None)
