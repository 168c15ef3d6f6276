"""Login throttling per account and per client address (brute-force protection).

Built on `limits` (the library under flask-limiter): in memory by default, shared
through Redis when ``EBID_REDIS_URL`` is set so every worker and host counts together.
"""
from __future__ import annotations

from limits import parse, storage, strategies

from core.errors import TooManyRequests


class LoginThrottle:
    """Counts login attempts; refuses once an account or an address is over its limit."""

    def __init__(self, account_limit: str, address_limit: str, redis_url: str | None = None) -> None:
        # An address gets more room than an account: a county office's bidders share one NAT.
        self.limits = {"account": parse(account_limit), "address": parse(address_limit)}
        backend = storage.storage_from_string(redis_url) if redis_url else storage.MemoryStorage()
        self.limiter = strategies.MovingWindowRateLimiter(backend)

    def hit(self, username: str, address: str | None) -> None:
        """Record one attempt; raise 429 when the account or the address is over the limit."""
        keys = [("account", username.lower())]
        if address:
            keys.append(("address", address))
        for kind, value in keys:
            if not self.limiter.hit(self.limits[kind], "login", kind, value):
                raise TooManyRequests("Too many login attempts; try again later",
                                      code="login_throttled", message_zh="登录尝试过多，请稍后再试",
                                      scope=kind)

    def reset(self) -> None:
        self.limiter.storage.reset()
