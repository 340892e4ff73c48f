"""The ASGI application: ``create_app()`` is the factory every worker process calls.

Settings come from the environment (see :class:`~squall.target.settings.Settings`),
the one channel all worker processes read identically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from squall.target.edge import Edge
from squall.target.http import internal_error, router_error, routes
from squall.target.protocol import WS_PATH
from squall.target.settings import Settings
from squall.target.ws import websocket_endpoint


class Platform(Starlette):
    """Starlette for HTTP and the lifespan; ``/v1/ws`` sockets go straight to the endpoint.

    An idle socket's task stays suspended in every frame between the server and
    its read: through Starlette's middleware and router that was ten more
    coroutines and their closures, 5.5 KB per socket measured. The socket route
    needs none of them (its endpoint handles every error itself), so it bypasses
    them; sockets to any other path still reach the router, which refuses them.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == scope.get("root_path", "") + WS_PATH:
            await websocket_endpoint(WebSocket(scope, receive, send), self.state.edge)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Platform:
    """The platform's app for one worker; ``settings`` default to ``Settings.from_env()``."""
    edge = Edge(settings if settings is not None else Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await edge.start()
        try:
            yield
        finally:
            await edge.close()

    app = Platform(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: router_error, Exception: internal_error},
    )
    # A path with a trailing slash is another path: 404 in the API's error form, not a 307.
    app.router.redirect_slashes = False
    app.state.edge = edge
    return app
