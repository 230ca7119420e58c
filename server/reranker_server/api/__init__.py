"""HTTP layer: FastAPI routes for every API shape, errors, auth and request metrics."""
