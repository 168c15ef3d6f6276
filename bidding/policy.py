"""The opening policy of a tender (PROTOCOL §2): who holds the shares of every bid key.

The project's manager (``trading.projects.manages``) sets the policy from the custodians'
signed statements; the platform checks each statement and that its signing key is
registered to an account entitled to hold a share, assembles the canonical policy with
``"tender": str(project.id)`` and stores those exact bytes. It may be replaced until the
first bid is stored, and is frozen from then on (a bid sealed to one policy cannot be
opened under another).

Three practices are allowed, all one mechanism (§2):
``bidder`` 1 of 1 with role bidder (the bidder's CA-key practice); ``joint`` 2 of 2,
bidder and agent; ``officials`` k of n custodians, no bidder slot, 2 ≤ k ≤ n.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from bidding.models import Closing, OpeningPolicy, Submission
from core.actor import Actor
from core.errors import Conflict, Forbidden, ValidationFailed
from crypto import policy as crypto_policy
from crypto.errors import CryptoError
from trading import projects
from trading.domain import Role, Status
from trading.models import Project, SigningKey, User

BIDDER_MODE, JOINT_MODE, OFFICIALS_MODE = "bidder", "joint", "officials"
# A release window longer than a week would leave an opening hanging; shorter than a
# minute gives custodians no time to act after the deadline.
MIN_RELEASE_WINDOW_S = 60
MAX_RELEASE_WINDOW_S = 7 * 24 * 3600
# Roles that may hold a share on their own account, beside the dedicated custodian role.
OFFICIAL_ROLES = (Role.AGENT, Role.TENDEREE, Role.SUPERVISOR)
# Statuses in which the policy may still be set or replaced (before the deadline).
_EDITABLE = (Status.DRAFT, Status.PUBLISHED, Status.BIDDING)


@dataclass(frozen=True)
class CheckedPolicy:
    """A policy the platform would publish: its bytes, its parse and its mode."""

    raw: bytes
    parsed: crypto_policy.Policy
    mode: str


def tender_id(project: Project) -> str:
    """The protocol's ``tender`` identifier of a project."""
    return str(project.id)


def crypto_error(exc: CryptoError, status: type = ValidationFailed, code: str | None = None) -> Any:
    """A platform error for a crypto refusal, keeping the crypto code in ``details``."""
    return status(exc.message, code=code or exc.code, crypto_code=exc.code)


def mode_of(parsed: crypto_policy.Policy) -> str:
    """Which allowed practice a policy follows; ``policy_mode_unsupported`` otherwise."""
    roles = [c.role for c in parsed.custodians]
    if parsed.n == 1 and parsed.threshold == 1 and roles == [crypto_policy.BIDDER]:
        return BIDDER_MODE
    if parsed.n == 2 and parsed.threshold == 2 and sorted(roles) == [Role.AGENT, crypto_policy.BIDDER]:
        return JOINT_MODE
    if crypto_policy.BIDDER not in roles and parsed.n >= 2 and 2 <= parsed.threshold <= parsed.n:
        # k ≥ 2: one official alone must not be able to open every bid
        return OFFICIALS_MODE
    raise ValidationFailed("Allowed policies: bidder-decrypts (1 of 1, role bidder), joint (2 of 2, "
                           "bidder and agent), or k of n officials with 2 ≤ k ≤ n",
                           code="policy_mode_unsupported",
                           message_zh="开标策略仅支持：投标人自行解密（1/1）、投标人与代理机构共同解密（2/2）、"
                                      "或 k/n 名监管人（2 ≤ k ≤ n）",
                           threshold=parsed.threshold, roles=roles)


def _entitled(user: User, role: str, project: Project) -> bool:
    """May ``user`` hold the share of a custodian entry with ``role`` in this project?"""
    roles = set(user.roles)
    if Role.CUSTODIAN in roles:
        return True
    if role not in OFFICIAL_ROLES or role not in roles:
        return False
    # an official holds a share for its own organisation's part in this project only
    org_of_role = {Role.AGENT: project.agent_org_id, Role.TENDEREE: project.tenderee_org_id,
                   Role.SUPERVISOR: project.supervisor_org_id}[Role(role)]
    if org_of_role is None:
        # no supervising body named on the project: any supervisor; no agent: nobody
        return role == Role.SUPERVISOR
    return user.org_id == org_of_role


def _check_custodian_keys(session: Session, project: Project, parsed: crypto_policy.Policy) -> None:
    """Each statement's signing key must be registered to a user entitled to its slot."""
    seen: dict[str, int] = {}
    for custodian in parsed.custodians:
        if custodian.role == crypto_policy.BIDDER:
            continue
        assert custodian.signer is not None and custodian.signing_key is not None
        if custodian.signer in seen:
            # one person with two slots would hold two shares and break the threshold
            raise ValidationFailed("One signing key holds two custodian slots", code="duplicate_custodian",
                                   message_zh="同一签名密钥占用了两个监管人位置",
                                   i=custodian.i, other=seen[custodian.signer])
        seen[custodian.signer] = custodian.i
        key = session.get(SigningKey, custodian.signer)
        user = session.get(User, key.user_id) if key is not None else None
        if (key is None or key.revoked_at is not None or bytes(key.public_key) != custodian.signing_key
                or user is None or not user.active):
            raise ValidationFailed(f"Custodian {custodian.i}'s signing key is not registered",
                                   code="unknown_key", message_zh=f"第 {custodian.i} 号监管人的签名密钥未登记",
                                   i=custodian.i, signer=custodian.signer)
        if not _entitled(user, custodian.role, project):
            raise ValidationFailed(f"Custodian {custodian.i}'s key belongs to an account that may not "
                                   f"hold a {custodian.role} share", code="key_not_custodian",
                                   message_zh=f"第 {custodian.i} 号监管人的密钥所属账户无权持有该份额",
                                   i=custodian.i, role=custodian.role)


def check_policy(session: Session, project: Project, body: dict[str, Any]) -> CheckedPolicy:
    """Assemble and check the canonical policy for ``project`` from the request body."""
    window = body["release_window_s"]
    if not MIN_RELEASE_WINDOW_S <= window <= MAX_RELEASE_WINDOW_S:
        raise ValidationFailed(f"release_window_s must be {MIN_RELEASE_WINDOW_S}..{MAX_RELEASE_WINDOW_S}",
                               code="bad_policy", field="release_window_s")
    try:
        raw = crypto_policy.make_policy(tender_id(project), body["threshold"], window, body["custodians"])
        parsed = crypto_policy.parse_policy(raw)
    except CryptoError as exc:
        # bad_statement: a signature, kid or signer that does not check; bad_policy: shape
        raise crypto_error(exc) from None
    mode = mode_of(parsed)
    _check_custodian_keys(session, project, parsed)
    return CheckedPolicy(raw=raw, parsed=parsed, mode=mode)


def _editable_project(session: Session, actor: Actor, now: datetime, project_id: int) -> Project:
    project = projects.get_project(session, actor, project_id, for_update=True)
    if not projects.manages(actor, project):
        raise Forbidden("Only the project's agent (or self-procuring tenderee) sets the policy",
                        code="not_manager", message_zh="仅该项目的代理机构（或自行招标的招标人）可设置开标策略")
    status = projects.status_of(project, now)
    deadline_passed = project.bid_deadline is not None and now >= project.bid_deadline
    if status not in _EDITABLE or deadline_passed or session.get(Closing, project.id) is not None:
        raise Conflict("The policy is set before the bid deadline only", code="policy_frozen",
                       message_zh="开标策略只能在投标截止前设置", project_status=str(status))
    return project


def set_policy(session: Session, actor: Actor, now: datetime, project_id: int,
               body: dict[str, Any]) -> OpeningPolicy:
    """Set or replace the tender's opening policy; frozen once a bid is stored.

    Takes the project row exclusively, so no upload can be stored under the old policy
    while it is being replaced.
    """
    project = _editable_project(session, actor, now, project_id)
    has_bid = session.execute(sa.select(Submission.id).where(Submission.project_id == project.id)
                              .limit(1)).first() is not None
    if has_bid:
        raise Conflict("A bid is in: the policy can no longer change", code="policy_frozen",
                       message_zh="已有投标文件递交，开标策略不可更改")
    checked = check_policy(session, project, body)
    appended = log.append(session, now=now, actor=actor.log_name, action="policy.set",
                          subject=f"project:{project.id}",
                          data={"policy_sha256": checked.parsed.sha256, "threshold": checked.parsed.threshold,
                                "n": checked.parsed.n, "mode": checked.mode,
                                "release_window_s": checked.parsed.release_window_s})
    row = session.get(OpeningPolicy, project.id)
    if row is None:
        row = OpeningPolicy(project_id=project.id)
        session.add(row)
    row.raw, row.sha256, row.mode = checked.raw, checked.parsed.sha256, checked.mode
    row.threshold, row.n = checked.parsed.threshold, checked.parsed.n
    row.release_window_s = checked.parsed.release_window_s
    row.set_by_id, row.set_at, row.log_index = actor.user_id, now, appended.index
    session.flush()
    return row


def validate_policy(session: Session, actor: Actor, now: datetime, project_id: int,
                    body: dict[str, Any]) -> CheckedPolicy:
    """Check a policy exactly as :func:`set_policy` would, storing and logging nothing."""
    project = _editable_project(session, actor, now, project_id)
    return check_policy(session, project, body)


def policy_row(session: Session, project_id: int) -> OpeningPolicy | None:
    return session.get(OpeningPolicy, project_id)


def policy_required(session: Session, project: Project) -> OpeningPolicy:
    """The project's policy; ``no_policy`` when a sealed-bid tender has none.

    Meant for publication too; trading cannot import bidding, so today only submissions
    call it (see the report's gap list).
    """
    row = session.get(OpeningPolicy, project.id)
    if row is None:
        raise Conflict("This tender has no opening policy: no bid can be sealed to it", code="no_policy",
                       message_zh="该项目尚未设置开标策略，无法接受投标")
    return row


def parsed_policy(row: OpeningPolicy) -> crypto_policy.Policy:
    """The stored policy parsed (statements re-verified: the bytes are the authority)."""
    return crypto_policy.parse_policy(bytes(row.raw))


def published_policy(session: Session, actor: Actor, project_id: int) -> bytes:
    """The raw canonical policy bytes, to anyone who may see the project."""
    from core.errors import NotFound
    project = projects.get_project(session, actor, project_id)
    row = session.get(OpeningPolicy, project.id)
    if row is None:
        raise NotFound("This tender has no opening policy", code="no_policy",
                       message_zh="该项目尚未设置开标策略")
    return bytes(row.raw)


__all__ = ["set_policy", "validate_policy", "published_policy", "policy_required", "policy_row",
           "parsed_policy", "check_policy", "mode_of", "tender_id", "CheckedPolicy"]
