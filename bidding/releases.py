"""Share releases (PROTOCOL §6): a custodian's signed release of one share of one listed file.

A release is accepted only after the tender has closed, only for a file in the closing
list, only from the holder of slot ``i`` (the policy's signing key, or for role
``bidder`` the bidder's own registered key for its own file), and only against a real
checkpoint of the log that contains the closing. The share is stored with whether it
matches the digest the bidder signed: a mismatch is the custodian's fault (§6), decided
here once and for all. The first release of a slot is final; repeating it is harmless.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from bidding.closing import require_closed
from bidding.models import Closing, OpeningSession, Release, Submission
from bidding.policy import parsed_policy, policy_row, tender_id
from core.actor import Actor
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crypto import policy as crypto_policy
from crypto.errors import CryptoError
from crypto.manifest import check_release, release_share
from crypto.shares import share_digest
from crypto.signing import RELEASE, envelope_kid, verify_object
from trading.models import Organisation, Project, SigningKey, User

MAX_RELEASES_PER_REQUEST = 1000


def subject_of(project: Project) -> str:
    """How the audit log names a tender: the project it is."""
    return f"project:{project.id}"


def closing_of(session: Session, project: Project) -> Closing:
    """The tender's closing; ``tender_not_closed`` before it (as every bidding endpoint says)."""
    return require_closed(session, project.id)


def policy_of(session: Session, project: Project) -> crypto_policy.Policy:
    """The tender's opening policy, parsed from the exact bytes published."""
    row = policy_row(session, project.id)
    if row is None:
        raise NotFound("This tender has no opening policy", code="no_policy",
                       message_zh="该项目尚未设置开标策略")
    return parsed_policy(row)


def listed_submissions(session: Session, project: Project, closing: Closing) -> list[Submission]:
    """The submissions named by the closing list, in its order (exactly the files to open)."""
    wanted = [f["manifest_sha256"] for f in closing.files]
    if not wanted:
        return []
    rows = {s.manifest_sha256: s for s in session.execute(
        sa.select(Submission).where(Submission.project_id == project.id,
                                    Submission.manifest_sha256.in_(wanted))).scalars()}
    return [rows[m] for m in wanted if m in rows]


def _refused(code: str, message: str, index: int, status: type = ValidationFailed, **details: Any) -> Any:
    return status(message, code=code, index=index, **details)


@dataclass(frozen=True)
class Accepted:
    """One release as the custodian is told about it."""

    lot: str
    bidder: str
    file: str
    i: int
    status: str          # "accepted" or "already" (the same share was released before)
    digest_match: bool

    def as_dict(self) -> dict[str, Any]:
        return {"lot": self.lot, "bidder": self.bidder, "file": self.file, "i": self.i,
                "status": self.status, "digest_match": self.digest_match}


def _signer_key(session: Session, actor: Actor, custodian: crypto_policy.Custodian, payload: dict[str, Any],
                kid: str, index: int) -> bytes:
    """The public key slot ``i`` must sign with, after checking the actor holds it."""
    if custodian.role == crypto_policy.BIDDER:
        # role bidder: the bidder's own registered key, for its own files only
        org = session.execute(sa.select(Organisation).where(Organisation.code == payload["bidder"])
                              ).scalar_one_or_none()
        key = session.get(SigningKey, kid)
        owner = session.get(User, key.user_id) if key is not None else None
        if (org is None or key is None or key.revoked_at is not None or owner is None
                or owner.org_id != org.id or actor.org_id != org.id):
            raise _refused("not_custodian", "Under role bidder only the bidder releases, with its own "
                           "registered key, the share of its own file", index, Forbidden)
        return bytes(key.public_key)
    assert custodian.signer is not None and custodian.signing_key is not None
    key = session.get(SigningKey, custodian.signer)
    if key is None or key.user_id != actor.user_id:
        raise _refused("not_custodian", f"Slot {custodian.i} is held by another account", index, Forbidden)
    return custodian.signing_key


def _check_checkpoint(session: Session, closing: Closing, payload: dict[str, Any], index: int) -> None:
    """The release names a tree that contains the closing entry, with its true root: proof
    that the custodian checked the closing against the log rather than taking our word."""
    size = payload["checkpoint_size"]
    if size <= closing.log_index or size > log.size(session):
        raise _refused("bad_checkpoint", "The checkpoint does not include the tender.closed entry", index,
                       checkpoint_size=size, closing_index=closing.log_index)
    if not hmac.compare_digest(log.root_at(session, size).hex(), payload["checkpoint_root"]):
        raise _refused("bad_checkpoint", "checkpoint_root is not the log's root at that size", index,
                       checkpoint_size=size)


def accept_releases(session: Session, actor: Actor, now: datetime, project: Project,
                    envelopes: list[Any]) -> list[Accepted]:
    """Check and store a batch of signed releases, all or nothing.

    Refusals name the position in ``details.index``; the caller logs them.
    """
    closing = closing_of(session, project)
    opening = session.execute(sa.select(OpeningSession).where(OpeningSession.project_id == project.id)
                              ).scalar_one_or_none()
    if opening is not None and opening.status != "open":
        raise Conflict("The opening is over: no more releases", code="opening_closed",
                       message_zh="开标已结束，不再接受份额释放")
    policy = policy_of(session, project)
    listed = {(f["lot"], f["bidder"], f["file"]): f for f in closing.files}
    results: list[Accepted] = []
    for index, envelope in enumerate(envelopes):
        try:
            kid = envelope_kid(envelope, "release")
            payload = check_release(envelope["release"])
        except CryptoError as exc:
            raise _refused(exc.code, exc.message, index) from None
        if payload["tender"] != tender_id(project):
            raise _refused("wrong_tender", "The release is for another tender", index)
        i = payload["i"]
        if i > policy.n:
            raise _refused("bad_share_index", f"The policy has custodians 1..{policy.n}", index, i=i)
        entry = listed.get((payload["lot"], payload["bidder"], payload["file"]))
        if entry is None or entry["header_sha256"] != payload["header_sha256"]:
            raise _refused("file_not_listed", "Only files in the closing list are released", index,
                           lot=payload["lot"], bidder=payload["bidder"], file=payload["file"])
        public = _signer_key(session, actor, policy.custodians[i - 1], payload, kid, index)
        try:
            verify_object(envelope, "release", RELEASE, public)
        except CryptoError as exc:
            raise _refused(exc.code, exc.message, index) from None
        _check_checkpoint(session, closing, payload, index)
        submission = session.execute(sa.select(Submission).where(
            Submission.manifest_sha256 == entry["manifest_sha256"])).scalar_one()
        results.append(_store(session, actor, now, project, submission, payload, envelope, kid, index))
    return results


def _store(session: Session, actor: Actor, now: datetime, project: Project, submission: Submission,
           payload: dict[str, Any], envelope: dict[str, Any], kid: str, index: int) -> Accepted:
    i = payload["i"]
    share = release_share(payload)
    digests = {s["i"]: s["digest"] for s in submission.manifest["shares"]}
    match = hmac.compare_digest(share_digest(bytes.fromhex(submission.header_sha256), share), digests[i])
    names = dict(lot=submission.lot_code, bidder=submission.bidder_code, file=submission.file, i=i)
    existing = session.execute(sa.select(Release).where(Release.submission_id == submission.id,
                                                        Release.i == i)).scalar_one_or_none()
    if existing is not None:
        if hmac.compare_digest(bytes(existing.share), share):
            return Accepted(status="already", digest_match=bool(existing.valid), **names)
        # the first release is final: letting a custodian swap shares would let it steer
        # which subset opens, and blur whose fault a mismatch was
        raise _refused("share_already_released", f"Share {i} of this file was released already", index,
                       Conflict, **names)
    appended = log.append(session, now=now, actor=actor.log_name, action="share.released",
                          subject=subject_of(project),
                          data={**names, "header_sha256": submission.header_sha256, "digest_match": match,
                                "signer": kid})
    session.add(Release(project_id=project.id, submission_id=submission.id, lot_code=submission.lot_code,
                        bidder_code=submission.bidder_code, file=submission.file,
                        header_sha256=submission.header_sha256, i=i, share=share, envelope=envelope,
                        signer_kid=kid, user_id=actor.user_id, received_at=now, log_index=appended.index,
                        valid=match))
    session.flush()
    return Accepted(status="accepted", digest_match=match, **names)


def log_refusal(session: Session, actor: Actor, now: datetime, project: Project, code: str,
                details: dict[str, Any]) -> None:
    """Record a refused release attempt (§6: releases before closing are refused and logged)."""
    data = {"code": code, **{k: v for k, v in details.items()
                             if k in ("index", "i", "lot", "bidder", "file") and v is not None}}
    log.append(session, now=now, actor=actor.log_name, action="share.release_refused",
               subject=subject_of(project), data=data)


def releases_by_submission(session: Session, project: Project) -> dict[int, dict[int, Release]]:
    """``{submission_id: {i: release}}`` of every release of the tender."""
    found: dict[int, dict[int, Release]] = {}
    for row in session.execute(sa.select(Release).where(Release.project_id == project.id)).scalars():
        found.setdefault(row.submission_id, {})[row.i] = row
    return found


__all__ = ["accept_releases", "log_refusal", "closing_of", "policy_of", "listed_submissions",
           "releases_by_submission", "subject_of", "Accepted"]
