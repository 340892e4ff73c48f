"""The ASGI application: ``create_app()`` is the factory every worker process calls.

Settings come from the environment (see :class:`~squall.target.settings.Settings`),
the one channel all worker processes read identically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from squall.target.edge import Edge
from squall.target.http import routes
from squall.target.settings import Settings
from squall.target.ws import websocket_endpoint


def create_app(settings: Settings | None = None) -> Starlette:
    """The platform's app for one worker; ``settings`` default to ``Settings.from_env()``."""
    edge = Edge(settings if settings is not None else Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await edge.start()
        try:
            yield
        finally:
            await edge.close()

    app = Starlette(
        routes=[*routes, WebSocketRoute("/v1/ws", websocket_endpoint)],
        lifespan=lifespan,
    )
    app.state.edge = edge
    return app
