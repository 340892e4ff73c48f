"""The hand-written OpenAPI document served at ``/openapi.json``.

Written out rather than generated so it states the contract (status codes,
ownership rules) instead of whatever the handlers happen to do.
"""

from __future__ import annotations

from typing import Any, Final

from squall.target.auth import MAX_USER_ID_CHARS
from squall.target.protocol import MAX_BIGINT, WS_PATH

_ERROR = {"$ref": "#/components/schemas/Error"}
_BEARER: Final[list[dict[str, list[str]]]] = [{"bearer": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    """The error responses ``codes`` of an authenticated route, and its 503."""
    text = {
        400: "Invalid input (code invalid_field)",
        401: "Missing, malformed, expired or wrong-audience token",
        403: "The token's role may not do this",
        404: "No such thread for this user (another user's thread looks the same)",
        503: "PostgreSQL or Redis is unreachable (code unavailable); try again shortly",
    }
    return {str(code): _json(_ERROR, text[code]) for code in (*codes, 503)}


_THREAD_ID = {
    "name": "thread_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
}

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "squall reference agent platform",
        "version": "1",
        "description": "HTTP side of the platform; the WebSocket protocol at /v1/ws is "
        "described in docs/protocol.md.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "Account": {
                "type": "object",
                "required": ["user_id", "balance", "runs_charged"],
                "properties": {
                    "user_id": {"type": "string"},
                    "balance": {"type": "integer", "minimum": 0},
                    "runs_charged": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": True,
            },
            "Event": {
                "type": "object",
                "required": ["type", "thread_id", "run_id", "seq", "ts"],
                "properties": {
                    "type": {
                        "enum": [
                            "agent_started",
                            "tool_executing",
                            "tool_completed",
                            "agent_thinking",
                            "agent_completed",
                        ]
                    },
                    "thread_id": {"type": "string"},
                    "run_id": {"type": "string"},
                    "seq": {"type": "integer", "minimum": 1},
                    "ts": {"type": "number"},
                },
                "additionalProperties": True,
            },
        },
    },
    "paths": {
        WS_PATH: {
            "get": {
                "summary": "The WebSocket endpoint (frames: docs/protocol.md)",
                "security": _BEARER,
                "responses": {
                    "101": {"description": "Switching Protocols: the socket is open"},
                    "426": _json(
                        _ERROR, "A request without a WebSocket upgrade (code upgrade_required)"
                    ),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness of the answering worker process",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"const": "ok"},
                                "worker": {"type": "integer"},
                            },
                        },
                        "The worker's pid",
                    ),
                    "503": {"description": "The worker is shutting down"},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text: counters summed over workers, gauges of this worker",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
        },
        "/v1/accounts/me": {
            "get": {
                "summary": "The caller's account (created with the initial credits if new)",
                "security": _BEARER,
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Account"}, "The account"),
                    **_errors(401),
                },
            }
        },
        "/v1/accounts/me/preferences": {
            "put": {
                "summary": "Replace the caller's preferences (used in the agent's context)",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "description": "At most 4096 bytes"}
                        }
                    },
                },
                "responses": {"204": {"description": "Stored"}, **_errors(400, 401)},
            }
        },
        "/v1/accounts/{user_id}/credits": {
            "post": {
                "summary": "Grant credits to a user (admin only)",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "user_id",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_USER_ID_CHARS,
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["amount"],
                                "properties": {
                                    "amount": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": MAX_BIGINT,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Account"}, "The updated account"),
                    **_errors(400, 401, 403),
                },
            }
        },
        "/v1/threads/{thread_id}/messages": {
            "get": {
                "summary": "The thread's messages, oldest first (owner only)",
                "security": _BEARER,
                "parameters": [_THREAD_ID],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "thread_id": {"type": "string"},
                                "messages": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "Messages",
                    ),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/v1/threads/{thread_id}/events": {
            "get": {
                "summary": "Stored events with seq > after_seq, ascending (resume over HTTP)",
                "security": _BEARER,
                "parameters": [
                    _THREAD_ID,
                    {
                        "name": "after_seq",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "thread_id": {"type": "string"},
                                "events": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Event"},
                                },
                                "last_seq": {"type": "integer"},
                            },
                        },
                        "Events",
                    ),
                    **_errors(400, 401, 404),
                },
            }
        },
    },
}
