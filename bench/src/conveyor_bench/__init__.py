"""`make bench`: Conveyor's throughput and latency beside bare Celery, measured in one run."""
