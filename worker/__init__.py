"""Celery workers: training, scoring and the reaper (``celery -A worker.app worker``)."""
