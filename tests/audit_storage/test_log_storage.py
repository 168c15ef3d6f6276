"""The audit log in the database: one order with no gaps, checkpoints per transaction,
append-only storage, the §7 endpoints, and tampering caught by `ebid audit check`."""
from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import sqlalchemy as sa

from audits import log, merkle
from audits.models import Checkpoint, LogEntry
from audits.notes import parse_and_verify_checkpoint, verifier_key_line
from audits.storage_check import check_storage
from core.db import db
from core.runtime import runtime


def _append_many(app, clock, n: int, *, per_transaction: int = 1) -> None:
    with app.app_context():
        for start in range(0, n, per_transaction):
            for i in range(start, min(n, start + per_transaction)):
                log.append(db.session, now=clock.now(), actor="system", action="test.event",
                           subject=f"thing:{i}", data={"n": i})
            db.session.commit()
            clock.advance(milliseconds=1)


def _key_line(app) -> str:
    with app.app_context():
        rt = runtime()
        return verifier_key_line(rt.log_origin, rt.keys.log_public)


def test_appends_are_contiguous_and_every_commit_signs_a_checkpoint(app, clock, backend):
    _append_many(app, clock, 7, per_transaction=2)
    with app.app_context():
        indices = db.session.execute(sa.select(LogEntry.index).order_by(LogEntry.index)).scalars().all()
        assert indices == list(range(7))
        sizes = db.session.execute(sa.select(Checkpoint.size).order_by(Checkpoint.size)).scalars().all()
        assert sizes == [2, 4, 6, 7]
        latest = log.latest_checkpoint(db.session)
        signed = parse_and_verify_checkpoint(latest.note, _key_line(app))
        assert signed.size == 7 and signed.root == log.root_at(db.session, 7)
        assert check_storage(db.session, _key_line(app)).ok


def test_a_rolled_back_change_leaves_no_entry(app, clock, backend):
    with app.app_context():
        log.append(db.session, now=clock.now(), actor="system", action="test.event", subject="x", data={})
        db.session.rollback()
        assert log.size(db.session) == 0
        assert db.session.execute(sa.select(sa.func.count()).select_from(LogEntry)).scalar_one() == 0


@pytest.mark.parametrize("statement", [
    "UPDATE log_entries SET action = 'forged' WHERE {idx} = 0",
    "DELETE FROM log_entries WHERE {idx} = 1",
    "UPDATE checkpoints SET note = 'x'",
    "DELETE FROM log_nodes",
    "UPDATE log_head SET size = 0",
])
def test_storage_refuses_update_and_delete_on_log_rows(app, clock, backend, statement):
    _append_many(app, clock, 3)
    with app.app_context():
        idx = '"index"'
        with pytest.raises(sa.exc.DBAPIError):
            db.session.execute(sa.text(statement.format(idx=idx)))
            db.session.commit()
        db.session.rollback()
        assert check_storage(db.session, _key_line(app)).ok


def _drop_guards(backend: str) -> list[str]:
    if backend == "postgresql":
        return ["DROP TRIGGER log_entries_append_only ON log_entries"]
    return ["DROP TRIGGER log_entries_no_update", "DROP TRIGGER log_entries_no_delete"]


@pytest.mark.fresh_db
@pytest.mark.parametrize("attack", ["edit", "delete", "reorder"])
def test_rows_changed_behind_the_platforms_back_are_caught(app, clock, backend, attack, tmp_path):
    from click.testing import CliRunner
    from audits.offline_cli import verify

    _append_many(app, clock, 6)
    with app.app_context():
        for statement in _drop_guards(backend):  # an attacker with database rights
            db.session.execute(sa.text(statement))
        idx = '"index"'
        if attack == "edit":
            row = db.session.get(LogEntry, 2)
            forged = bytes(row.entry).replace(b"thing:2", b"thing:9")
            db.session.execute(sa.text(f"UPDATE log_entries SET entry = :e, leaf_hash = :h WHERE {idx} = 2"),
                               {"e": forged, "h": merkle.leaf_hash(forged)})
        elif attack == "delete":
            db.session.execute(sa.text(f"DELETE FROM log_entries WHERE {idx} = 5"))
        else:
            a, b = db.session.get(LogEntry, 1), db.session.get(LogEntry, 3)
            ea, eb = bytes(a.entry), bytes(b.entry)
            db.session.execute(sa.text(f"UPDATE log_entries SET entry = :e, leaf_hash = :h WHERE {idx} = 1"),
                               {"e": eb, "h": merkle.leaf_hash(eb)})
            db.session.execute(sa.text(f"UPDATE log_entries SET entry = :e, leaf_hash = :h WHERE {idx} = 3"),
                               {"e": ea, "h": merkle.leaf_hash(ea)})
        db.session.commit()
        db.session.expire_all()
        result = check_storage(db.session, _key_line(app))
        assert not result.ok, attack
    # The offline verifier, given the export, says invalid too.
    out = tmp_path / "export"
    _export(app, out)
    run = CliRunner().invoke(verify, [str(out)])
    assert run.exit_code == 1, run.output


def _export(app, directory) -> None:
    from audits.models import Checkpoint as C
    from audits.verify import export_line, receipt_key_file
    from crypto.canonical import b64encode
    with app.app_context():
        rt = runtime()
        (directory / "checkpoints").mkdir(parents=True)
        (directory / "keys").mkdir()
        with open(directory / "entries.jsonl", "wb") as fh:
            for index, entry in db.session.execute(sa.select(LogEntry.index, LogEntry.entry).order_by(LogEntry.index)):
                fh.write(export_line(index, bytes(entry)))
        for cp in db.session.execute(sa.select(C)).scalars():
            (directory / "checkpoints" / f"{cp.size}.txt").write_text(cp.note)
        (directory / "keys" / "log.key").write_text(_key_line(app) + "\n")
        receipt_key_file(directory, rt.keys.receipt_kid).write_text(b64encode(rt.keys.receipt_public))


def test_entries_endpoint_bounds(app, client, clock, backend):
    _append_many(app, clock, 5)
    resp = client.get("/api/v1/audit/entries?start=5&end=9")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "start_beyond_end"
    page = client.get("/api/v1/audit/entries?start=1&end=1000000").get_json()["data"]
    assert [e["index"] for e in page] == [1, 2, 3, 4]
    with app.app_context():
        assert base64.b64decode(page[0]["leaf"]) == bytes(db.session.get(LogEntry, 1).entry)


def test_huge_range_is_clipped_to_a_page(app, client, clock, backend):
    from audits.api import PAGE_LIMIT
    _append_many(app, clock, PAGE_LIMIT + 5, per_transaction=PAGE_LIMIT + 5)
    page = client.get(f"/api/v1/audit/entries?start=0&end={10 ** 9}").get_json()["data"]
    assert len(page) == PAGE_LIMIT and page[-1]["index"] == PAGE_LIMIT - 1


def test_proof_endpoints_refuse_out_of_range(app, client, clock, backend):
    _append_many(app, clock, 4)
    assert client.get("/api/v1/audit/proof/inclusion?index=4&size=4").get_json()["error"]["code"] == "index_beyond_size"
    assert client.get("/api/v1/audit/proof/inclusion?index=0&size=9").get_json()["error"]["code"] == "size_beyond_log"
    assert client.get("/api/v1/audit/proof/consistency?first=3&second=2").status_code == 400
    proof = client.get("/api/v1/audit/proof/inclusion?index=2&size=4").get_json()["data"]
    path = [base64.b64decode(p) for p in proof["path"]]
    with app.app_context():
        leaf = bytes(db.session.get(LogEntry, 2).leaf_hash)
        root = log.root_at(db.session, 4)
    assert merkle.verify_inclusion(leaf, 2, 4, path, root)
    assert not merkle.verify_inclusion(leaf, 2, 4, path + [path[0]], root)  # extra hash
    assert not merkle.verify_inclusion(leaf, 2, 4, path[:-1], root)  # missing hash


def test_checkpoint_by_size_and_keys(app, client, clock, backend):
    _append_many(app, clock, 3)
    assert client.get("/api/v1/audit/checkpoint?size=2").status_code == 200
    assert client.get("/api/v1/audit/checkpoint?size=99").status_code == 404
    key_line = client.get("/api/v1/audit/key").data.decode().strip()
    note = client.get("/api/v1/audit/checkpoint").data.decode()
    assert parse_and_verify_checkpoint(note, key_line).size == 3
    receipt = client.get("/api/v1/audit/key?kind=receipt").data.decode().strip()
    assert len(base64.b64decode(receipt)) == 32 and receipt != key_line


def test_supervisor_only_detail_refused_to_a_bidder_and_logged(app, client, clock, world, backend):
    bidder = world.user("bidder7", "bidder")
    supervisor = world.user("super7", "supervisor")
    with app.app_context():
        appended = log.append(db.session, now=clock.now(), actor="bidder7", action="bid.submitted",
                              subject="tender:1", data={"file": "bid-form.json"}, hidden=True)
        db.session.commit()
        before = log.size(db.session)
    refused = client.get(f"/api/v1/audit/entries/{appended.index}/detail", headers=bidder.headers)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "detail_forbidden"
    with app.app_context():
        last = db.session.get(LogEntry, before)
        assert last is not None and last.action == "audit.detail_refused"
    ok = client.get(f"/api/v1/audit/entries/{appended.index}/detail", headers=supervisor.headers)
    assert ok.status_code == 200 and ok.get_json()["data"]["detail"]["subject"] == "tender:1"


def test_hidden_entries_show_nothing_before_closing(app, client, clock, backend):
    with app.app_context():
        appended = log.append(db.session, now=clock.now(), actor="bidder1", action="bid.submitted",
                              subject="tender:1", data={"price": "1"}, hidden=True)
        db.session.commit()
    leaf = client.get(f"/api/v1/audit/entries?start={appended.index}&end={appended.index + 1}").get_json()["data"][0]
    entry = base64.b64decode(leaf["leaf"])
    assert b"bidder1" not in entry and b'"actor":"hidden"' in entry and b'"data":{}' in entry


def test_rotated_receipt_key_is_kept_for_verification(tmp_path):
    from audits.keys import ensure_keys, load_keys, rotate_receipt_key
    ensure_keys(tmp_path)
    old_kid = load_keys(tmp_path).receipt_kid
    new_kid = rotate_receipt_key(tmp_path)
    keys = load_keys(tmp_path)
    assert keys.receipt_kid == new_kid != old_kid and old_kid in keys.retired_receipt_keys


def runtime_kid(app) -> str:
    with app.app_context():
        return runtime().keys.receipt_kid


def test_key_files_are_owner_only(app, backend):
    import os
    import stat
    folder = os.path.join(app.instance_path, "keys")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in os.listdir(folder):
        if name.endswith(".pem") or name == "secret.key":
            assert stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o600, name


@pytest.mark.parametrize("statement", [
    "INSERT OR REPLACE INTO log_entries (\"index\", at, action, subject, entry, leaf_hash) "
    "SELECT \"index\", at, 'forged', subject, entry, leaf_hash FROM log_entries WHERE \"index\" = 0",
    "REPLACE INTO checkpoints (size, root, note, issued_at) SELECT size, root, 'forged', issued_at FROM checkpoints",
    "UPDATE log_head SET size = size + 5",
])
def test_sqlite_replace_and_head_jumps_are_refused(app, clock, backend, statement):
    if backend != "sqlite":
        pytest.skip("REPLACE is SQLite syntax; PostgreSQL's ON CONFLICT UPDATE fires the UPDATE trigger")
    _append_many(app, clock, 3)
    with app.app_context():
        with pytest.raises(sa.exc.DBAPIError):
            db.session.execute(sa.text(statement))
            db.session.commit()
        db.session.rollback()
        assert check_storage(db.session, _key_line(app)).ok


def test_audit_query_parameters_are_validated(app, client, clock, backend):
    _append_many(app, clock, 3)
    for url in ("/api/v1/audit/entries?start=-1&end=3", "/api/v1/audit/entries?start=-3&end=-1",
                "/api/v1/audit/proof/inclusion?index=-1&size=3",
                "/api/v1/audit/proof/consistency?first=-1&second=3", "/api/v1/audit/key?kind=bogus",
                "/api/v1/audit/key?kind=receipt&kid=xyz"):
        resp = client.get(url)
        assert resp.status_code == 422, url
        assert resp.get_json()["error"]["code"] == "validation_failed"


def test_log_key_must_differ_from_receipt_keys(app, backend):
    import os
    from audits.keys import load_keys
    keys_dir = os.path.join(app.instance_path, "keys")
    current = open(os.path.join(keys_dir, "receipt.current")).read().strip()
    with pytest.raises(ValueError):
        load_keys(app.instance_path, log_key_file=os.path.join(keys_dir, f"receipt-{current}.pem"))
