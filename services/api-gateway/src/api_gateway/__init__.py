"""The public `/v1` API: authenticates API keys, validates requests against the public models
and forwards them to job-service and result-service over pooled HTTP."""
