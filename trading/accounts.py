"""Accounts: organisations, users, password login, access tokens and signing keys.

Services take ``(session, actor, now, ...)``; they never read a request or a clock.
Access tokens are short-lived HS256 JWTs whose expiry is checked against the injected
clock (pyjwt's own expiry check reads the system time, so it is turned off).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

import jwt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from audits import log
from core.actor import Actor
from core.errors import AppError, Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from trading.domain import OrgKind, Role
from trading.models import Organisation, RevokedToken, SigningKey, User

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# A hash to verify against when the user does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def use_fast_password_hashing_for_tests() -> None:
    """Cheaper Argon2id parameters so a test suite can create hundreds of users.
    Never called by the app; only the test suite's conftest calls it."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    _DUMMY_HASH = _hasher.hash("not-a-real-password")
TOKEN_ALGORITHM = "HS256"
PRIVILEGED = {Role.ADMIN, Role.SUPERVISOR, Role.AGENT}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_organisation(session: Session, actor: Actor, now: datetime, *, code: str, name: str,
                        kind: str, region: str | None = None,
                        legal_representative: str | None = None,
                        controlled_by: str | None = None) -> Organisation:
    """Register an organisation (admin, or the system when seeding)."""
    _require_admin(actor)
    if kind not in {k.value for k in OrgKind}:
        raise ValidationFailed(f"Unknown organisation kind {kind!r}", field="kind")
    if session.execute(sa.select(Organisation.id).where(Organisation.code == code)).first():
        raise Conflict(f"Organisation {code} exists", code="organisation_exists", field="code")
    parent_id = None
    if controlled_by:
        parent = session.execute(sa.select(Organisation).where(Organisation.code == controlled_by)).scalar_one_or_none()
        if parent is None:
            raise NotFound(f"No organisation {controlled_by}", field="controlled_by")
        parent_id = parent.id
    org = Organisation(code=code, name=name, kind=kind, region=region,
                       legal_representative=legal_representative, controlled_by_id=parent_id,
                       created_at=now)
    session.add(org)
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="organisation.created",
               subject=f"org:{code}", data={"kind": kind, "name": name})
    return org


def create_user(session: Session, actor: Actor, now: datetime, *, username: str, password: str,
                roles: Iterable[str], display_name: str | None = None,
                org_code: str | None = None) -> User:
    """Create a user account with roles (admin, or the system when seeding)."""
    _require_admin(actor)
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in {x.value for x in Role}]
    if unknown or not roles:
        raise ValidationFailed(f"Unknown roles {unknown}" if unknown else "At least one role",
                               field="roles")
    if len(password) < 10:
        raise ValidationFailed("Password must have at least 10 characters", field="password",
                               message_zh="密码至少 10 个字符")
    if session.execute(sa.select(User.id).where(User.username == username)).first():
        raise Conflict(f"User {username} exists", code="user_exists", field="username")
    org = None
    if org_code:
        org = session.execute(sa.select(Organisation).where(Organisation.code == org_code)).scalar_one_or_none()
        if org is None:
            raise NotFound(f"No organisation {org_code}", field="org")
    user = User(username=username, display_name=display_name or username,
                password_hash=hash_password(password), roles=roles,
                org_id=org.id if org else None, active=True, created_at=now)
    session.add(user)
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="user.created",
               subject=f"user:{username}", data={"roles": roles, "org": org_code})
    return user


def actor_for(user: User, address: str | None = None) -> Actor:
    """The :class:`Actor` value a service receives for ``user``."""
    return Actor(user_id=user.id, username=user.username, roles=frozenset(user.roles),
                 org_id=user.org_id, org_code=user.org.code if user.org else None,
                 address=address)


def authenticate(session: Session, now: datetime, username: str, password: str,
                 address: str | None = None) -> User:
    """Check a password. Refusals are logged; the same error whatever was wrong."""
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise Unauthorized("Wrong username or password", code="bad_credentials",
                           message_zh="用户名或密码错误")
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if PRIVILEGED.intersection(user.roles):
        log.append(session, now=now, actor=user.username, action="auth.login",
                   subject=f"user:{user.username}", data={"roles": sorted(user.roles)})
    return user


def log_refused_login(session: Session, now: datetime, username: str) -> None:
    """Record a refused login of a privileged account (kept out of the refusing transaction)."""
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    if user is not None and PRIVILEGED.intersection(user.roles):
        log.append(session, now=now, actor="anonymous", action="auth.login_refused",
                   subject=f"user:{username}", data={})


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    jti: str


def issue_token(user: User, now: datetime, secret: str, ttl_seconds: int) -> IssuedToken:
    """A short-lived access token for ``user``."""
    jti = secrets.token_hex(16)
    exp = now + timedelta(seconds=ttl_seconds)
    claims = {"sub": str(user.id), "jti": jti, "iat": int(now.timestamp()),
              "exp": int(exp.timestamp()), "roles": sorted(user.roles)}
    return IssuedToken(jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM), ttl_seconds, jti)


def decode_token(session: Session, now: datetime, token: str, secret: str) -> tuple[User, dict[str, Any]]:
    """Verify a bearer token against the injected clock and the revocation list."""
    try:
        claims = jwt.decode(token, secret, algorithms=[TOKEN_ALGORITHM],
                            options={"verify_exp": False, "verify_iat": False,
                                     "require": ["sub", "jti", "exp"]})
    except jwt.PyJWTError:
        raise Unauthorized("Invalid token", code="invalid_token", message_zh="令牌无效") from None
    if not isinstance(claims.get("exp"), int) or now.timestamp() >= claims["exp"]:
        raise Unauthorized("Token expired", code="token_expired", message_zh="令牌已过期")
    if session.get(RevokedToken, claims["jti"]) is not None:
        raise Unauthorized("Token revoked", code="token_revoked", message_zh="令牌已注销")
    user = session.get(User, int(claims["sub"])) if str(claims["sub"]).isdigit() else None
    if user is None or not user.active:
        raise Unauthorized("Invalid token", code="invalid_token", message_zh="令牌无效")
    return user, claims


def revoke_token(session: Session, now: datetime, claims: dict[str, Any]) -> None:
    """Logout: the token stops working at once."""
    from datetime import timezone
    if session.get(RevokedToken, claims["jti"]) is None:
        session.add(RevokedToken(jti=claims["jti"],
                                 expires_at=datetime.fromtimestamp(claims["exp"], tz=timezone.utc)))


def register_signing_key(session: Session, actor: Actor, now: datetime, public_key_b64: str) -> SigningKey:
    """Register an Ed25519 public key (raw 32 bytes, base64) on the actor's account."""
    if actor.user_id is None:
        raise Forbidden()
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except ValueError:
        raise ValidationFailed("Not base64", code="bad_base64", field="public_key") from None
    if len(raw) != 32 or base64.b64encode(raw).decode() != public_key_b64:
        raise ValidationFailed("An Ed25519 public key is 32 bytes, canonical base64",
                               code="bad_public_key", field="public_key")
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValidationFailed("Not an Ed25519 public key", code="bad_public_key",
                               field="public_key") from None
    kid = hashlib.sha256(raw).hexdigest()[:16]
    existing = session.get(SigningKey, kid)
    if existing is not None:
        if existing.user_id != actor.user_id:
            raise Conflict("Key registered by another account", code="key_taken", field="public_key")
        return existing
    key = SigningKey(kid=kid, user_id=actor.user_id, public_key=raw, created_at=now)
    session.add(key)
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="key.registered",
               subject=f"user:{actor.username}", data={"kid": kid, "public_key": public_key_b64})
    return key


def user_signing_keys(session: Session, user_id: int) -> list[SigningKey]:
    return list(session.execute(
        sa.select(SigningKey).where(SigningKey.user_id == user_id, SigningKey.revoked_at.is_(None))
        .order_by(SigningKey.created_at)).scalars())


def _require_admin(actor: Actor) -> None:
    if not actor.has(Role.ADMIN, "system"):
        raise Forbidden("Only an administrator may do this", message_zh="仅管理员可执行")


__all__ = ["AppError", "create_user", "create_organisation", "authenticate", "issue_token",
           "decode_token", "revoke_token", "register_signing_key", "actor_for"]
