"""Operator commands: serve, db upgrade, users create."""
from __future__ import annotations

import os
import sys

import click

from core.cli_support import fail, with_app
from trading import experts_cli


@click.group("db", help="Database schema.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Migrate the database to the newest schema.")
def db_upgrade() -> None:
    from core.config import load_config
    from core.migrate import upgrade
    settings = load_config()
    prepare_instance(settings)
    upgrade(settings["EBID_DATABASE_URL"])
    click.echo(f"database at newest schema: {_redact(settings['EBID_DATABASE_URL'])}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def prepare_instance(settings: dict) -> None:
    from pathlib import Path
    Path(settings["EBID_INSTANCE_PATH"]).mkdir(parents=True, exist_ok=True)


@click.group("users", help="User accounts.")
def users_group() -> None:
    pass


@users_group.command("create", help="Create a user account.")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", "roles", multiple=True, required=True)
@click.option("--org", default=None, help="Organisation code.")
@click.option("--display-name", default=None)
@with_app
def users_create(username: str, password: str, roles: tuple[str, ...], org: str | None,
                 display_name: str | None) -> None:
    from core.actor import SYSTEM
    from core.db import db
    from core.errors import AppError
    from core.runtime import runtime
    from trading import accounts
    try:
        user = accounts.create_user(db.session, SYSTEM, runtime().clock.now(), username=username,
                                    password=password, roles=roles, org_code=org,
                                    display_name=display_name)
        db.session.commit()
    except AppError as exc:
        db.session.rollback()
        fail(exc.code, exc.message_en)
    click.echo(f"created user {user.username} ({', '.join(user.roles)})")


@users_group.command("create-org", help="Register an organisation.")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--kind", required=True)
@click.option("--region", default=None)
@with_app
def users_create_org(code: str, name: str, kind: str, region: str | None) -> None:
    from core.actor import SYSTEM
    from core.db import db
    from core.errors import AppError
    from core.runtime import runtime
    from trading import accounts
    try:
        accounts.create_organisation(db.session, SYSTEM, runtime().clock.now(), code=code,
                                     name=name, kind=kind, region=region)
        db.session.commit()
    except AppError as exc:
        db.session.rollback()
        fail(exc.code, exc.message_en)
    click.echo(f"created organisation {code}")


def attach(cli: click.Group) -> None:
    cli.add_command(db_group)
    cli.add_command(users_group)
    experts_cli.attach(cli)
