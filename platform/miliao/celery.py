"""The Celery app. Redis in production; a filesystem broker under STATE_DIR by default.

Queues (settings.CELERY_TASK_ROUTES): `jobs` (sandbox jobs, challenge scoring), `platform`
(releases, imports, alerts, the beat's checks) and `ledger` (anchoring, event-log
verification). README.md shows which worker consumes which."""
import logging
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "miliao.settings")
# Django's system checks run in the web process and `manage.py check`. In a worker they would
# load the URL map, and with it every API module (torch included): seconds more before a worker
# that restarts after a crash recovers what its previous life left running.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("miliao")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
log = logging.getLogger(__name__)


@worker_ready.connect
def recover_after_restart(sender, **kwargs) -> None:
    """A worker that starts runs nothing yet: a task still `running` under its name died with
    its previous life (SIGKILL, a lost machine), and so did any task whose heartbeat is stale."""
    from django.db import connection

    from progress.actions import recover_lost_tasks

    try:
        recovered = recover_lost_tasks(restarted=sender.hostname)
        if recovered:
            log.warning("recovered %d task(s) lost by a dead worker: %s", len(recovered), ", ".join(recovered))
    except Exception:  # the worker still starts; the beat's sweep tries again
        log.exception("recovering lost tasks at the start of %s failed", sender.hostname)
    finally:
        connection.close()  # not inherited by a prefork pool's children
