"""`/v1/api-keys`: a tenant admin's own keys, created, listed, revoked and rotated."""
