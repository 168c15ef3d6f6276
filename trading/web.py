"""Authentication for views: the bearer token becomes an :class:`Actor` value."""
from __future__ import annotations

from flask import g, request

from core.actor import ANONYMOUS, Actor
from core.db import db
from core.errors import Forbidden, Unauthorized
from core.runtime import runtime
from core.web import request_now
from trading import accounts


def current_actor(optional: bool = False) -> Actor:
    """The authenticated actor of this request (401 without a valid token, unless optional)."""
    if "_ebid_actor" in g:
        return g._ebid_actor
    header = request.headers.get("Authorization", "")
    if not header:
        if optional:
            return ANONYMOUS
        raise Unauthorized()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use Authorization: Bearer <token>", code="invalid_token",
                           message_zh="请使用 Authorization: Bearer <令牌>")
    user, claims = accounts.decode_token(db.session, request_now(), token.strip(),
                                         runtime().keys.secret_key)
    g._ebid_claims = claims
    g._ebid_actor = accounts.actor_for(user, request.remote_addr)
    # End the token check's read transaction at once: on SQLite every transaction holds
    # the write lock from BEGIN IMMEDIATE, and the request's own work starts its own.
    db.session.rollback()
    return g._ebid_actor


def require_roles(*roles: str) -> Actor:
    """The actor, if it holds one of ``roles``; 403 otherwise."""
    actor = current_actor()
    if not actor.has(*roles):
        raise Forbidden(f"Requires role {' or '.join(roles)}", message_zh=f"需要角色：{'/'.join(roles)}",
                        required=list(roles))
    return actor


def token_claims() -> dict:
    current_actor()
    return g._ebid_claims
