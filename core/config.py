"""Configuration: defaults, then the environment, then an explicit override.

Every setting the operator may change is an ``EBID_*`` environment variable; the README
has the table. Nothing here touches the network or the database.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

DEFAULT_INSTANCE = Path.cwd() / "instance"

# name -> (default, parser). Defaults that depend on the instance folder are filled later.
_ENV: dict[str, tuple[Any, Any]] = {
    "EBID_DATABASE_URL": (None, str),
    "EBID_INSTANCE_PATH": (None, str),
    "EBID_BLOB_DIR": (None, str),
    "EBID_REDIS_URL": (None, str),
    "EBID_SECRET_KEY": (None, str),
    "EBID_CLOCK": ("system", str),
    "EBID_TESTING": (False, lambda v: v == "1"),
    "EBID_LOG_ORIGIN": (None, str),
    "EBID_MAX_JSON_BYTES": (1024 * 1024, int),
    "EBID_MAX_UPLOAD_BYTES": (2 * 1024 ** 3, int),
    "EBID_TOKEN_TTL_SECONDS": (900, int),
    "EBID_RULEBOOK_OVERRIDES": (None, str),
    "EBID_YELLOW_CARD_HOURS": (72, int),
    "EBID_RECEIPT_KEY_FILE": (None, str),
    "EBID_LOG_KEY_FILE": (None, str),
    "EBID_PUBLIC_URL": (None, str),
    "EBID_LOGIN_RATE_LIMIT": ("10 per minute", str),
    "EBID_LOGIN_ADDRESS_RATE_LIMIT": ("300 per minute", str),
    "EBID_CHECKPOINT_EVERY": (1, int),
    "EBID_CLIENT_TIMEOUT_SECONDS": (30, int),
    "EBID_MIN_UPLOAD_BYTES_PER_SECOND": (65536, int),
}


def load_config(override: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resolve the settings: defaults < environment < ``override``."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {name: default for name, (default, _) in _ENV.items()}
    for name, (_, parse) in _ENV.items():
        if name in env and env[name] != "":
            config[name] = parse(env[name])
    if override:
        config.update(override)
    instance = Path(config["EBID_INSTANCE_PATH"] or DEFAULT_INSTANCE).resolve()
    config["EBID_INSTANCE_PATH"] = str(instance)
    if not config["EBID_DATABASE_URL"]:
        config["EBID_DATABASE_URL"] = f"sqlite:///{instance / 'ebid.sqlite3'}"
    if not config["EBID_BLOB_DIR"]:
        config["EBID_BLOB_DIR"] = str(instance / "blobs")
    if not config["EBID_LOG_ORIGIN"]:
        config["EBID_LOG_ORIGIN"] = "ebid.local/log"
    return config
