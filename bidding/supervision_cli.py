"""``ebid supervise scan``: print every yellow and red card and raise the new red ones.

The cards are derived from the data and the clock's ``now`` exactly as the API derives
them; this command only raises alerts (a ``supervision.card`` log entry per red card not
raised before). Nothing becomes late, or stops being late, because it ran or did not.
"""
from __future__ import annotations

from datetime import timedelta

import click

from core.cli_support import with_app


@click.group("supervise")
def supervise() -> None:
    """Electronic supervision (电子监察) for operators and supervisors."""


@supervise.command("scan")
@click.option("--project", "project_id", type=int, default=None, help="Only this project.")
@click.option("--quiet", is_flag=True, help="Print only the new red cards and the summary.")
@with_app
def scan(project_id: int | None, quiet: bool) -> None:
    """Print the cards of every published project; log each new red card once."""
    from audits import supervision_rules as sr
    from bidding import supervision
    from core.clock import format_instant
    from core.db import db
    from core.runtime import runtime

    rt = runtime()
    now = rt.clock.now()
    yellow = timedelta(hours=rt.config["EBID_YELLOW_CARD_HOURS"])
    result = supervision.scan(db.session, now, yellow, project_id=project_id,
                              calendar=getattr(rt.rulebook, "calendar", None))
    db.session.commit()
    raised = {card.key for card in result.raised}
    for card in result.cards:
        if quiet and card.key not in raised:
            continue
        due = format_instant(card.due_at) if card.due_at else "-"
        flag = " NEW" if card.key in raised else ""
        provisional = " (provisional calendar)" if card.provisional else ""
        click.echo(f"{card.severity.upper():6} project {card.project_id} {card.rule}/{card.step}"
                   f"{' ' + card.subject if card.subject else ''} due {due}{provisional}{flag}: {card.message_en}")
    reds = sum(1 for c in result.cards if c.severity == sr.RED)
    click.echo(f"{format_instant(now)}: {reds} red, {len(result.cards) - reds} yellow card(s); "
               f"{len(result.raised)} new red card(s) logged")
    if result.next_check is not None:
        click.echo(f"next check: {format_instant(result.next_check)}")


def attach(cli: click.Group) -> None:
    """Add ``ebid supervise`` to the root group."""
    if "supervise" not in cli.commands:
        cli.add_command(supervise)


__all__ = ["supervise", "scan", "attach"]
