"""The Celery app. Redis in production; an in-process memory broker by default."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "miliao.settings")

app = Celery("miliao")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
