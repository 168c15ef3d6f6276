"""The opening ceremony (开标) of PROTOCOL §6 and rulebook C1–C6.

The opener re-checks every listed file against its receipt, checks each released share
against the digest the bidder signed, combines k of them, checks the commitment, decrypts
streaming and reads ``bid-form.json``. Each failure is recorded with whose fault it is
(bidder, custodian or platform) and its cause, and the opening goes on for the others.
Nothing decrypted is disclosed before the release window has passed or every share is in.

The opener functions at the top are pure (bytes, values and ``now`` in, values out) and
are unit-tested without a database; the services below take ``(session, actor, now, ...)``
and never read a request or a clock.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, BinaryIO, Callable, Literal, Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from audits import log
from bidding.models import OpeningObjection, OpeningResult, OpeningSession, Submission
from bidding.policy import tender_id
from bidding.releases import closing_of, listed_submissions, policy_of, releases_by_submission, subject_of
from core.actor import Actor
from core.clock import format_instant
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crypto.bidform import BID_FORM_NAME, BID_FORM_SIZE, parse_bid_form
from crypto.canonical import b64decode, canonical_json, sha256_hex
from crypto.errors import CryptoError
from crypto.opening import check_stored_file, fault_of, recover_bid_key
from crypto.policy import BIDDER
from crypto.sealed import header_hash, open_stream, read_header
from trading import projects
from trading.domain import Role
from trading.models import Organisation, Project

Fault = Literal["bidder", "custodian", "platform"]
FileStatus = Literal["opened", "pending", "failed"]
# C4: a bid that fails by its bidder's fault is treated as revoked (撤销), otherwise as
# withdrawn (撤回); both leave the opening going on for the others.
BidStatus = Literal["opened", "pending", "revoked", "withdrawn"]
READ_CHUNK = 1 << 20


# --------------------------------------------------------------------------- pure opener


@dataclass(frozen=True)
class ListedFile:
    """One file of the closing list, with what its receipt and manifest say about it."""

    lot: str
    bidder: str
    file: str
    header_sha256: str           # hex, from the manifest (and the closing list)
    manifest_sha256: str
    ciphertext_sha256: str       # hex, the receipt's: the blob must hash to this
    commitment: bytes            # 32 raw bytes
    share_digests: Mapping[int, str]


@dataclass(frozen=True)
class FileOutcome:
    """What the opener concluded about one file."""

    status: FileStatus
    fault: Fault | None = None
    cause: str | None = None
    message: str = ""
    bid_key: bytes | None = field(default=None, repr=False)
    form: dict[str, Any] | None = field(default=None, repr=False)
    plaintext_sha256: str | None = None
    used: tuple[int, ...] = ()
    bad: tuple[int, ...] = ()
    malformed: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()

    def shares_report(self) -> dict[str, list[int]]:
        """Every share's fate, for the record (indices only: nothing secret)."""
        return {"used": list(self.used), "bad": list(self.bad), "malformed": list(self.malformed),
                "missing": list(self.missing)}


def _failed(error: CryptoError, fault: Fault | None = None) -> FileOutcome:
    return FileOutcome("failed", fault=fault or fault_of(error), cause=error.code, message=error.message)


class _Discard:
    """A write-only sink that only hashes: files other than the bid form are decrypted to be
    checked (the committee gets their keys), not kept."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)


class _Bounded(io.BytesIO):
    """Keeps at most ``limit`` bytes; a bid form is 4096 bytes, anything longer is refused."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.overflow = False
        self.digest = hashlib.sha256()

    def write(self, data: Any) -> int:  # type: ignore[override]
        self.digest.update(data)
        room = self.limit - self.tell()
        if len(data) > room:
            self.overflow = True
            data = bytes(data[:max(room, 0)])
        return super().write(data)


def _stored_sha256(open_blob: Callable[[], BinaryIO]) -> str:
    digest = hashlib.sha256()
    with open_blob() as stream:
        while chunk := stream.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def open_listed_file(listed: ListedFile, open_blob: Callable[[], BinaryIO], threshold: int,
                     released: Mapping[int, bytes], bidder_slots: tuple[int, ...] = (),
                     window_closed: bool = False) -> FileOutcome:
    """Run the §6 opener over one listed file.

    ``open_blob`` opens the stored ``.ebid`` (it is read twice, streaming: once to hash,
    once to decrypt); ``released`` is ``{i: 33-byte share}`` as released so far.
    Order matters for whose fault it is: the platform's stored copy is checked before
    anything the bidder or the custodians supplied.
    """
    try:
        stored = _stored_sha256(open_blob)
    except (FileNotFoundError, ValueError):
        return FileOutcome("failed", fault="platform", cause="stored_file_missing",
                           message="the platform no longer holds the file it acknowledged")
    try:
        check_stored_file(stored, listed.ciphertext_sha256)
        with open_blob() as stream:
            header_bytes, header = read_header(stream)
        h = header_hash(header_bytes)
        if h.hex() != listed.header_sha256:
            raise CryptoError("header_mismatch", "the stored header is not the one the manifest signed")
        names = (header["lot"], header["bidder"], header["file"])
        if names != (listed.lot, listed.bidder, listed.file):
            raise CryptoError("header_mismatch", "the header names another lot, bidder or file than the receipt")
    except CryptoError as exc:
        return _failed(exc)

    result = recover_bid_key(h, threshold, listed.commitment, listed.share_digests, released,
                             bidder_slots=bidder_slots, window_closed=window_closed)
    report = dict(used=result.used, bad=result.bad, malformed=result.malformed, missing=result.missing)
    if result.status == "pending":
        return FileOutcome("pending", message=result.message, **report)
    if result.status == "failed" or result.bid_key is None:
        return FileOutcome("failed", fault=result.fault, cause=result.cause, message=result.message, **report)

    is_form = listed.file == BID_FORM_NAME
    sink: Any = _Bounded(BID_FORM_SIZE + 1) if is_form else _Discard()
    try:
        with open_blob() as stream:
            opened = open_stream(stream, sink, result.bid_key, expected_header_sha256=listed.header_sha256,
                                 commitment=listed.commitment)
        form = None
        if is_form:
            if sink.overflow:
                raise CryptoError("bad_bid_form", f"the bid form is longer than {BID_FORM_SIZE} bytes")
            form = parse_bid_form(sink.getvalue(), tender=opened["tender"], lot=opened["lot"],
                                  bidder=opened["bidder"])
    except CryptoError as exc:
        # every released share matched its digest, so what fails now is what the bidder sealed
        return FileOutcome("failed", fault="bidder", cause=exc.code, message=exc.message,
                           bid_key=result.bid_key, **report)
    return FileOutcome("opened", bid_key=result.bid_key, form=form, plaintext_sha256=sink.digest.hexdigest(),
                       **report)


@dataclass(frozen=True)
class BidOutcome:
    """One bid (lot, bidder) after the opener: its status under C4 and its bid form."""

    status: BidStatus
    fault: Fault | None = None
    cause: str | None = None
    form: dict[str, Any] | None = None


# When several files of one bid fail, the bid's fault is the first of these that occurs:
# a bidder whose own file is unusable would have failed anyway (C4: revoked).
_FAULT_PRECEDENCE: tuple[Fault, ...] = ("bidder", "platform", "custodian")


def bid_outcome(files: Mapping[str, FileOutcome]) -> BidOutcome:
    """Combine the outcomes of one bid's files: pending while any is, failed if any failed."""
    if any(o.status == "pending" for o in files.values()):
        return BidOutcome("pending")
    failed = [o for o in files.values() if o.status == "failed"]
    if BID_FORM_NAME not in files:
        return BidOutcome("revoked", fault="bidder", cause="missing_bid_form")
    if failed:
        for fault in _FAULT_PRECEDENCE:
            for name in sorted(files):
                outcome = files[name]
                if outcome.status == "failed" and outcome.fault == fault:
                    return BidOutcome("revoked" if fault == "bidder" else "withdrawn",
                                      fault=fault, cause=outcome.cause)
    return BidOutcome("opened", form=files[BID_FORM_NAME].form)


def window_end(deadline: datetime, release_window_s: int) -> datetime:
    """The end of the release window: a missing release is a fault from then on."""
    return deadline + timedelta(seconds=release_window_s)


def disclosable(now: datetime, deadline: datetime, release_window_s: int, all_shares_in: bool) -> bool:
    """§6: nothing decrypted, combined or released is disclosed before the window has
    passed, unless every share is already in."""
    return all_shares_in or now >= window_end(deadline, release_window_s)


DECLARED_SKIP = frozenset({"tender", "lot", "bidder", "price", "currency"})


def declared_items(form: Mapping[str, Any]) -> dict[str, Any]:
    """The bid form's declared items (工期, 质量, ...): every field beyond the fixed five."""
    return {k: v for k, v in form.items() if k not in DECLARED_SKIP}


def c2_short_lots(bidders_by_lot: Mapping[str, set[str]], lot_codes: list[str], min_bids: int) -> list[str]:
    """Lots with fewer bids than the rulebook's minimum (C2): those are not opened."""
    return [lot for lot in lot_codes if len(bidders_by_lot.get(lot, set())) < min_bids]


# --------------------------------------------------------------------------- services

C2_DEFAULT_MIN_BIDS = 3


def c2_rule(project: Project) -> tuple[int, str]:
    """``(min_bids, outcome)`` of rule C2 from the project's pinned rules."""
    from trading import rulebook
    pinned = project.rules
    if not pinned:
        return C2_DEFAULT_MIN_BIDS, "retender"
    rules = (rulebook.ProjectRules.from_json(pinned) if isinstance(pinned, str)
             else rulebook.ProjectRules.from_dict(pinned))
    if not rules.applies("C2"):
        return 1, "failed"
    rule = rules.rule("C2")
    return rule.integer("min_bids") or C2_DEFAULT_MIN_BIDS, str(rule.get("outcome", "failed"))


def _opening_of(session: Session, project: Project) -> OpeningSession | None:
    return session.execute(sa.select(OpeningSession).where(OpeningSession.project_id == project.id)
                           ).scalar_one_or_none()


def _open_session(session: Session, project: Project) -> OpeningSession:
    opening = _opening_of(session, project)
    if opening is None:
        raise Conflict("The opening has not started", code="opening_not_started",
                       message_zh="开标尚未开始")
    if opening.status != "open":
        raise Conflict("The opening is over", code="opening_closed", message_zh="开标已结束")
    return opening


def _managed(session: Session, actor: Actor, project_id: int, *, for_update: bool = False) -> Project:
    project = projects.get_project(session, actor, project_id, for_update=for_update)
    if not projects.manages(actor, project):
        raise Forbidden("Only the project's agent runs the opening", code="not_manager",
                        message_zh="仅该项目的代理机构可主持开标")
    return project


def _bidders_by_lot(files: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in files:
        found.setdefault(f["lot"], set()).add(f["bidder"])
    return found


def start_opening(session: Session, actor: Actor, now: datetime, project_id: int) -> OpeningSession:
    """Start the opening (C1: at the deadline, after closing). With fewer bids than the
    rulebook's minimum in every lot there is no opening and the project fails (C2).

    Two agents starting at once: the project row lock (PostgreSQL), the serialized
    transaction (SQLite), the project's version counter and the unique opening row each
    make sure exactly one wins; the other gets ``opening_already_started``.
    """
    project = _managed(session, actor, project_id, for_update=True)
    closing = closing_of(session, project)
    if _opening_of(session, project) is not None:
        raise Conflict("The opening has already started", code="opening_already_started",
                       message_zh="开标已经开始")
    min_bids, outcome = c2_rule(project)
    by_lot = _bidders_by_lot(closing.files)
    lot_codes = [lot.code for lot in project.lots] or sorted(by_lot)
    short = c2_short_lots(by_lot, lot_codes, min_bids)
    # a list, not an object: lot codes are not canonical-JSON keys
    counts = [{"lot": lot, "bids": len(by_lot.get(lot, set()))} for lot in lot_codes]
    opening = OpeningSession(project_id=project.id, started_by_id=actor.user_id, started_at=now)
    try:
        if len(short) == len(lot_codes):
            appended = log.append(session, now=now, actor=actor.log_name, action="opening.not_opened",
                                  subject=subject_of(project),
                                  data={"rule": "C2", "min_bids": min_bids, "bids": counts, "outcome": outcome})
            opening.status, opening.finished_at, opening.log_index = "failed", now, appended.index
            session.add(opening)
            projects.apply_transition(session, actor, now, project, "fail",
                                      reason=f"C2: fewer than {min_bids} bids; outcome {outcome}",
                                      data={"rule": "C2", "outcome": outcome})
        else:
            projects.apply_transition(session, actor, now, project, "start_opening")
            appended = log.append(session, now=now, actor=actor.log_name, action="opening.started",
                                  subject=subject_of(project),
                                  data={"bids": counts, "lots_not_opened": short, "min_bids": min_bids})
            opening.log_index = appended.index
            session.add(opening)
        session.flush()
    except (IntegrityError, StaleDataError):
        # the caller rolls the session back, as after any refusal
        raise Conflict("Another agent started the opening first", code="opening_already_started",
                       message_zh="开标已由他人开始") from None
    return opening


def _listed_file(sub: Submission) -> ListedFile:
    manifest = sub.manifest
    return ListedFile(lot=sub.lot_code, bidder=sub.bidder_code, file=sub.file,
                      header_sha256=sub.header_sha256, manifest_sha256=sub.manifest_sha256,
                      ciphertext_sha256=sub.ciphertext_sha256,
                      commitment=b64decode(manifest["commitment"], "commitment", length=32),
                      share_digests={s["i"]: s["digest"] for s in manifest["shares"]})


@dataclass
class _State:
    """Everything the opener and the views need about one tender's opening, read once."""

    project: Project
    opening: OpeningSession
    closing: Any
    policy: Any
    submissions: list[Submission]
    releases: dict[int, dict[int, Any]]
    results: dict[int, OpeningResult]
    short_lots: list[str]

    @property
    def window_end(self) -> datetime:
        return window_end(self.closing.deadline, self.policy.release_window_s)

    def all_shares_in(self) -> bool:
        return all(len(self.releases.get(s.id, {})) == self.policy.n for s in self.to_open())

    def disclosable(self, now: datetime) -> bool:
        return disclosable(now, self.closing.deadline, self.policy.release_window_s, self.all_shares_in())

    def to_open(self) -> list[Submission]:
        return [s for s in self.submissions if s.lot_code not in self.short_lots]


def _state(session: Session, project: Project, opening: OpeningSession) -> _State:
    closing = closing_of(session, project)
    policy = policy_of(session, project)
    min_bids, _ = c2_rule(project)
    lot_codes = [lot.code for lot in project.lots] or sorted(_bidders_by_lot(closing.files))
    results = {r.submission_id: r for r in session.execute(
        sa.select(OpeningResult).where(OpeningResult.project_id == project.id)).scalars()}
    return _State(project, opening, closing, policy, listed_submissions(session, project, closing),
                  releases_by_submission(session, project), results,
                  c2_short_lots(_bidders_by_lot(closing.files), lot_codes, min_bids))


def _run_opener(session: Session, now: datetime, state: _State, blobs: Any) -> int:
    """Open every listed file not yet decided; store what is decided. Returns how many."""
    window_closed = now >= state.window_end
    bidder_slots = tuple(c.i for c in state.policy.custodians if c.role == BIDDER)
    decided = 0
    for sub in state.to_open():
        if sub.id in state.results:
            continue  # opened and failed results are final
        released = {i: bytes(r.share) for i, r in state.releases.get(sub.id, {}).items()}
        outcome = open_listed_file(_listed_file(sub), lambda sha=sub.ciphertext_sha256: blobs.open(sha),
                                   state.policy.threshold, released, bidder_slots, window_closed)
        if outcome.status == "pending":
            continue
        form = outcome.form or {}
        row = OpeningResult(project_id=state.project.id, opening_id=state.opening.id, submission_id=sub.id,
                            lot_code=sub.lot_code, bidder_code=sub.bidder_code, file=sub.file,
                            status=outcome.status, fault=outcome.fault, cause=outcome.cause,
                            message=outcome.message or None,
                            price=Decimal(form["price"]) if "price" in form else None,
                            currency=form.get("currency"), declared=declared_items(form) if form else None,
                            bid_key=outcome.bid_key, plaintext_sha256=outcome.plaintext_sha256,
                            shares_used=list(outcome.used), decided_at=now)
        session.add(row)
        state.results[sub.id] = row
        decided += 1
    session.flush()
    return decided


def decrypt(session: Session, actor: Actor, now: datetime, project_id: int, blobs: Any) -> dict[str, Any]:
    """Run the opener over what has been released so far (agent). Results are stored as
    they are decided, but shown only once they may be disclosed (§6)."""
    project = _managed(session, actor, project_id, for_update=True)
    opening = _open_session(session, project)
    state = _state(session, project, opening)
    decided = _run_opener(session, now, state, blobs)
    pending = sum(1 for s in state.to_open() if s.id not in state.results)
    log.append(session, now=now, actor=actor.log_name, action="opening.decrypted",
               subject=subject_of(project), data={"decided": decided, "pending": pending},
               detail={"files": [_file_summary(state.results[s.id]) for s in state.to_open()
                                 if s.id in state.results]})
    return view(state, now)


def _file_summary(row: OpeningResult) -> dict[str, Any]:
    return {"lot": row.lot_code, "bidder": row.bidder_code, "file": row.file, "status": row.status,
            "fault": row.fault, "cause": row.cause}


def view(state: _State, now: datetime) -> dict[str, Any]:
    """The opening as participants see it: progress always, results once disclosable."""
    shown = state.disclosable(now)
    files = []
    for sub in state.to_open():
        item: dict[str, Any] = {"lot": sub.lot_code, "bidder": sub.bidder_code, "file": sub.file,
                                "released": len(state.releases.get(sub.id, {})),
                                "threshold": state.policy.threshold, "n": state.policy.n}
        row = state.results.get(sub.id)
        if shown:
            item.update(status=row.status if row else "pending", fault=row.fault if row else None,
                        cause=row.cause if row else None)
            if row is not None and row.price is not None:
                item.update(price=f"{row.price:.2f}", currency=row.currency)
        files.append(item)
    return {"tender": tender_id(state.project), "status": state.opening.status,
            "started_at": state.opening.started_at, "window_ends": state.window_end,
            "disclosed": shown, "lots_not_opened": state.short_lots, "files": files}


def opening_view(session: Session, actor: Actor, now: datetime, project_id: int) -> dict[str, Any]:
    """The opening's progress (anyone who may see the project: bidders attend online, C1)."""
    project = projects.get_project(session, actor, project_id)
    opening = _opening_of(session, project)
    if opening is None:
        raise NotFound("The opening has not started", code="opening_not_started", message_zh="开标尚未开始")
    if opening.status == "failed":
        return {"tender": tender_id(project), "status": "failed", "started_at": opening.started_at,
                "files": []}
    data = view(_state(session, project, opening), now)
    data["objections"] = [objection_out(o, code) for o, code in _objections(session, opening)]
    return data


def finish(session: Session, actor: Actor, now: datetime, project_id: int, blobs: Any) -> OpeningSession:
    """Publish the opening record (C3, C6) once every listed file is decided, which the
    window or the last share makes possible; every objection must have its answer (C5)."""
    project = _managed(session, actor, project_id, for_update=True)
    opening = _open_session(session, project)
    state = _state(session, project, opening)
    if not state.disclosable(now):
        raise Conflict("The release window is still open and shares are missing",
                       code="release_window_open", message_zh="份额释放期尚未结束且仍有份额未释放",
                       window_ends=format_instant(state.window_end))
    _run_opener(session, now, state, blobs)
    pending = [s for s in state.to_open() if s.id not in state.results]
    if pending:
        raise Conflict("Some files are still pending", code="opening_pending", pending=len(pending))
    objections = _objections(session, opening)
    if any(o.answered_at is None for o, _ in objections):
        raise Conflict("Every objection is answered before the record is published",
                       code="objections_unanswered", message_zh="尚有异议未答复")
    record = build_record(session, state, objections, now)
    raw = canonical_json(record)
    opening.record, opening.record_bytes, opening.record_sha256 = record, raw, sha256_hex(raw)
    opening.status, opening.finished_at, opening.published_at = "finished", now, now
    opened = sum(1 for b in record["bids"] if b["status"] == "opened")
    appended = log.append(session, now=now, actor=actor.log_name, action="opening.published",
                          subject=subject_of(project),
                          data={"record_sha256": opening.record_sha256, "bids": len(record["bids"]),
                                "opened": opened})
    opening.record_log_index = appended.index
    projects.apply_transition(session, actor, now, project, "finish_opening")
    session.flush()
    return opening


def build_record(session: Session, state: _State, objections: list[tuple[OpeningObjection, str | None]],
                 now: datetime) -> dict[str, Any]:
    """The opening record (开标记录): every bid with its bidder, price, declared items,
    decryption status and whose fault a failure was, and the objections with answers."""
    codes = sorted({s.bidder_code for s in state.submissions})
    names = dict(session.execute(sa.select(Organisation.code, Organisation.name)
                                 .where(Organisation.code.in_(codes))).all()) if codes else {}
    bids: dict[tuple[str, str], dict[str, FileOutcome]] = {}
    rows: dict[tuple[str, str], list[OpeningResult]] = {}
    for sub in state.to_open():
        row = state.results[sub.id]
        outcome = FileOutcome(row.status, fault=row.fault, cause=row.cause,  # type: ignore[arg-type]
                              form={"price": f"{row.price:.2f}"} if row.price is not None else None)
        bids.setdefault((sub.lot_code, sub.bidder_code), {})[sub.file] = outcome
        rows.setdefault((sub.lot_code, sub.bidder_code), []).append(row)
    out = []
    for (lot, bidder) in sorted(bids):
        result = bid_outcome(bids[(lot, bidder)])
        form_row = next((r for r in rows[(lot, bidder)] if r.file == BID_FORM_NAME), None)
        opened = result.status == "opened" and form_row is not None
        out.append({
            "lot": lot, "bidder": bidder, "bidder_name": names.get(bidder, bidder),
            "status": result.status, "fault": result.fault, "cause": result.cause,
            "decryption": "opened" if opened else "failed",
            "price": f"{form_row.price:.2f}" if opened and form_row.price is not None else None,
            "currency": form_row.currency if opened else None,
            "declared": (form_row.declared or {}) if opened else {},
            "files": [_record_file(r, state) for r in sorted(rows[(lot, bidder)], key=lambda r: r.file)],
        })
    by_lot = _bidders_by_lot(state.closing.files)
    lots = [{"lot": lot.code, "bids": len(by_lot.get(lot.code, set())), "opened": lot.code not in state.short_lots}
            for lot in state.project.lots]
    return {
        "tender": tender_id(state.project), "title": state.project.title,
        "deadline": format_instant(state.closing.deadline),
        "opened_at": format_instant(state.opening.started_at), "published_at": format_instant(now),
        "policy_sha256": state.policy.sha256, "closing_log_index": state.closing.log_index,
        "lots": lots, "bids": out,
        "objections": [objection_out(o, code, formatted=True) for o, code in objections],
    }


def _record_file(row: OpeningResult, state: _State) -> dict[str, Any]:
    """One file in the record; a custodian whose share missed its digest is named even when
    the file opened with the others' shares."""
    released = state.releases.get(row.submission_id, {})
    return {"file": row.file, "status": row.status, "fault": row.fault, "cause": row.cause,
            "shares_used": list(row.shares_used or []),
            "shares_mismatched": sorted(i for i, r in released.items() if r.valid is False),
            "shares_missing": sorted(set(range(1, state.policy.n + 1)) - set(released))}


# --------------------------------------------------------------------------- objections (C5)


def _objections(session: Session, opening: OpeningSession) -> list[tuple[OpeningObjection, str | None]]:
    """The opening's objections in order, each with its bidder's code."""
    return [(o, code) for o, code in session.execute(
        sa.select(OpeningObjection, Organisation.code)
        .outerjoin(Organisation, Organisation.id == OpeningObjection.bidder_org_id)
        .where(OpeningObjection.opening_id == opening.id).order_by(OpeningObjection.id)).all()]


def objection_out(o: OpeningObjection, bidder: str | None, formatted: bool = False) -> dict[str, Any]:
    """An objection and its answer as shown to participants and in the record."""
    fmt = (lambda t: format_instant(t) if t else None) if formatted else (lambda t: t)
    return {"id": o.id, "bidder": bidder, "text": o.text, "raised_at": fmt(o.raised_at),
            "answer": o.answer, "answered_at": fmt(o.answered_at)}


def raise_objection(session: Session, actor: Actor, now: datetime, project_id: int, text: str) -> OpeningObjection:
    """A bidder objects during the opening (C5); recorded and logged at once."""
    project = projects.get_project(session, actor, project_id)
    opening = _open_session(session, project)
    closing = closing_of(session, project)
    bidders = {f["bidder"] for f in closing.files}
    if not actor.has(Role.BIDDER) or actor.org_code not in bidders:
        raise Forbidden("Only bidders of this tender raise objections at its opening",
                        code="not_a_bidder", message_zh="仅本项目的投标人可在开标时提出异议")
    text = text.strip()
    if not text:
        raise ValidationFailed("The objection is empty", field="text")
    objection = OpeningObjection(project_id=project.id, opening_id=opening.id, raised_by_id=actor.user_id,
                                 bidder_org_id=actor.org_id, text=text, raised_at=now, log_index=0)
    session.add(objection)
    session.flush()
    appended = log.append(session, now=now, actor=actor.log_name, action="opening.objection_raised",
                          subject=subject_of(project),
                          data={"objection": objection.id, "bidder": actor.org_code,
                                "text_sha256": sha256_hex(text.encode("utf-8"))})
    objection.log_index = appended.index
    return objection


def answer_objection(session: Session, actor: Actor, now: datetime, project_id: int, objection_id: int,
                     text: str) -> OpeningObjection:
    """The agent answers an objection on the spot (C5); an answer is final."""
    project = _managed(session, actor, project_id, for_update=True)
    opening = _open_session(session, project)
    objection = session.get(OpeningObjection, objection_id)
    if objection is None or objection.opening_id != opening.id:
        raise NotFound("No such objection", code="objection_not_found", message_zh="异议不存在")
    if objection.answered_at is not None:
        raise Conflict("The objection has been answered", code="objection_answered",
                       message_zh="该异议已答复")
    text = text.strip()
    if not text:
        raise ValidationFailed("The answer is empty", field="text")
    appended = log.append(session, now=now, actor=actor.log_name, action="opening.objection_answered",
                          subject=subject_of(project),
                          data={"objection": objection.id, "text_sha256": sha256_hex(text.encode("utf-8"))})
    objection.answer, objection.answered_by_id, objection.answered_at = text, actor.user_id, now
    objection.answer_log_index = appended.index
    session.flush()
    return objection


def bidder_code_of(session: Session, objection: OpeningObjection) -> str | None:
    """The code of the bidder that raised ``objection``."""
    if objection.bidder_org_id is None:
        return None
    org = session.get(Organisation, objection.bidder_org_id)
    return org.code if org is not None else None


def log_refusal(session: Session, actor: Actor, now: datetime, project: Project, action: str,
                code: str) -> None:
    """Record a refused opening step (who tried what, and the stable code it got)."""
    log.append(session, now=now, actor=actor.log_name, action="opening.refused",
               subject=subject_of(project), data={"step": action, "code": code})


# --------------------------------------------------------------------------- after publication


def _published(session: Session, actor: Actor, project_id: int) -> tuple[Project, OpeningSession]:
    project = projects.get_project(session, actor, project_id)
    opening = _opening_of(session, project)
    if opening is None or opening.published_at is None:
        raise NotFound("The opening record is not published yet", code="opening_record_not_published",
                       message_zh="开标记录尚未公布")
    return project, opening


def published_record(session: Session, actor: Actor, project_id: int) -> dict[str, Any]:
    """The published opening record (public, C6)."""
    _, opening = _published(session, actor, project_id)
    return dict(opening.record or {})


def bid_keys(session: Session, actor: Actor, project_id: int) -> list[OpeningResult]:
    """The opened ``bid-form.json`` results whose keys are published (§6); keys of other
    files are never returned here."""
    project, _ = _published(session, actor, project_id)
    return list(session.execute(sa.select(OpeningResult).where(
        OpeningResult.project_id == project.id, OpeningResult.file == BID_FORM_NAME,
        OpeningResult.status == "opened", OpeningResult.bid_key.is_not(None))
        .order_by(OpeningResult.lot_code, OpeningResult.bidder_code)).scalars())


def opened_bid_form(session: Session, actor: Actor, project_id: int, lot: str, bidder: str) -> Submission:
    """The submission of an opened, published ``bid-form.json`` (its .ebid bytes are public)."""
    project, _ = _published(session, actor, project_id)
    row = session.execute(sa.select(OpeningResult).where(
        OpeningResult.project_id == project.id, OpeningResult.file == BID_FORM_NAME,
        OpeningResult.status == "opened", OpeningResult.lot_code == lot,
        OpeningResult.bidder_code == bidder)).scalar_one_or_none()
    if row is None:
        raise NotFound("No opened bid form for that lot and bidder", code="bid_form_not_found",
                       message_zh="没有该标段与投标人的已开启投标函")
    return session.get(Submission, row.submission_id)

