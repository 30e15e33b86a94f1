"""Read access to the Celery result backend: one plain `GET` of a job's result key, checked
against the tenant stored with the value (docs/decisions/0006)."""
