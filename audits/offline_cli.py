"""``ebid audit verify DIR``: check an exported audit log offline, with no server at all.

Exit codes: 0 valid, 1 invalid (tampering or a bad checkpoint or receipt), 2 unusable
input (a missing directory or file, an unparsable key). The export format is described
in :mod:`audits.verify`. The command is exported as ``verify``, a ``click.Command``, for
the application's CLI group to attach.
"""

from __future__ import annotations

from pathlib import Path
import click

from audits.verify import ENTRIES_FILE, LARGE_LOG, Report, count_entries, verify_export
from crypto.canonical import b64encode

EXIT_CODES = {"valid": 0, "invalid": 1, "unusable": 2}


def _print_report(report: Report, directory: Path) -> None:
    if report.verdict == "valid":
        root = b64encode(report.root) if report.root is not None else "-"
        click.echo(f"VALID: {directory} matches every signed checkpoint and receipt given.")
        click.echo(f"  latest checkpoint: size {report.size}, root {root}")
    elif report.verdict == "invalid":
        click.echo(f"INVALID: {directory} failed verification; see the problems below.")
    else:
        click.echo("UNUSABLE: the input could not be read, so nothing was verified.")
    click.echo(f"  entries: {report.entries}, checkpoints verified: {report.checkpoints}, "
               f"receipts given: {report.receipts}")
    for problem in report.problems:
        click.echo(f"  - {problem.code}: {problem.message}")
    if report.omitted_problems:
        click.echo(f"  ... and {report.omitted_problems} more problems")
    for warning in report.warnings:
        click.echo(f"  warning: {warning}", err=True)


def _run(directory: Path, checkpoints: list[Path], receipts: list[Path],
         log_key: Path | None) -> Report:
    """Verify, drawing a progress bar on stderr when the log is large."""
    try:
        total = count_entries(directory) if (directory / ENTRIES_FILE).is_file() else 0
    except OSError:
        total = 0  # verify_export reports the unreadable file
    if total <= LARGE_LOG:
        return verify_export(directory, checkpoints, receipts, log_key=log_key)
    stderr = click.get_text_stream("stderr")
    with click.progressbar(length=total, label="Verifying entries", file=stderr) as bar:
        seen = 0

        def progress(count: int) -> None:
            nonlocal seen
            bar.update(count - seen)
            seen = count

        return verify_export(directory, checkpoints, receipts, progress=progress, log_key=log_key)


@click.command("verify")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(path_type=Path),
              help="A signed checkpoint you hold (e.g. pinned by a supervisor); repeatable.")
@click.option("--receipt", "receipts", multiple=True, type=click.Path(path_type=Path),
              help="A signed bid receipt to check against the log; repeatable.")
@click.option("--log-key", type=click.Path(path_type=Path), default=None,
              help="The log verifier key line you hold; keys/log.key must equal it.")
@click.pass_context
def verify(ctx: click.Context, directory: Path, checkpoints: tuple[Path, ...],
           receipts: tuple[Path, ...], log_key: Path | None) -> None:
    """Verify an exported audit log in DIRECTORY against its checkpoints and receipts."""
    report = _run(directory, list(checkpoints), list(receipts), log_key)
    _print_report(report, directory)
    ctx.exit(EXIT_CODES[report.verdict])
