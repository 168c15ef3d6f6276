"""The platform's one source of time.

The server clock is the only authority for deadlines (RULES.md I3). Everything that
needs the time receives a ``now`` (services) or a :class:`Clock` (the app, CLI commands);
nothing else reads the system time. Tests move time by setting a clock, never by sleeping.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

__all__ = [
    "Clock", "SystemClock", "FixedClock", "FileClock", "clock_from_spec", "clock_from_env",
    "parse_instant", "format_instant", "ClockConfigError",
]


class ClockConfigError(ValueError):
    """The clock specification is not usable."""


class Clock(Protocol):
    def now(self) -> datetime:  # pragma: no cover - protocol
        """Return the current instant as an aware UTC datetime."""


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that stands still until a test sets or advances it."""

    def __init__(self, instant: datetime | str) -> None:
        self._lock = threading.Lock()
        self._now = parse_instant(instant) if isinstance(instant, str) else _as_utc(instant)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime | str) -> None:
        """Move the clock to ``instant`` (forwards or back)."""
        with self._lock:
            self._now = parse_instant(instant) if isinstance(instant, str) else _as_utc(instant)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move the clock forward by ``delta`` (or ``timedelta(**kwargs)``)."""
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now = self._now + step
            return self._now


class FileClock:
    """A clock read from a file holding one RFC 3339 instant, re-read on every call.

    Lets a test move time for every gunicorn worker and every CLI command at once.
    Only allowed when ``EBID_TESTING=1``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def now(self) -> datetime:
        return parse_instant(self.path.read_text(encoding="utf-8").strip())

    def set(self, instant: datetime | str) -> None:
        text = instant if isinstance(instant, str) else format_instant(instant)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: readers never see half an instant


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ClockConfigError("naive datetimes are not allowed; give an offset")
    return instant.astimezone(timezone.utc)


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 instant with an explicit offset (``Z`` or ``+08:00``)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ClockConfigError(f"not an RFC 3339 instant: {text!r}") from exc
    return _as_utc(value)


def format_instant(instant: datetime) -> str:
    """Format as RFC 3339 UTC with milliseconds, e.g. ``2026-05-01T09:30:00.000Z``."""
    utc = _as_utc(instant)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def clock_from_spec(spec: str | None, *, testing: bool) -> Clock:
    """Build a clock from ``system`` or (testing only) ``file:PATH`` / ``fixed:INSTANT``."""
    spec = (spec or "system").strip()
    if spec == "system":
        return SystemClock()
    if not testing:
        raise ClockConfigError("EBID_CLOCK other than 'system' needs EBID_TESTING=1")
    if spec.startswith("file:"):
        return FileClock(spec[len("file:"):])
    if spec.startswith("fixed:"):
        return FixedClock(spec[len("fixed:"):])
    raise ClockConfigError(f"unknown clock {spec!r}; use system or file:PATH")


def clock_from_env() -> Clock:
    """The clock named by ``EBID_CLOCK`` (for CLI commands that run without the app)."""
    return clock_from_spec(os.environ.get("EBID_CLOCK"), testing=os.environ.get("EBID_TESTING") == "1")
