"""The draw's commands: the supervisor's ``ebid draw commit`` / ``reveal``, and
``ebid experts verify-draw`` against a live server (exit 0 match, 1 mismatch, 2 unusable)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from click.testing import CliRunner

from tests.experts.conftest import LOT


def run(*args: str) -> Any:
    from wsgi import cli
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_commit_then_reveal_on_the_supervisors_machine(tmp_path):
    from trading.draw import commitment
    secret_file = tmp_path / "draw-1.secret"
    result = run("draw", "commit", "--secret-file", str(secret_file))
    assert result.exit_code == 0, result.output
    printed = result.output.strip()
    assert len(printed) == 64 and (secret_file.stat().st_mode & 0o777) == 0o600
    result = run("draw", "reveal", "--secret-file", str(secret_file), "--commitment", printed)
    assert result.exit_code == 0
    assert commitment(bytes.fromhex(result.output.strip())) == printed
    assert run("draw", "reveal", "--secret-file", str(secret_file), "--commitment", "0" * 64).exit_code == 1
    assert run("draw", "commit", "--secret-file", str(secret_file)).exit_code == 2  # never overwritten
    (tmp_path / "short").write_text("abcd\n")
    assert run("draw", "reveal", "--secret-file", str(tmp_path / "short")).exit_code == 2


@contextmanager
def serving(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def publish(bench: Any, tender: int) -> None:
    from core.db import db
    from trading import expert_draw
    from trading.models import Project
    with bench.app.app_context():
        expert_draw.publish_committee(db.session, db.session.get(Project, tender), bench.clock.now())
        db.session.commit()


def tamper(bench: Any, tender: int, **values: Any) -> None:
    import sqlalchemy as sa

    from core.db import db
    from trading.experts_models import DrawRecord
    with bench.app.app_context():
        db.session.execute(sa.update(DrawRecord).where(DrawRecord.project_id == tender).values(**values))
        db.session.commit()


def test_verify_draw_matches_refuses_tampering_and_waits_for_publication(bench, backend):
    tender = bench.prepared()
    record = bench.drawn(tender, alternates=1)
    with serving(bench.app) as url:
        args = ("experts", "verify-draw", "--server", url, "--tender", str(tender))
        result = run(*args)
        assert result.exit_code == 2 and "not published" in result.output  # names still secret
        publish(bench, tender)
        result = run(*args, "--attempt", "1", "--lot", LOT)
        assert result.exit_code == 0, result.output
        assert result.output.strip().endswith("MATCH") and record["seed"] in result.output
        # A stored result that the inputs do not give is caught.
        groups = record["result"]["groups"]
        forged = {"groups": [list(reversed(groups[0])), groups[1]], "alternates": record["result"]["alternates"]}
        tamper(bench, tender, result=forged)
        result = run(*args)
        assert result.exit_code == 1 and "MISMATCH" in result.output
        # So are eligible lists other than the ones whose hash was logged before the reveal.
        lists = [ids[:-1] for ids in record["eligible_lists"][:-1]]
        lists.append(sorted({e for ids in lists for e in ids}))
        import json
        tamper(bench, tender, result=record["result"], eligible_lists=json.dumps(lists, separators=(",", ":")))
        result = run(*args)
        assert result.exit_code == 1 and "eligible lists" in result.output
        assert run("experts", "verify-draw", "--server", url, "--tender", "999").exit_code == 2
    assert run("experts", "verify-draw", "--server", "http://127.0.0.1:9", "--tender", "1").exit_code == 2
