"""Progress of long-running Celery work, shown as a progress bar in the API and pages."""
