"""HTTP endpoints for login, logout, the caller's account and keys, users and organisations."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import request
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate

from core.actor import SYSTEM
from core.db import db
from core.runtime import runtime
from core.schemas import ErrorResponse, PageArgs, envelope_of
from core.web import request_now
from trading import accounts
from trading.domain import OrgKind, Role
from trading.models import Organisation, User
from trading.web import current_actor, require_roles, token_claims

auth = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Login and logout")
people = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Accounts, organisations, keys")


class TokenRequest(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                             load_only=True)


class TokenOut(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class OrgOut(Schema):
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    region = fields.String(allow_none=True)


class OrgCreate(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in OrgKind]))
    region = fields.String(validate=validate.Length(max=32))
    legal_representative = fields.String(validate=validate.Length(max=100))
    controlled_by = fields.String(validate=validate.Length(max=128))


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    roles = fields.List(fields.String())
    org = fields.Function(lambda u: u.org.code if u.org else None)
    active = fields.Boolean()


class UserCreate(Schema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_.-]{3,64}$"))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=10, max=1024))
    roles = fields.List(fields.String(validate=validate.OneOf([r.value for r in Role])),
                        required=True, validate=validate.Length(min=1))
    display_name = fields.String(validate=validate.Length(max=100))
    org = fields.String(validate=validate.Length(max=128))


class KeyCreate(Schema):
    public_key = fields.String(required=True, validate=validate.Length(max=64))


class KeyOut(Schema):
    kid = fields.String()
    public_key = fields.Function(lambda k: __import__("base64").b64encode(k.public_key).decode())
    created_at = fields.DateTime()


@auth.route("/token")
class TokenView(MethodView):
    @auth.arguments(TokenRequest)
    @auth.response(200, envelope_of(TokenOut))
    @auth.alt_response(401, schema=ErrorResponse)
    @auth.alt_response(429, schema=ErrorResponse)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Exchange a username and password for a short-lived bearer token (PROTOCOL §9)."""
        rt = runtime()
        now = request_now()
        rt.login_throttle.hit(body["username"], request.remote_addr)
        try:
            user = accounts.authenticate(db.session, now, body["username"], body["password"])
        except Exception:
            db.session.rollback()
            accounts.log_refused_login(db.session, now, body["username"])
            db.session.commit()
            raise
        token = accounts.issue_token(user, now, rt.keys.secret_key, rt.config["EBID_TOKEN_TTL_SECONDS"])
        db.session.commit()
        return {"data": {"access_token": token.access_token, "token_type": "Bearer",
                         "expires_in": token.expires_in}}


@auth.route("/logout")
class LogoutView(MethodView):
    @auth.response(204)
    @auth.doc(security=[{"bearer": []}])
    def post(self) -> None:
        """Revoke the token used for this request."""
        claims = token_claims()
        accounts.revoke_token(db.session, request_now(), claims)
        db.session.commit()


@people.route("/me")
class MeView(MethodView):
    @people.response(200, envelope_of(UserOut))
    @people.doc(security=[{"bearer": []}])
    def get(self) -> dict[str, Any]:
        """The caller's account."""
        actor = current_actor()
        return {"data": db.session.get(User, actor.user_id)}


@people.route("/me/keys")
class MyKeysView(MethodView):
    @people.response(200, envelope_of(KeyOut, many=True))
    @people.doc(security=[{"bearer": []}])
    def get(self) -> dict[str, Any]:
        """The caller's registered Ed25519 signing keys."""
        actor = current_actor()
        return {"data": accounts.user_signing_keys(db.session, actor.user_id)}

    @people.arguments(KeyCreate)
    @people.response(201, envelope_of(KeyOut))
    @people.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register an Ed25519 signing public key (raw 32 bytes, base64; PROTOCOL §2)."""
        actor = current_actor()
        key = accounts.register_signing_key(db.session, actor, request_now(), body["public_key"])
        db.session.commit()
        return {"data": key}


@people.route("/users")
class UsersView(MethodView):
    @people.arguments(PageArgs, location="query")
    @people.response(200, envelope_of(UserOut, many=True, paged=True))
    @people.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List accounts (administrators)."""
        require_roles(Role.ADMIN)
        query = sa.select(User).order_by(User.id)
        total = db.session.execute(sa.select(sa.func.count()).select_from(User)).scalar_one()
        rows = db.session.execute(query.offset((args["page"] - 1) * args["per_page"])
                                  .limit(args["per_page"])).scalars().all()
        return {"data": rows, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}

    @people.arguments(UserCreate)
    @people.response(201, envelope_of(UserOut))
    @people.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create an account (administrators)."""
        actor = require_roles(Role.ADMIN)
        user = accounts.create_user(db.session, actor, request_now(), username=body["username"],
                                    password=body["password"], roles=body["roles"],
                                    display_name=body.get("display_name"), org_code=body.get("org"))
        db.session.commit()
        return {"data": user}


@people.route("/organisations")
class OrganisationsView(MethodView):
    @people.arguments(PageArgs, location="query")
    @people.response(200, envelope_of(OrgOut, many=True, paged=True))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Public register of organisations."""
        total = db.session.execute(sa.select(sa.func.count()).select_from(Organisation)).scalar_one()
        rows = db.session.execute(sa.select(Organisation).order_by(Organisation.code)
                                  .offset((args["page"] - 1) * args["per_page"])
                                  .limit(args["per_page"])).scalars().all()
        return {"data": rows, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}

    @people.arguments(OrgCreate)
    @people.response(201, envelope_of(OrgOut))
    @people.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register an organisation (administrators)."""
        actor = require_roles(Role.ADMIN)
        org = accounts.create_organisation(db.session, actor, request_now(), **body)
        db.session.commit()
        return {"data": org}


def register(api: Api) -> None:
    api.register_blueprint(auth)
    api.register_blueprint(people)


__all__ = ["register", "SYSTEM"]
