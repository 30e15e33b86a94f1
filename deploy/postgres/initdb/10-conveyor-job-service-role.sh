#!/bin/sh
# Run once by the official postgres image, when it initialises an empty data volume: creates the
# least-privilege role job-service logs in as. `python -m job_service migrate`, running as the
# database owner, grants it what job-service needs on every run (docs/security.md). For a volume
# initialised before this script existed, run the same statements once by hand
# (docs/operations.md, "Deploy with Docker Compose").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=app_password="$POSTGRES_APP_PASSWORD" <<'SQL'
CREATE ROLE conveyor_job_service LOGIN PASSWORD :'app_password';
-- PostgreSQL before 15 lets every role create tables in `public`; only migrations may.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
