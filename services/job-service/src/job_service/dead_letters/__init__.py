"""Dead letters: FAILED jobs (attempts spent, or a permanent error) that were not purged."""
