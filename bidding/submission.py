"""Sealed-bid submission, receipts, withdrawals and bid securities (PROTOCOL §5).

A submission is two requests. The signed manifest comes first and is checked as far as it
can be without the file (signature, bidder, tender, lot, policy, nonce, supersede); that
creates a *pending upload*, which is not a bid and is not logged as one. Then the ``.ebid``
bytes stream through the key-less framing check into the blob store; the header and the
hashes are checked against the manifest and the policy; and only then, in one transaction
under the per-tender lock that closing takes exclusively, with ``now`` read once the lock
is held, is the deadline checked and the submission stored and logged (hidden). The
receipt is signed after the commit, so an acknowledged bid is never lost.

Every refusal has its own stable code, stores nothing, and is logged by the view in its
own transaction (:func:`log_refusal`), hidden while the tender is open.

Services take ``(session, actor, now or now_fn, ...)`` and values (keys, a blob store),
never the request.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audits import log
from bidding import closing as closing_mod
from bidding.models import (LIVE, SUPERSEDED, WITHDRAWN, BidSecurity, PendingUpload, Submission, UsedNonce,
                            Withdrawal)
from bidding.policy import crypto_error, parsed_policy, policy_required, tender_id
from core.actor import Actor
from core.blobs import BlobTooLarge, StoredBlob
from core.errors import AppError, Conflict, Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from crypto import manifest as crypto_manifest
from crypto import sealed
from crypto.canonical import b64decode, canonical_json, sha256_hex
from crypto.errors import CryptoError
from crypto.policy import BIDDER, Policy
from crypto.signing import MANIFEST, RECEIPT, WITHDRAW, envelope_kid, sign_object, verify_object
from trading import projects
from trading.domain import Role, Status
from trading.models import Lot, Project, SigningKey

# A pending upload lives at most this long (and never past the deadline): long enough for
# a slow link to send a large proposal, short enough that stale rows do not pile up.
PENDING_TTL = timedelta(hours=24)
# Who may read a bid's hidden log detail once the tender has closed (the bidder can always).
READERS_AFTER_CLOSING = ["agent", "tenderee", "supervisor"]


# --------------------------------------------------------------------------- shared checks


def require_bidder(actor: Actor) -> None:
    """Only an account holding role bidder, in an organisation, submits or withdraws."""
    if not actor.has(Role.BIDDER) or actor.org_id is None or actor.org_code is None:
        raise Forbidden("Only bidders (accounts of a bidding organisation) may do this", code="not_a_bidder",
                        message_zh="仅投标人账户可执行此操作")


def parse_signed(body: Any, name: str) -> dict[str, Any]:
    """The signed object ``{name: payload, "signature", "kid"}`` from a request body.

    Accepts it bare or inside ``{"data": ...}`` (the platform's envelope), so a sealing
    tool can post its ``.manifest.json`` file as written.
    """
    if isinstance(body, dict) and set(body) == {"data"}:
        body = body["data"]
    if isinstance(body, dict) and name in body and not body.get("signature"):
        raise ValidationFailed(f"The {name} is not signed", code="bad_signature",
                               message_zh="缺少签名", reason="missing")
    try:
        envelope_kid(body, name)
    except CryptoError as exc:
        raise crypto_error(exc, code="bad_envelope") from None
    return body


def verify_bidder_signature(session: Session, actor: Actor, envelope: dict[str, Any], name: str,
                            domain: bytes) -> dict[str, Any]:
    """Verify a bidder's signed object with a key registered to the authenticated account."""
    key = session.get(SigningKey, envelope["kid"])
    if key is None or key.revoked_at is not None or key.user_id != actor.user_id:
        raise ValidationFailed("The signing key is not registered to your account", code="unknown_key",
                               message_zh="签名密钥未登记在您的账户下", kid=envelope["kid"])
    try:
        return verify_object(envelope, name, domain, bytes(key.public_key))
    except CryptoError as exc:
        raise crypto_error(exc, code="bad_signature") from None


def _lot(session: Session, project: Project, code: str) -> Lot:
    lot = session.execute(sa.select(Lot).where(Lot.project_id == project.id, Lot.code == code)).scalar_one_or_none()
    if lot is None:
        raise ValidationFailed(f"The tender has no lot {code}", code="lot_unknown",
                               message_zh=f"该项目没有标段 {code}", lot=code)
    return lot


def check_open(session: Session, project: Project, now: datetime) -> None:
    """Bids are accepted while the tender is in bidding and ``now`` is before the deadline."""
    if (project.bid_deadline is not None and now >= project.bid_deadline) or closing_mod.is_closed(session, project.id):
        raise Conflict("The bid deadline has passed", code="bid_deadline_passed",
                       message_zh="投标截止时间已过", deadline=project.bid_deadline)
    status = projects.status_of(project, now)
    if status != Status.BIDDING or project.bid_deadline is None:
        raise Conflict("The tender is not accepting bids", code="tender_not_open",
                       message_zh="该项目当前不接受投标", project_status=str(status))


def check_nonce(session: Session, bidder_org_id: int, nonce: str) -> None:
    if session.get(UsedNonce, (bidder_org_id, nonce)) is not None:
        raise Conflict("This nonce was already used by your organisation", code="nonce_reused",
                       message_zh="该随机数已被使用")


def live_receipt(session: Session, project_id: int, lot: str, bidder_org_id: int, file: str) -> Submission | None:
    return session.execute(sa.select(Submission).where(
        Submission.project_id == project_id, Submission.lot_code == lot, Submission.bidder_org_id == bidder_org_id,
        Submission.file == file, Submission.state == LIVE)).scalar_one_or_none()


def check_supersedes(session: Session, project_id: int, manifest: dict[str, Any], bidder_org_id: int) -> Submission | None:
    """A file name with a live receipt must name it in ``supersedes``; else it must be null."""
    live = live_receipt(session, project_id, manifest["lot"], bidder_org_id, manifest["file"])
    named = manifest["supersedes"]
    if live is None and named is not None:
        raise Conflict("supersedes names no live receipt of this file", code="supersedes_not_live",
                       message_zh="supersedes 所指回执不是该文件的有效回执", supersedes=named)
    if live is not None and named is None:
        raise Conflict("This file already has a live receipt: name it in supersedes",
                       code="supersedes_required", message_zh="该文件已有有效回执，须在 supersedes 中注明",
                       live=live.manifest_sha256)
    if live is not None and named != live.manifest_sha256:
        raise Conflict("supersedes must name the file's live receipt", code="supersedes_not_live",
                       message_zh="supersedes 必须为该文件当前有效的回执", supersedes=named)
    return live


def _check_policy_fields(manifest: dict[str, Any], row_sha256: str, policy: Policy) -> None:
    if manifest["policy_sha256"] != row_sha256:
        raise ValidationFailed("The file is not sealed under the published policy", code="policy_mismatch",
                               message_zh="文件未按已发布的开标策略加密", field="policy_sha256")
    if [s["i"] for s in manifest["shares"]] != [c.i for c in policy.custodians]:
        raise ValidationFailed("The manifest must carry one share per custodian", code="policy_mismatch",
                               message_zh="清单须为每位监管人各含一份密钥份额", field="shares")


# --------------------------------------------------------------------------- step 1: manifest


@dataclass(frozen=True)
class Started:
    """The outcome of posting a manifest: an upload to make, or the stored receipt."""

    manifest_sha256: str
    receipt: dict[str, Any] | None = None   # set when this manifest is already stored (a retry)


def start_submission(session: Session, actor: Actor, now: datetime, project_id: int, body: Any,
                     max_upload_bytes: int) -> Started:
    """Check a signed manifest and open a pending upload for its file (PROTOCOL §5, §9).

    A manifest already stored returns its receipt, looked up before the deadline check so a
    bidder who lost the first answer can still get it after the deadline.
    """
    require_bidder(actor)
    envelope = parse_signed(body, "manifest")
    try:
        crypto_manifest.check_manifest(envelope["manifest"])
    except CryptoError as exc:
        raise crypto_error(exc) from None
    manifest = verify_bidder_signature(session, actor, envelope, "manifest", MANIFEST)
    project = projects.get_project(session, actor, project_id)
    if manifest["bidder"] != actor.org_code:
        raise Forbidden("The manifest names another bidder", code="bidder_mismatch",
                        message_zh="清单中的投标人不是您的单位", bidder=manifest["bidder"])
    receipt_id = crypto_manifest.manifest_sha256(manifest)
    stored = session.execute(sa.select(Submission).where(Submission.manifest_sha256 == receipt_id)).scalar_one_or_none()
    if stored is not None and stored.project_id == project.id and stored.bidder_org_id == actor.org_id:
        return Started(receipt_id, receipt=stored.receipt)
    if manifest["tender"] != tender_id(project):
        raise ValidationFailed("The manifest is for another tender", code="tender_mismatch",
                               message_zh="清单所属项目与本项目不符", tender=manifest["tender"])
    _lot(session, project, manifest["lot"])
    row = policy_required(session, project)
    _check_policy_fields(manifest, row.sha256, parsed_policy(row))
    check_open(session, project, now)
    if manifest["size"] > max_upload_bytes:
        raise PayloadTooLarge(f"Files are limited to {max_upload_bytes} bytes", code="upload_too_large",
                              message_zh=f"文件不得超过 {max_upload_bytes} 字节", limit=max_upload_bytes)
    check_nonce(session, actor.org_id, manifest["nonce"])  # type: ignore[arg-type]
    check_supersedes(session, project.id, manifest, actor.org_id)  # type: ignore[arg-type]
    pending = session.execute(sa.select(PendingUpload).where(
        PendingUpload.project_id == project.id, PendingUpload.manifest_sha256 == receipt_id)).scalar_one_or_none()
    expires_at = min(project.bid_deadline, now + PENDING_TTL)  # type: ignore[type-var]
    if pending is None:
        session.add(PendingUpload(project_id=project.id, manifest_sha256=receipt_id, lot_code=manifest["lot"],
                                  bidder_org_id=actor.org_id, user_id=actor.user_id, file=manifest["file"],
                                  envelope=envelope, created_at=now, expires_at=expires_at))
    else:
        pending.expires_at = expires_at  # posting the manifest again renews the upload
    session.flush()
    return Started(receipt_id)


def upload_path(project_id: int, manifest_sha256: str) -> str:
    return f"/api/v1/tenders/{project_id}/uploads/{manifest_sha256}"


# --------------------------------------------------------------------------- step 2: upload


@dataclass(frozen=True)
class PendingFile:
    """What an upload needs of its pending row, as plain values: the transaction that read
    the row ends before the body streams in (SQLite holds its write lock per transaction)."""

    project_id: int
    manifest_sha256: str
    manifest: dict[str, Any]
    envelope: dict[str, Any]
    size: int


def find_upload(session: Session, actor: Actor, now: datetime, project_id: int,
                manifest_sha256: str) -> PendingFile | dict[str, Any]:
    """The pending upload to receive, or the stored receipt when this file is already in."""
    require_bidder(actor)
    project = projects.get_project(session, actor, project_id)
    stored = session.execute(sa.select(Submission).where(Submission.manifest_sha256 == manifest_sha256,
                                                         Submission.project_id == project.id)).scalar_one_or_none()
    if stored is not None and stored.bidder_org_id == actor.org_id:
        return stored.receipt
    # a late upload is refused before its body is read (and closing removed its pending row)
    check_open(session, project, now)
    pending = session.execute(sa.select(PendingUpload).where(
        PendingUpload.project_id == project.id, PendingUpload.manifest_sha256 == manifest_sha256)).scalar_one_or_none()
    if pending is None or pending.bidder_org_id != actor.org_id:
        # another organisation's pending upload is as unknown as none: nothing leaks
        raise NotFound("No upload is pending under this address: post the manifest first",
                       code="upload_unknown", message_zh="没有待上传的文件，请先提交清单")
    manifest = pending.envelope["manifest"]
    return PendingFile(project_id=project.id, manifest_sha256=manifest_sha256, manifest=manifest,
                       envelope=pending.envelope, size=manifest["size"])


@dataclass(frozen=True)
class ReceivedFile:
    """A complete, well-framed upload now in the blob store."""

    blob: StoredBlob
    framing: sealed.FramingResult


def receive_file(blobs: Any, chunks: Iterable[bytes], expected_size: int) -> ReceivedFile:
    """Stream the upload through the framing check into the blob store, in constant memory.

    Reading stops one byte past the manifest's size, and a file whose framing fails or
    that ends early is not kept (the store removes its temporary file).
    """
    validator = sealed.FramingValidator()
    finished: list[sealed.FramingResult] = []

    def checked() -> Iterator[bytes]:
        yield from chunks
        finished.append(validator.finish())  # raises inside put_stream: nothing is kept

    try:
        blob = blobs.put_stream(checked(), inspect=validator.feed, max_size=expected_size)
    except CryptoError as exc:
        raise ValidationFailed(f"The file is not a well-formed sealed file: {exc.message}", code="bad_framing",
                               message_zh="文件不是格式正确的加密投标文件", crypto_code=exc.code) from None
    except BlobTooLarge:
        raise ValidationFailed("The file is longer than its manifest says", code="size_mismatch",
                               message_zh="文件大小与清单不符", expected=expected_size) from None
    return ReceivedFile(blob=blob, framing=finished[0])


def check_file(session: Session, pending: PendingFile, received: ReceivedFile) -> None:
    """The uploaded header and bytes against the signed manifest and the published policy."""
    manifest, framing = pending.manifest, received.framing
    if framing.header_sha256 != manifest["header_sha256"]:
        raise ValidationFailed("The file's header is not the one the manifest signed", code="header_hash_mismatch",
                               message_zh="文件头哈希与清单不符")
    header = framing.header
    for field in ("tender", "lot", "bidder", "file"):
        if header[field] != manifest[field]:
            raise ValidationFailed(f"The header names another {field}", code=f"{field}_mismatch",
                                   message_zh=f"文件头中的 {field} 与清单不符", field=field)
    row = policy_required(session, session.get(Project, pending.project_id))  # type: ignore[arg-type]
    policy = parsed_policy(row)
    if header["policy_sha256"] != row.sha256:
        raise ValidationFailed("The header is not sealed under the published policy", code="policy_mismatch",
                               message_zh="文件头与已发布的开标策略不符", field="policy_sha256")
    try:
        crypto_manifest.check_manifest_against_header(manifest, framing.header_bytes, policy)
    except CryptoError as exc:
        # threshold or custodian keys that differ from the policy
        raise crypto_error(exc, code="policy_mismatch") from None
    if received.blob.sha256 != manifest["ciphertext_sha256"]:
        raise ValidationFailed("The file's hash differs from the manifest's", code="hash_mismatch",
                               message_zh="文件哈希与清单不符")
    if received.blob.size != manifest["size"]:
        raise ValidationFailed("The file's size differs from the manifest's", code="size_mismatch",
                               message_zh="文件大小与清单不符", expected=manifest["size"], got=received.blob.size)


@dataclass(frozen=True)
class Stored:
    receipt: dict[str, Any]
    created: bool


def store_submission(session: Session, actor: Actor, now_fn: Callable[[], datetime], pending: PendingFile,
                     received: ReceivedFile, client_address: str | None = None) -> Stored:
    """Store a checked upload as a bid, under the tender lock, if it finished in time.

    ``now_fn`` is called once the lock is held: that instant is the receipt time and the one
    the deadline is checked against (PROTOCOL §5), however long the upload took.
    """
    project = closing_mod.lock_tender(session, pending.project_id, exclusive=False)
    now = now_fn()
    assert project is not None
    stored = session.execute(sa.select(Submission).where(
        Submission.manifest_sha256 == pending.manifest_sha256)).scalar_one_or_none()
    if stored is not None:
        return Stored(stored.receipt, created=False)
    manifest = pending.manifest
    check_open(session, project, now)
    row = session.execute(sa.select(PendingUpload).where(
        PendingUpload.project_id == project.id,
        PendingUpload.manifest_sha256 == pending.manifest_sha256)).scalar_one_or_none()
    if row is None or row.bidder_org_id != actor.org_id:
        raise NotFound("No upload is pending under this address", code="upload_unknown",
                       message_zh="没有待上传的文件，请先提交清单")
    if now >= row.expires_at:
        raise Conflict("This upload has expired: post the manifest again", code="upload_expired",
                       message_zh="上传已过期，请重新提交清单")
    # a policy replaced while the file streamed in (possible only while no bid is stored)
    if policy_required(session, project).sha256 != manifest["policy_sha256"]:
        raise ValidationFailed("The policy changed: seal the file again", code="policy_mismatch",
                               message_zh="开标策略已变更，请重新加密")
    check_nonce(session, actor.org_id, manifest["nonce"])  # type: ignore[arg-type]
    replaced = check_supersedes(session, project.id, manifest, actor.org_id)  # type: ignore[arg-type]
    lot = _lot(session, project, manifest["lot"])
    try:
        with session.begin_nested():
            return Stored(_insert(session, actor, now, project, lot, pending, received, replaced, row,
                                  client_address), created=True)
    except IntegrityError:
        # PostgreSQL: uploads share the tender lock, so a concurrent upload of the same
        # manifest, nonce or file name can pass the checks above; the unique indexes catch
        # it. Report what the winner made true.
        stored = session.execute(sa.select(Submission).where(
            Submission.manifest_sha256 == pending.manifest_sha256)).scalar_one_or_none()
        if stored is not None:
            return Stored(stored.receipt, created=False)
        check_nonce(session, actor.org_id, manifest["nonce"])  # type: ignore[arg-type]
        check_supersedes(session, project.id, manifest, actor.org_id)  # type: ignore[arg-type]
        raise Conflict("A concurrent submission changed this bid; try again", code="concurrent_submission",
                       message_zh="有并发递交改变了该投标，请重试") from None


def _insert(session: Session, actor: Actor, now: datetime, project: Project, lot: Lot, pending: PendingFile,
            received: ReceivedFile, replaced: Submission | None, row: PendingUpload,
            client_address: str | None) -> dict[str, Any]:
    manifest = pending.manifest
    if replaced is not None:
        replaced.state, replaced.superseded_by = SUPERSEDED, pending.manifest_sha256
        session.flush()  # before the new live row: the one-live-file index must see it go
    appended = log.append(
        session, now=now, actor=actor.log_name, action="bid.submitted", subject=f"project:{project.id}",
        hidden=True,
        data={"tender": manifest["tender"], "lot": manifest["lot"], "bidder": manifest["bidder"],
              "file": manifest["file"], "manifest_sha256": pending.manifest_sha256,
              "header_sha256": manifest["header_sha256"], "ciphertext_sha256": manifest["ciphertext_sha256"],
              "size": manifest["size"], "supersedes": manifest["supersedes"]},
        detail={"manifest": pending.envelope},
        readers={"users": [actor.user_id], "after_closing": READERS_AFTER_CLOSING})
    assert appended.salt is not None
    receipt = crypto_manifest.make_receipt(manifest, now, appended.index, appended.salt)
    session.add(Submission(
        project_id=project.id, lot_id=lot.id, lot_code=lot.code, bidder_org_id=actor.org_id,
        bidder_code=actor.org_code, user_id=actor.user_id, file=manifest["file"],
        manifest_sha256=pending.manifest_sha256, manifest=manifest,
        manifest_signature=pending.envelope["signature"], manifest_kid=pending.envelope["kid"],
        header=received.framing.header_bytes, header_sha256=received.framing.header_sha256,
        policy_sha256=manifest["policy_sha256"], ciphertext_sha256=received.blob.sha256,
        size=received.blob.size, commitment=b64decode(manifest["commitment"], "commitment", length=32),
        nonce=manifest["nonce"], supersedes=manifest["supersedes"], received_at=now,
        log_index=appended.index, detail_salt=appended.salt, receipt=receipt,
        client_address=(client_address or "")[:64] or None, state=LIVE))
    session.add(UsedNonce(bidder_org_id=actor.org_id, nonce=manifest["nonce"],
                          used_by=f"manifest:{pending.manifest_sha256}", used_at=now))
    # a bulk delete: a racing twin may have removed the row already, which is no error
    session.execute(sa.delete(PendingUpload).where(PendingUpload.id == row.id))
    session.flush()
    return receipt


def sign_receipt(receipt: dict[str, Any], receipt_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed receipt ``{"receipt", "signature", "kid"}`` (domain ``ebid/v1 receipt``).

    Ed25519 is deterministic, so signing a stored receipt again gives the same object.
    """
    return sign_object("receipt", receipt, receipt_key, RECEIPT)


def own_receipts(session: Session, actor: Actor, project_id: int) -> list[Submission]:
    """The caller's organisation's receipts in this tender, oldest first; nobody else's."""
    require_bidder(actor)
    project = projects.get_project(session, actor, project_id)
    return list(session.execute(sa.select(Submission).where(
        Submission.project_id == project.id, Submission.bidder_org_id == actor.org_id)
        .order_by(Submission.id)).scalars())


# --------------------------------------------------------------------------- withdrawal


@dataclass(frozen=True)
class Withdrawn:
    withdrawal_sha256: str
    receipts: list[str]
    withdrawn_at: datetime
    log_index: int
    detail_salt: bytes


def withdraw(session: Session, actor: Actor, now_fn: Callable[[], datetime], project_id: int,
             body: Any) -> Withdrawn:
    """Withdraw live receipts with a signed withdrawal, before the deadline only (RULES B2)."""
    require_bidder(actor)
    envelope = parse_signed(body, "withdrawal")
    try:
        crypto_manifest.check_withdrawal(envelope["withdrawal"])
    except CryptoError as exc:
        raise crypto_error(exc) from None
    withdrawal = verify_bidder_signature(session, actor, envelope, "withdrawal", WITHDRAW)
    if withdrawal["bidder"] != actor.org_code:
        raise Forbidden("The withdrawal names another bidder", code="bidder_mismatch",
                        message_zh="撤回函中的投标人不是您的单位")
    projects.get_project(session, actor, project_id)
    project = closing_mod.lock_tender(session, project_id, exclusive=False)
    now = now_fn()
    assert project is not None
    if withdrawal["tender"] != tender_id(project):
        raise ValidationFailed("The withdrawal is for another tender", code="tender_mismatch",
                               message_zh="撤回函所属项目与本项目不符")
    _lot(session, project, withdrawal["lot"])
    check_open(session, project, now)
    check_nonce(session, actor.org_id, withdrawal["nonce"])  # type: ignore[arg-type]
    targets = session.execute(sa.select(Submission).where(
        Submission.project_id == project.id, Submission.manifest_sha256.in_(withdrawal["receipts"]))).scalars().all()
    by_id = {s.manifest_sha256: s for s in targets}
    for receipt_id in withdrawal["receipts"]:
        sub = by_id.get(receipt_id)
        if sub is None or sub.bidder_org_id != actor.org_id or sub.lot_code != withdrawal["lot"] or sub.state != LIVE:
            raise Conflict("Only live receipts of your bid on this lot can be withdrawn", code="receipt_not_live",
                           message_zh="只能撤回本单位该标段当前有效的回执", receipt=receipt_id)
    withdrawal_sha256 = sha256_hex(canonical_json(withdrawal))
    appended = log.append(
        session, now=now, actor=actor.log_name, action="bid.withdrawn", subject=f"project:{project.id}",
        hidden=True,
        data={"tender": withdrawal["tender"], "lot": withdrawal["lot"], "bidder": withdrawal["bidder"],
              "receipts": withdrawal["receipts"], "withdrawal_sha256": withdrawal_sha256},
        detail={"withdrawal": envelope},
        readers={"users": [actor.user_id], "after_closing": READERS_AFTER_CLOSING})
    assert appended.salt is not None
    row = Withdrawal(project_id=project.id, lot_code=withdrawal["lot"], bidder_org_id=actor.org_id,
                     user_id=actor.user_id, withdrawal_sha256=withdrawal_sha256, withdrawal=withdrawal,
                     signature=envelope["signature"], kid=envelope["kid"], receipts=withdrawal["receipts"],
                     withdrawn_at=now, log_index=appended.index, detail_salt=appended.salt)
    session.add(row)
    session.add(UsedNonce(bidder_org_id=actor.org_id, nonce=withdrawal["nonce"],
                          used_by=f"withdrawal:{withdrawal_sha256}", used_at=now))
    session.flush()
    for sub in targets:
        sub.state, sub.withdrawal_id = WITHDRAWN, row.id
    session.flush()
    return Withdrawn(withdrawal_sha256, list(withdrawal["receipts"]), now, appended.index, appended.salt)


# --------------------------------------------------------------------------- bid security


def required_security(project: Project, lot: Lot) -> Decimal | None:
    """The security a bid on ``lot`` must carry: the lot's, else the project's."""
    return lot.bid_security if lot.bid_security is not None else project.bid_security


def pay_security(session: Session, actor: Actor, now_fn: Callable[[], datetime], project_id: int,
                 body: dict[str, Any]) -> BidSecurity:
    """Record a bid security payment (投标保证金) before the deadline; hidden until closing.

    The cap of RULES B1 is checked on the required amount at publication (the rulebook's
    job); here the payment must cover what the tender requires.
    """
    require_bidder(actor)
    projects.get_project(session, actor, project_id)
    project = closing_mod.lock_tender(session, project_id, exclusive=False)
    now = now_fn()
    assert project is not None
    lot = _lot(session, project, body["lot"])
    check_open(session, project, now)
    required = required_security(project, lot)
    if required is None:
        raise Conflict("This tender requires no bid security", code="security_not_required",
                       message_zh="该标段不要求投标保证金")
    if body["amount"] < required:
        raise ValidationFailed(f"The bid security is {required}", code="security_insufficient",
                               message_zh=f"投标保证金应为 {required}", required=str(required), field="amount")
    appended = log.append(session, now=now, actor=actor.log_name, action="bid.security_paid",
                          subject=f"project:{project.id}", hidden=True,
                          data={"lot": lot.code, "bidder": actor.org_code, "amount": f"{body['amount']:.2f}",
                                "payer_account": body["payer_account"]},
                          readers={"users": [actor.user_id], "after_closing": READERS_AFTER_CLOSING})
    row = BidSecurity(project_id=project.id, lot_code=lot.code, bidder_org_id=actor.org_id, user_id=actor.user_id,
                      amount=body["amount"], payer_account=body["payer_account"], paid_at=now,
                      log_index=appended.index, status="paid")
    session.add(row)
    session.flush()
    return row


def list_securities(session: Session, actor: Actor, project_id: int) -> list[BidSecurity]:
    """A bidder sees its own securities; the manager and supervisors see all after closing."""
    project = projects.get_project(session, actor, project_id)
    query = sa.select(BidSecurity).where(BidSecurity.project_id == project.id).order_by(BidSecurity.id)
    if actor.has(Role.BIDDER) and actor.org_id is not None:
        return list(session.execute(query.where(BidSecurity.bidder_org_id == actor.org_id)).scalars())
    if not (projects.manages(actor, project) or actor.has(Role.SUPERVISOR)):
        raise Forbidden("Not allowed", code="forbidden")
    closing_mod.require_closed(session, project.id)
    return list(session.execute(query).scalars())


# --------------------------------------------------------------------------- refusals


def log_refusal(session: Session, actor: Actor, now: datetime, project_id: int, stage: str,
                error: AppError) -> None:
    """Log a refused attempt (PROTOCOL §7: refused submissions too), hidden before closing.

    Called by the view in a fresh transaction after the refused one rolled back.
    """
    hidden = not closing_mod.is_closed(session, project_id)
    log.append(session, now=now, actor=actor.log_name, action="bid.refused", subject=f"project:{project_id}",
               hidden=hidden, data={"stage": stage, "code": error.code},
               readers={"users": [actor.user_id]} if actor.user_id is not None else None)


__all__ = ["start_submission", "find_upload", "receive_file", "check_file", "store_submission", "sign_receipt",
           "own_receipts", "withdraw", "pay_security", "list_securities", "log_refusal", "upload_path",
           "PendingFile", "ReceivedFile", "Started", "Stored", "Withdrawn", "check_open", "require_bidder"]
