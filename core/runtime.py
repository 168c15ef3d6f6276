"""What a running app holds besides configuration: its clock, keys, blob store, rulebook."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from audits.keys import PlatformKeys
from core.blobs import FolderBlobStore
from core.clock import Clock


@dataclass
class Runtime:
    clock: Clock
    keys: PlatformKeys
    blobs: FolderBlobStore
    config: dict[str, Any]
    schema_ok: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def log_origin(self) -> str:
        return self.config["EBID_LOG_ORIGIN"]

    @property
    def login_throttle(self) -> Any:
        """Per-account and per-address login limits (memory, or Redis when configured)."""
        if "login_throttle" not in self.extra:
            from core.ratelimit import LoginThrottle
            self.extra["login_throttle"] = LoginThrottle(self.config["EBID_LOGIN_RATE_LIMIT"],
                                                         self.config["EBID_LOGIN_ADDRESS_RATE_LIMIT"],
                                                         self.config.get("EBID_REDIS_URL"))
        return self.extra["login_throttle"]

    @property
    def rulebook(self) -> Any:
        """The rulebook in force (packaged data plus any override files)."""
        if "rulebook" not in self.extra:
            from trading.rulebook import load_rulebook
            paths = [p for p in (self.config.get("EBID_RULEBOOK_OVERRIDES") or "").split(":") if p]
            self.extra["rulebook"] = load_rulebook([__import__("pathlib").Path(p) for p in paths] or None)
        return self.extra["rulebook"]


def runtime() -> Runtime:
    """The current app's runtime (web and CLI layers only; services take values)."""
    return current_app.extensions["ebid"]
