"""Conveyor's job-service: the only owner of the database (jobs, outbox, lifecycle history, API
keys), the outbox relay that publishes jobs to Redis, and the reader that applies workers'
lifecycle events."""
