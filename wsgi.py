"""The application factory and the `ebid` command line.

``gunicorn 'wsgi:create_app()'`` serves the platform. ``create_app`` reads configuration
(defaults, environment, override), wires extensions and blueprints, and never migrates a
database or calls the network.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Mapping

import click
from flask import Flask, request
from sqlalchemy import event

from core.config import load_config
from core.db import db, engine_options


def import_models() -> None:
    """Import every package's models so one metadata knows all tables."""
    import audits.models  # noqa: F401
    import trading.models  # noqa: F401
    try:
        import bidding.models  # noqa: F401
    except ModuleNotFoundError as exc:  # the package may not have models yet
        if exc.name != "bidding.models":
            raise
    for optional in ("trading.experts_models", "audits.supervision_models", "bidding.award_models"):
        try:
            __import__(optional)
        except ModuleNotFoundError as exc:
            if exc.name != optional:
                raise


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app. ``config`` overrides the environment (tests pass a clock here
    as ``EBID_CLOCK_OBJECT``)."""
    from pathlib import Path

    from audits.keys import ensure_keys, load_keys
    from core import web
    from core.blobs import FolderBlobStore
    from core.clock import clock_from_spec
    from core.runtime import Runtime

    settings = load_config(config)
    app = Flask(__name__, instance_path=settings["EBID_INSTANCE_PATH"], static_folder=None)
    app.json = web.StrictJSONProvider(app)
    # Ids in paths are database integers: larger ones are simply not found (not a 500).
    app.url_map.converters["int"] = web.BoundedIntConverter
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    # Keys normally exist already (`ebid serve` creates them before gunicorn forks);
    # creating them here is safe because creation is exclusive per file.
    ensure_keys(app.instance_path)
    keys = load_keys(app.instance_path, log_key_file=settings["EBID_LOG_KEY_FILE"],
                     receipt_key_file=settings["EBID_RECEIPT_KEY_FILE"],
                     secret_key=settings["EBID_SECRET_KEY"])
    clock = settings.get("EBID_CLOCK_OBJECT") or clock_from_spec(
        settings["EBID_CLOCK"], testing=bool(settings["EBID_TESTING"]))
    app.config.update(
        SECRET_KEY=keys.secret_key,
        SQLALCHEMY_DATABASE_URI=settings["EBID_DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings["EBID_DATABASE_URL"]),
        MAX_CONTENT_LENGTH=settings["EBID_MAX_JSON_BYTES"],
        JSON_SORT_KEYS=False,
        API_TITLE="ebid — public-resource trading platform",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        TESTING=bool(settings["EBID_TESTING"]),
    )
    app.config["EBID"] = settings
    import_models()
    db.init_app(app)
    app.extensions["ebid"] = Runtime(clock=clock, keys=keys,
                                     blobs=FolderBlobStore(settings["EBID_BLOB_DIR"]),
                                     config=settings)
    _install_checkpoint_hook(app)
    _register_blueprints(app)
    # After the blueprints: flask-smorest's Api registers its own HTTPException handler,
    # and the platform's one error shape must win.
    web.register_error_handlers(app)
    _install_schema_guard(app)
    _install_client_timeout(app)
    _install_security_headers(app)
    return app


_HOOK_INSTALLED = False


def _install_checkpoint_hook(app: Flask) -> None:
    """Sign a checkpoint before any transaction that appended to the log commits.

    The listener is on flask-sqlalchemy's session class, shared by every app in the
    process, so it is installed once and signs with the keys of the app in context.
    """
    global _HOOK_INSTALLED
    if _HOOK_INSTALLED:
        return
    from flask import current_app

    from audits import log as audit_log

    with app.app_context():
        session_cls = db.session.session_factory.class_

    @event.listens_for(session_cls, "before_commit")
    def _checkpoint(session: Any) -> None:
        if not audit_log.needs_checkpoint(session):
            return
        rt = current_app.extensions["ebid"]
        now = session.info.get("ebid_now") or rt.clock.now()
        audit_log.issue_checkpoint(session, origin=rt.log_origin, log_key=rt.keys.log_key, now=now)
        audit_log.mark_checkpointed(session)

    @event.listens_for(session_cls, "after_rollback")
    def _forget(session: Any) -> None:
        audit_log.mark_checkpointed(session)

    _HOOK_INSTALLED = True


def _register_blueprints(app: Flask) -> None:
    from flask_smorest import Api

    from core import docs
    from core.web import StrictParser

    api = Api(app, spec_kwargs={"info": {"description": "Five-in-one public-resource trading: "
                                         "sealed bids, timed opening, expert draw, supervision."}})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                                   "bearerFormat": "JWT"})
    app.extensions["ebid_api"] = api
    from flask_smorest import Blueprint as SmorestBlueprint
    SmorestBlueprint.ARGUMENTS_PARSER = StrictParser()
    from trading import api_accounts, api_projects
    api_accounts.register(api)
    api_projects.register(api)
    for optional in ("audits.api", "bidding.api", "trading.api_experts", "audits.api_supervision"):
        try:
            module = __import__(optional, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != optional:
                raise
            continue
        module.register(api)
    docs.register(app)


def _install_schema_guard(app: Flask) -> None:
    """503 with the error shape until the database is migrated (checked until it is)."""
    from core.errors import ServiceUnavailable
    from core.migrate import is_current

    @app.before_request
    def _schema_ok() -> None:
        rt = app.extensions["ebid"]
        if rt.schema_ok or (request.path.startswith("/api/v1/docs")
                            or request.path == "/api/v1/openapi.json"):
            return
        if is_current(db.engine):
            rt.schema_ok = True
            return
        raise ServiceUnavailable("Database not migrated: run `ebid db upgrade`",
                                 code="database_not_migrated",
                                 message_zh="数据库尚未迁移：请运行 `ebid db upgrade`")


def _install_client_timeout(app: Flask) -> None:
    """Bound how long a client may stall while sending its body: gunicorn's --timeout does
    not cover a gthread worker thread reading a request, so a few stalled clients could
    hold every thread. A receive timeout on the socket turns a stall into an error."""
    timeout = app.config["EBID"]["EBID_CLIENT_TIMEOUT_SECONDS"]

    @app.before_request
    def _bound_reads() -> None:
        sock = request.environ.get("gunicorn.socket")
        if sock is not None and timeout:
            sock.settimeout(timeout)


def _install_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'")
        resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return resp


# --------------------------------------------------------------------------- the CLI

@click.group(help="ebid: the trading platform's command line for operators, bidders, "
                  "custodians and supervisors.")
def cli() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@cli.command("serve", help="Migrate, create the instance keys, and serve with gunicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Seed demo data into an empty database first.")
def serve(host: str, port: int, workers: int, threads: int, demo: bool) -> None:
    from audits.keys import ensure_keys
    from core.config import load_config
    from core.migrate import upgrade
    from trading.cli import prepare_instance
    settings = load_config()
    prepare_instance(settings)
    upgrade(settings["EBID_DATABASE_URL"])
    # Keys before the fork: every worker must sign with the same keys.
    ensure_keys(settings["EBID_INSTANCE_PATH"])
    if demo:
        from bidding.demo import seed_demo
        app = create_app()
        with app.app_context():
            seeded = seed_demo(app)
        if seeded:
            click.echo("demo users (username password role):")
            for username, password, role in seeded:
                click.echo(f"  {username} {password} {role}")
        else:
            click.echo("database not empty: demo data not seeded")
    url = f"http://{host}:{port}"
    click.echo(f"serving at {url}  (API docs: {url}/api/v1/docs/)", err=False)
    sys.stdout.flush()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(threads), "--timeout", "120",
            "--access-logfile", "-", "wsgi:create_app()"]
    os.execvp(args[0], args)


def _attach_commands() -> None:
    from trading import cli as trading_cli
    trading_cli.attach(cli)
    for optional in ("bidding.offline_cli", "bidding.cli", "audits.cli"):
        try:
            module = __import__(optional, fromlist=["attach"])
        except ModuleNotFoundError as exc:
            if exc.name != optional:
                raise
            continue
        if hasattr(module, "attach"):
            module.attach(cli)


_attach_commands()
