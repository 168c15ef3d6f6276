"""The server's opening of sealed bids, through the platform's own services, in process.

A fresh SQLite platform (seeded as for item 1, no server) gets a tender under the 3-of-4
policy, the bids (stored through the submission services exactly as the upload endpoint
stores them), then the deadline passes (``now`` is an argument of every service, so no
clock is touched): the tender closes, three custodians release their shares (signed
releases, checked against the closing checkpoint), the agent starts the opening, and
``bidding.opening.decrypt`` runs the opener over every listed file, storing each result
and logging it. That last call is what is timed: it is the whole of the server's work in
``POST /api/v1/tenders/{T}/opening/decrypt`` but the HTTP round trip.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa

from bench.core import Context
from bench.platform import Platform, _schedule
from bench.sealkit import Cast, SealedFile, now_text, seal_bid_forms, seal_file


@dataclass
class Opened:
    seconds: float          # opening.decrypt, commit included
    files: int
    opened: int
    bytes: int
    releases_s: float       # the three custodians' release batches, for the record
    submit_s: float


def _chunks(path: Path | None, data: bytes | None, size: int = 1 << 20) -> Iterator[bytes]:
    if data is not None:
        yield data
        return
    assert path is not None
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


# Bidders per lot. The opening is per file, so 1,000 bids in 20 lots of 50 measure the same
# opener as one lot of 1,000, while the closing's per-lot work (collusion indicators, once
# O(bidders^3) and hours for 1,000 bidders) stays out of this item: item 1 times the
# closing of one big lot on its own, in a child process with a budget.
PER_LOT = 50


def run_ceremony(ctx: Context, name: str, bidders: int, big_file: Path | None = None) -> Opened:
    """Open ``bidders`` sealed bid forms (in lots of ``PER_LOT``; and, with ``big_file``,
    bidder 0's sealed large file as a second file of its bid) and time the server's opener
    over all of them."""
    from bidding import closing, opening, releases, submission
    from bidding import policy as policy_service
    from bidding.models import OpeningResult, Submission
    from core.db import db
    from core.runtime import runtime
    from crypto.manifest import make_release, manifest_shares
    from crypto.shares import open_share
    from crypto.signing import RELEASE, sign_object
    from trading import accounts, projects
    from trading.models import Project, User
    from trading.schemas import ProjectCreate

    cast = Cast.make(bidders)
    with Platform(ctx, "sqlite", name, cast=cast, bidders=bidders) as plat:
        app = plat.app()
        with app.app_context():
            session = db.session
            rt = runtime()

            def actor(username: str) -> Any:
                user = session.execute(sa.select(User).where(User.username == username)).scalar_one()
                return accounts.actor_for(user)

            now = datetime.now(timezone.utc).replace(microsecond=0)
            agent = actor("agent1")
            lots = [str(1 + k // PER_LOT) for k in range(bidders)]
            lot_codes = sorted(set(lots), key=int)
            body = ProjectCreate().load({
                "title": "县城区道路改造工程施工（开标）", "domain": "construction", "procedure": "open_tender",
                "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
                "estimate": "12000000.00", "budget": "12000000.00", "max_price": "12000000.00",
                "schedule": _schedule(now), "lots": [{"code": code, "title": f"施工 {code}"} for code in lot_codes]})
            project = projects.create_project(session, agent, now, body)
            session.commit()
            pid = project.id
            policy_service.set_policy(session, agent, now, pid, cast.policy_body(str(pid)))
            projects.publish_project(session, agent, now, pid, rt.rulebook)
            session.commit()
            policy_bytes = policy_service.published_policy(session, agent, pid)
            tender = str(pid)

            bids: list[tuple[int, SealedFile, Path | None]] = [
                (i, bid, None) for i, bid in enumerate(seal_bid_forms(
                    policy_bytes, tender, [(Cast.bidder_code(i), cast.bidder_keys[i], f"{9_000_000 + i}.00")
                                           for i in range(bidders)], now_text(), lots))]
            if big_file is not None:
                sealed_path = big_file.with_name(big_file.stem + ".ceremony.ebid")
                bids.append((0, seal_file(str(big_file), str(sealed_path), policy_bytes, tender, Cast.bidder_code(0),
                                          "proposal.bin", cast.bidder_keys[0], now_text()), sealed_path))

            ctx.log(f"opening: storing {len(bids):,} files through the submission services")
            t0 = time.perf_counter()
            limit = rt.config["EBID_MAX_UPLOAD_BYTES"]
            for i, bid, path in bids:
                who = actor(f"bidder-{Cast.bidder_code(i)}")
                started = submission.start_submission(session, who, now, pid, bid.envelope, limit)
                session.commit()
                pending = submission.find_upload(session, who, now, pid, started.manifest_sha256)
                session.commit()
                received = submission.receive_file(rt.blobs, _chunks(path, bid.ebid), pending.size)
                submission.check_file(session, pending, received)
                submission.store_submission(session, who, lambda: now, pending, received, None)
                session.commit()
                if path is not None:
                    path.unlink()
            submit_s = time.perf_counter() - t0

            project = session.get(Project, pid)
            after = project.bid_deadline + timedelta(seconds=1)
            signer = closing.LogSigner(origin=rt.log_origin, key=rt.keys.log_key)
            closed = closing.ensure_closed(session, pid, after, signer, trigger="bench")
            session.commit()
            assert closed is not None, "the tender did not close at its deadline"
            from audits import log as audit_log
            root = audit_log.root_at(session, closed.checkpoint_size).hex()
            listed = {s.manifest_sha256: s for s in session.execute(
                sa.select(Submission).where(Submission.project_id == pid)).scalars()}
            t0 = time.perf_counter()
            for custodian in cast.custodians[:3]:
                envelopes = []
                for entry in closed.files:
                    sub = listed[entry["manifest_sha256"]]
                    h = bytes.fromhex(sub.header_sha256)
                    sealed_share = manifest_shares(sub.manifest)[custodian.i][0]
                    share = open_share(custodian.x25519, h, custodian.i, sealed_share)
                    payload = make_release(tender, sub.lot_code, sub.bidder_code, sub.file, sub.header_sha256,
                                           custodian.i, share, closed.checkpoint_size, root)
                    envelopes.append(sign_object("release", payload, custodian.signing, RELEASE))
                releases.accept_releases(session, actor(f"custodian{custodian.i}"), after, project, envelopes)
                session.commit()
            releases_s = time.perf_counter() - t0

            opening.start_opening(session, agent, after, pid)
            session.commit()
            ctx.log(f"opening: the server's opener over {len(closed.files):,} files")
            t0 = time.perf_counter()
            opening.decrypt(session, agent, after, pid, rt.blobs)
            session.commit()
            seconds = time.perf_counter() - t0
            results = list(session.execute(sa.select(OpeningResult.status, OpeningResult.cause)
                                           .where(OpeningResult.project_id == pid)).all())
            opened = sum(1 for status, _ in results if status == "opened")
            if opened != len(closed.files):
                causes = sorted({str(c) for s, c in results if s != "opened"})
                raise RuntimeError(f"opened {opened} of {len(closed.files)} files: {causes}")
            total = sum(s.size for s in listed.values())
            db.session.remove()
            db.engine.dispose()
    return Opened(seconds, len(closed.files), opened, total, releases_s, submit_s)


def available() -> str | None:
    """None when the services the ceremony calls exist, else why not."""
    import importlib
    try:
        for name, attrs in (("bidding.opening", ("start_opening", "decrypt")),
                            ("bidding.releases", ("accept_releases",)),
                            ("bidding.closing", ("ensure_closed", "LogSigner")),
                            ("bidding.submission", ("start_submission", "find_upload", "receive_file",
                                                    "check_file", "store_submission"))):
            module = importlib.import_module(name)
            missing = [a for a in attrs if not hasattr(module, a)]
            if missing:
                return f"{name} lacks {', '.join(missing)}"
    except ImportError as exc:
        return f"the opening services do not import: {exc}"
    return None

