"""Contracts shared by every Conveyor service: job spec, statuses, events, errors, settings,
logging, metrics and the one Celery app factory."""
