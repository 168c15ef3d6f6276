"""Closing a tender at its bid deadline (PROTOCOL §6), exactly once.

Closing happens on the first request that touches the tender at or after the deadline,
or from the periodic command (:func:`close_due`), whichever comes first. It takes the
per-tender lock exclusively (submissions share it), checks the tender is not closed yet,
appends ``tender.closed`` listing exactly the live files, and signs a checkpoint that
includes that entry, all in one transaction. Nothing is late because the periodic command
did not run: every bidding endpoint calls :func:`ensure_closed` first.

The per-tender lock is the project's row: ``FOR SHARE`` for submissions, ``FOR UPDATE`` for
closing (and for policy changes and clarifications, which load the project for update).
SQLite needs no row lock: every transaction begins with ``BEGIN IMMEDIATE``, so writers are
already serialized from their first statement.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from audits import log, merkle
from audits.models import Checkpoint, LogEntry
from bidding.policy import parsed_policy, policy_required
from bidding.models import (LIVE, BidSecurity, Closing, CollusionIndicator, OpeningPolicy, PendingUpload,
                            Submission)
from core.clock import format_instant
from core.db import is_postgres
from core.actor import Actor
from core.errors import Forbidden, NotFound, ValidationFailed
from crypto.canonical import b64encode
from crypto.policy import BIDDER as BIDDER_ROLE
from trading import projects
from trading.accounts import user_signing_keys
from trading.domain import Role, Status
from trading.models import Organisation, Project

SYSTEM_ACTOR = "system"
# A tender in one of these states at its deadline is not closed (and never opened):
# a draft was never offered, a cancelled one is over, a suspended one waits for the
# supervisor (RULES H3), who resumes it with a new deadline.
_NOT_CLOSABLE = (Status.DRAFT, Status.CANCELLED, Status.SUSPENDED)


@dataclass(frozen=True)
class LogSigner:
    """What a service needs to sign a checkpoint: the log's origin and key (from the runtime)."""

    origin: str
    key: Ed25519PrivateKey


def lock_tender(session: Session, project_id: int, *, exclusive: bool) -> Project | None:
    """Take the per-tender lock and return the project freshly read under it.

    ``exclusive`` (closing) is ``FOR UPDATE``; shared (submissions) is ``FOR SHARE``, so
    uploads do not wait for each other but do wait for, and block, a closing.
    """
    query = sa.select(Project).where(Project.id == project_id).execution_options(populate_existing=True)
    if is_postgres(session):
        query = query.with_for_update(read=not exclusive)
    return session.execute(query).scalar_one_or_none()


def closing_of(session: Session, project_id: int) -> Closing | None:
    """The tender's closing as the database holds it now (not a stale cached object)."""
    return session.execute(sa.select(Closing).where(Closing.project_id == project_id)
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def is_closed(session: Session, project_id: int) -> bool:
    return closing_of(session, project_id) is not None


def _due(session: Session, project: Project, now: datetime) -> bool:
    """Sealed bidding (a policy) whose deadline has come, in a state that closes."""
    if project.bid_deadline is None or now < project.bid_deadline:
        return False
    if session.get(OpeningPolicy, project.id) is None:
        return False  # not a sealed-bid tender: nothing was or could be submitted
    return projects.status_of(project, now) not in _NOT_CLOSABLE


def live_submissions(session: Session, project_id: int) -> list[Submission]:
    """The live files of a tender: the latest unwithdrawn receipt of each file name,
    sorted by (lot, bidder, file) as the ``tender.closed`` entry lists them."""
    rows = session.execute(sa.select(Submission).where(Submission.project_id == project_id,
                                                       Submission.state == LIVE)).scalars().all()
    return sorted(rows, key=lambda s: (s.lot_code, s.bidder_code, s.file))


def file_entry(sub: Submission) -> dict[str, str]:
    return {"lot": sub.lot_code, "bidder": sub.bidder_code, "file": sub.file,
            "header_sha256": sub.header_sha256, "manifest_sha256": sub.manifest_sha256}


def ensure_closed(session: Session, project_id: int, now: datetime, signer: LogSigner,
                  trigger: str = SYSTEM_ACTOR) -> Closing | None:
    """Close the tender if its deadline has come; return its closing, or None if not due.

    Safe to call on every request: an unlocked look first, then the exclusive lock and a
    second look under it, so two racing callers close once (the second finds the first's
    row once the first commits). ``trigger`` names who touched the tender (for the row;
    the log entry's actor is always ``system``: the deadline closes a tender, not a user).
    """
    existing = closing_of(session, project_id)
    if existing is not None:
        return existing
    project = session.get(Project, project_id)
    if project is None or not _due(session, project, now):
        return None
    project = lock_tender(session, project_id, exclusive=True)
    existing = closing_of(session, project_id)
    if existing is not None or project is None or not _due(session, project, now):
        return existing  # closed meanwhile, or the deadline moved before we got the lock
    return _close(session, project, now, signer, trigger)


def _close(session: Session, project: Project, now: datetime, signer: LogSigner, trigger: str) -> Closing:
    assert project.bid_deadline is not None
    files = [file_entry(s) for s in live_submissions(session, project.id)]
    appended = log.append(session, now=now, actor=SYSTEM_ACTOR, action="tender.closed",
                          subject=f"project:{project.id}",
                          data={"deadline": format_instant(project.bid_deadline), "files": files})
    # the checkpoint custodians verify before releasing (§6) must include tender.closed
    checkpoint = log.issue_checkpoint(session, origin=signer.origin, log_key=signer.key, now=now)
    closing = Closing(project_id=project.id, deadline=project.bid_deadline, closed_at=now,
                      log_index=appended.index, checkpoint_size=checkpoint.size, files=files,
                      closed_by=trigger[:64])
    session.add(closing)
    # uploads still pending can never become bids now (RULES B3)
    session.execute(sa.delete(PendingUpload).where(PendingUpload.project_id == project.id))
    session.flush()
    record_indicators(session, project, now)
    return closing


def close_due(session: Session, now: datetime, signer: LogSigner) -> list[Closing]:
    """Close every sealed-bid tender whose deadline has come (the periodic ``ebid tick``).

    Closes them in the caller's transaction; the caller commits.
    """
    candidates = session.execute(
        sa.select(Project.id).join(OpeningPolicy, OpeningPolicy.project_id == Project.id)
        .outerjoin(Closing, Closing.project_id == Project.id)
        .where(Project.bid_deadline <= now, Closing.project_id.is_(None))
        .order_by(Project.id)).scalars().all()
    closed = []
    for project_id in candidates:
        closing = ensure_closed(session, project_id, now, signer)
        if closing is not None and closing.closed_at == now:
            closed.append(closing)
    return closed


# --------------------------------------------------------------------------- after closing


def require_closed(session: Session, project_id: int) -> Closing:
    """The closing, or ``tender_not_closed``: nothing about bids is served before it (A6, B4)."""
    closing = closing_of(session, project_id)
    if closing is None:
        raise Forbidden("Nothing about the bids is disclosed before the tender closes",
                        code="tender_not_closed", message_zh="投标截止（开标）前不公开任何投标信息")
    return closing


def closing_proof(session: Session, project_id: int) -> dict[str, Any]:
    """The ``tender.closed`` entry, the checkpoint signed with it, and its inclusion proof."""
    closing = require_closed(session, project_id)
    entry = session.get(LogEntry, closing.log_index)
    checkpoint = session.get(Checkpoint, closing.checkpoint_size)
    assert entry is not None and checkpoint is not None
    path = merkle.inclusion_proof(closing.log_index, closing.checkpoint_size, log.DbNodeReader(session))
    return {"index": closing.log_index, "leaf": b64encode(bytes(entry.entry)), "checkpoint": checkpoint.note,
            "inclusion": [b64encode(p) for p in path]}


def _listed(session: Session, closing: Closing) -> list[Submission]:
    """The submissions the ``tender.closed`` entry lists, in its order."""
    ids = [f["manifest_sha256"] for f in closing.files]
    rows = {s.manifest_sha256: s for s in session.execute(
        sa.select(Submission).where(Submission.manifest_sha256.in_(ids))).scalars()} if ids else {}
    return [rows[i] for i in ids]


def _custodian_slots(session: Session, actor: Actor, policy: Any) -> set[int]:
    """The policy slots whose signing key is registered (and not revoked) to ``actor``."""
    if actor.user_id is None:
        return set()
    kids = {k.kid for k in user_signing_keys(session, actor.user_id)}
    return {c.i for c in policy.custodians if c.signer is not None and c.signer in kids}


def shares_for(session: Session, actor: Actor, now: datetime, project_id: int, i: int) -> list[dict[str, Any]]:
    """Custodian ``i``'s sealed shares of the listed files, after closing only (PROTOCOL §6, §9).

    Served to the account whose registered signing key is custodian ``i``'s, or, for a
    role-bidder slot, to each bidder for its own files. Never a share of a superseded,
    withdrawn or unlisted file.
    """
    project = projects.get_project(session, actor, project_id)
    closing = require_closed(session, project.id)
    policy = parsed_policy(policy_required(session, project))
    if not 1 <= i <= policy.n:
        raise ValidationFailed(f"The policy has custodians 1..{policy.n}", code="custodian_unknown",
                               message_zh="开标策略中没有该监管人", field="i")
    listed = _listed(session, closing)
    if policy.custodians[i - 1].role == BIDDER_ROLE:
        if not actor.has(Role.BIDDER) or actor.org_id is None:
            raise Forbidden("Slot i is each bidder's own: only bidders fetch it", code="not_custodian",
                            message_zh="该份额仅由投标人本人获取")
        listed = [s for s in listed if s.bidder_org_id == actor.org_id]
    elif i not in _custodian_slots(session, actor, policy):
        raise Forbidden(f"You are not custodian {i} of this tender", code="not_custodian",
                        message_zh=f"您不是本项目第 {i} 号监管人")
    result = []
    for sub in listed:
        share = next(s for s in sub.manifest["shares"] if s["i"] == i)
        result.append({"lot": sub.lot_code, "bidder": sub.bidder_code, "file": sub.file,
                       "manifest_sha256": sub.manifest_sha256, "header": b64encode(bytes(sub.header)),
                       "sealed": share["sealed"], "digest": share["digest"]})
    log.append(session, now=now, actor=actor.log_name, action="bid.shares_served",
               subject=f"project:{project.id}", data={"i": i, "files": len(result)})
    return result


def listed_files(session: Session, actor: Actor, now: datetime, project_id: int) -> list[dict[str, Any]]:
    """The files the closing listed, with their receipt times: to the manager, the tenderee
    and supervisors, after closing only (before it nobody may count bids, RULES A6)."""
    project = projects.get_project(session, actor, project_id)
    if not (projects.is_party_owner(actor, project) or actor.has(Role.SUPERVISOR)):
        raise Forbidden("Only the project's agent, tenderee and supervisors list the bids",
                        code="forbidden", message_zh="仅代理机构、招标人和监督人员可查看投标清单")
    closing = require_closed(session, project.id)
    rows = [{**file_entry(s), "received_at": s.received_at, "size": s.size,
             "ciphertext_sha256": s.ciphertext_sha256} for s in _listed(session, closing)]
    log.append(session, now=now, actor=actor.log_name, action="bid.list_served",
               subject=f"project:{project.id}", data={"files": len(rows)})
    return rows


def file_for_download(session: Session, actor: Actor, now: datetime, project_id: int,
                      manifest_sha256: str) -> Submission:
    """A sealed file to serve after closing: to supervisors (any file of the tender), and to
    the manager, the tender's custodians and the file's own bidder (listed files only)."""
    project = projects.get_project(session, actor, project_id)
    closing = require_closed(session, project.id)
    sub = session.execute(sa.select(Submission).where(Submission.project_id == project.id,
                                                      Submission.manifest_sha256 == manifest_sha256)).scalar_one_or_none()
    listed = any(f["manifest_sha256"] == manifest_sha256 for f in closing.files)
    allowed = sub is not None and (
        actor.has(Role.SUPERVISOR)
        or (listed and (projects.manages(actor, project)
                        or (actor.org_id is not None and sub.bidder_org_id == actor.org_id)
                        or bool(_custodian_slots(session, actor, parsed_policy(policy_required(session, project)))))))
    if sub is None or not allowed:
        raise NotFound("No such file for you", code="file_unknown", message_zh="文件不存在或无权获取")
    log.append(session, now=now, actor=actor.log_name, action="bid.file_served",
               subject=f"project:{project.id}", data={"manifest_sha256": manifest_sha256})
    return sub


def record_indicators(session: Session, project: Project, now: datetime) -> list[CollusionIndicator]:
    """Find related or colluding bidders on each lot among the live bids (RULES B6).

    Done at closing, not at submission: refusing a bid because another exists would tell
    its bidder about that other bid before the deadline (A6). Bidders are grouped by what
    they share (a legal representative, a controller, a paying account, an address, a
    file), in O(bids) per lot; each group of two or more is one indicator, logged as a
    hidden entry whose detail supervisors read.
    """
    live = live_submissions(session, project.id)
    orgs = {o.id: o for o in session.execute(sa.select(Organisation).where(
        Organisation.id.in_({s.bidder_org_id for s in live}))).scalars()}
    securities = session.execute(sa.select(BidSecurity).where(BidSecurity.project_id == project.id)).scalars().all()
    found: list[CollusionIndicator] = []
    for lot in sorted({s.lot_code for s in live}):
        subs = [s for s in live if s.lot_code == lot]
        bidders = {s.bidder_org_id for s in subs}
        lot_securities = [x for x in securities if x.lot_code == lot and x.bidder_org_id in bidders]
        for kind, members in _shared_groups(orgs, bidders, subs, lot_securities):
            found.append(CollusionIndicator(project_id=project.id, lot_code=lot, kind=kind,
                                            bidders=sorted(orgs[m].code for m in members),
                                            detail={}, found_at=now))
    for indicator in found:
        appended = log.append(session, now=now, actor=SYSTEM_ACTOR, action="bid.collusion_indicator",
                              subject=f"project:{project.id}", hidden=True,
                              data={"lot": indicator.lot_code, "kind": indicator.kind,
                                    "bidders": indicator.bidders, "detail": indicator.detail},
                              readers={"roles": ["supervisor"]})
        indicator.log_index = appended.index
        session.add(indicator)
    session.flush()
    return found


def _shared_groups(orgs: dict[int, Organisation], bidders: set[int], subs: list[Submission],
                   securities: list[BidSecurity]) -> list[tuple[str, frozenset[int]]]:
    """Each (kind, bidders) group of two or more bidders sharing one value, without repeats."""
    keyed: dict[tuple[str, Any], set[int]] = {}

    def add(kind: str, value: Any, bidder: int) -> None:
        if value is not None and value != "":
            keyed.setdefault((kind, value), set()).add(bidder)

    for bidder in bidders:
        org = orgs[bidder]
        add("same_legal_representative", org.legal_representative, bidder)
        # A controller groups with what it controls, and siblings under one controller group.
        add("control_relationship", org.id, bidder)
        add("control_relationship", org.controlled_by_id, bidder)
    for sub in subs:
        add("same_client_address", sub.client_address, sub.bidder_org_id)
        add("identical_file", sub.ciphertext_sha256, sub.bidder_org_id)
    for security in securities:
        add("same_payer_account", security.payer_account, security.bidder_org_id)
    groups: list[tuple[str, frozenset[int]]] = []
    seen: set[tuple[str, frozenset[int]]] = set()
    for (kind, _value), members in sorted(keyed.items(), key=lambda item: (item[0][0], sorted(item[1]))):
        group = (kind, frozenset(members))
        if len(members) >= 2 and group not in seen:
            seen.add(group)
            groups.append(group)
    return groups


__all__ = ["LogSigner", "lock_tender", "ensure_closed", "close_due", "closing_of", "is_closed",
           "require_closed", "closing_proof", "live_submissions", "file_entry", "record_indicators",
           "shares_for", "listed_files", "file_for_download"]
