"""Real-backend test support shared by every Conveyor test suite: PostgreSQL and Redis servers
(given by URL, from testcontainers, or started from the embedded packages) and helpers to run
service and worker processes."""
