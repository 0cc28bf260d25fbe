"""HTTP endpoints in rooms of their own (APIRouters included by api/app.py)."""
