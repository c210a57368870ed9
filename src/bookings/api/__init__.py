"""The HTTP layer: FastAPI routes, the error mapping, middleware. No business rules here."""
