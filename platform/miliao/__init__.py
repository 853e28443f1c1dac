"""Miliao project package: settings, URL map, Celery app and shared errors."""
from .celery import app as celery_app

__all__ = ("celery_app",)
