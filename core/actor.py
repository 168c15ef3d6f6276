"""Who is acting: a plain value passed into services (never read from a request there)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    """An authenticated user, or the system itself for timed and CLI actions."""

    user_id: int | None
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    org_id: int | None = None
    org_code: str | None = None
    address: str | None = None  # client IP, for collusion indicators and the log

    def has(self, *roles: str) -> bool:
        """True when the actor holds any of ``roles``."""
        return bool(self.roles.intersection(roles))

    @property
    def log_name(self) -> str:
        """How the audit log names this actor."""
        return self.username


SYSTEM = Actor(user_id=None, username="system", roles=frozenset({"system"}))
ANONYMOUS = Actor(user_id=None, username="anonymous", roles=frozenset())
