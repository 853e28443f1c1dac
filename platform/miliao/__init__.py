"""Miliao project package: settings, URL map and Celery app (the shared errors are platform/kernel/)."""
from .celery import app as celery_app

__all__ = ("celery_app",)
