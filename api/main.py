"""The ASGI entry point for uvicorn: ``uvicorn api.main:app --factory`` (``conversa api``)."""

from fastapi import FastAPI

from api.app import create_app


def app() -> FastAPI:
    """Build the app in the serving process, from ``CONVERSA_*`` settings and stack.json."""
    return create_app()
