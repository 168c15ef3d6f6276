"""Draw services (专家抽取, PROTOCOL §8; RULES D1-D6): commitments, requests, reveals,
the committee's confirmations and replacements, and publication of the result.

The pure work is :mod:`trading.draw` and :mod:`trading.recusal`; this module adds the
database, the audit log and who may do what. Services take ``(session, actor, now, ...)``.

The order of a draw, and why:

1. **Commitments.** The platform commits to a fresh 32-byte secret for attempt 1 of each
   lot before the tender closes (:func:`commit_platform`, called by the agent after
   publication, and also whenever the supervisor commits in time); the supervising body
   commits with ``ebid draw commit`` on its own machine. Nobody can commit for attempt 1
   once the tender has closed: the closing root must be unknown to both at commit time.
   For a later attempt (a replacement, or a new draw after a void one) the platform
   commits as soon as the need arises and the supervisor before the request is logged.
2. **Request.** The agent asks for a committee; the request, the eligible lists (fixed
   now, before any secret is revealed, so nobody who learns the seed can still change who
   is eligible) and the closing checkpoint are stored and their hashes logged. The
   platform reveals its own secret in the same transaction: it reveals *first*, so it
   cannot withhold its secret after seeing the supervisor's (a refusal by the supervisor,
   the last revealer, is logged and voids the draw, in public view).
3. **Reveal.** The supervisor posts its secret: a mismatch voids the draw; otherwise the
   seed is computed and the draw run on the stored lists.
4. **Secrecy (D4).** Until the result, names live in the database and in hidden log
   details readable by supervisors: the leaves show hashes, counts and statuses only.
   The seed and the secrets are hidden too, since with the seed and a copy of the pool
   one could compute the committee. :func:`publish_committee` logs everything publicly.

Refusals raise :class:`core.errors.AppError` subclasses; the caller logs them (see
:func:`log_refusal`). An error with ``persist = True`` records a state change (a void or
failed draw, a refused access) that the caller must commit before answering.
"""
from __future__ import annotations

import hashlib
import json
import secrets as secrets_module
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log, merkle
from audits.models import Checkpoint, LogEntry
from core.actor import SYSTEM, Actor
from core.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from crypto.canonical import b64encode, canonical_json
from trading import draw, experts, projects
from trading.domain import Role, Status
from trading.experts_models import (ALTERNATE, COMMITTED, CONFIRMED, DECLINED, FAILED, FIRST,
                                    INVITED, MEMBER, MISMATCH, PENDING, PLATFORM, RECUSED,
                                    REDRAW, REFUSED, REPLACED, REPLACEMENT, REVEALED, STANDBY,
                                    SUPERVISOR, VACATED, VALID, VOID, CommitteeMember,
                                    DrawCommitment, DrawRecord, Expert, ExpertService)
from trading.models import Organisation, Project
from trading.recusal import (Bidder, Parties, QualificationParameters, RecusalParameters,
                             TitleLevel, exclusion_reasons, local_date)

CLOSED_ACTION = "tender.closed"
#: Project statuses in which a committee is formed or changed.
FORMING = (Status.CLOSED, Status.OPENING, Status.EVALUATION)
#: Statuses in which the result is out and the committee public (RULES D4, GP条例 43).
RESULT_OUT = (Status.AWARDED, Status.CONTRACTED)
# Fallbacks while the pinned rules carry no D3/D6 values (RULES D3: GP条例 9 "within 3
# years"; D6: 法 37 "8 years in the field and a senior title").


class DrawStateError(Conflict):
    """The draw is not in a state that allows this."""

    code, message_zh, message_en = "draw_state", "抽取当前状态不允许此操作", "Not allowed in the draw's state"


def _persist(error: AppError) -> AppError:
    error.persist = True  # type: ignore[attr-defined]
    return error


# --------------------------------------------------------------------------- closing

@dataclass(frozen=True)
class ClosingRef:
    """The tender's ``tender.closed`` entry and the first checkpoint that includes it."""

    index: int
    entry: bytes
    data: dict[str, Any]
    checkpoint_size: int
    checkpoint_root: bytes
    checkpoint_note: str

    def bidders(self, lot: str | None = None) -> list[str]:
        """Bidder codes of the live files listed at closing (of one lot, if given)."""
        return draw.sort_ids({f["bidder"] for f in self.data.get("files", [])
                              if lot is None or f.get("lot") == lot})


def find_closing(session: Session, project_id: int) -> ClosingRef | None:
    """The closing of PROTOCOL §6, found through the audit log (trading does not import
    bidding): the ``tender.closed`` entry whose subject is ``project:<id>`` (what
    bidding/closing.py writes; ``tender:<id>`` is accepted too) and the first checkpoint
    whose size exceeds its index. None before closing."""
    row = session.execute(
        sa.select(LogEntry.index, LogEntry.entry)
        .where(LogEntry.action == CLOSED_ACTION,
               LogEntry.subject.in_([f"project:{project_id}", f"tender:{project_id}"]))
        .order_by(LogEntry.index).limit(1)).first()
    if row is None:
        return None
    checkpoint = session.execute(sa.select(Checkpoint).where(Checkpoint.size > row.index)
                                 .order_by(Checkpoint.size).limit(1)).scalar_one_or_none()
    if checkpoint is None:
        return None  # not committed yet: the closing transaction signs its checkpoint
    entry = bytes(row.entry)
    return ClosingRef(row.index, entry, json.loads(entry)["data"], checkpoint.size,
                      bytes(checkpoint.root), checkpoint.note)


def _is_closed(session: Session, project: Project, now: datetime) -> bool:
    # A tender is closed from its deadline on, even before the closing request runs (§6).
    return find_closing(session, project.id) is not None or (
        project.bid_deadline is not None and now >= project.bid_deadline)


# --------------------------------------------------------------------------- rules

def project_rules(project: Project) -> Any:
    """The project's pinned rules (:class:`trading.rulebook.ProjectRules`), or None."""
    from trading.rulebook import ProjectRules
    if project.rules is None:
        return None
    if isinstance(project.rules, str):
        return ProjectRules.from_json(project.rules)
    return ProjectRules.from_dict(project.rules)


def _values(rules: Any, rule_id: str) -> dict[str, Any]:
    """A rule's numbers: the project's pinned rules, or the packaged rulebook's defaults for
    a project pinned before the rule existed (the numbers live in rulebook.toml only)."""
    if rules is not None and rules.applies(rule_id):
        return dict(rules.rule(rule_id).values)
    from trading.rulebook import default_rulebook
    return dict(default_rulebook().resolve(rule_id, "construction", "open_tender", "works").values)


def recusal_parameters(rules: Any) -> RecusalParameters:
    """D3 numbers from the pinned rules, with the statute's defaults where they are absent."""
    values = _values(rules, "D3")
    return RecusalParameters(interest_years=int(values["interest_years"]),
                             service_limit=values.get("service_limit"),
                             service_window_days=values.get("service_window_days"))


def qualification_parameters(rules: Any) -> QualificationParameters:
    """D6 numbers from the pinned rules, with the statute's defaults where they are absent."""
    values = _values(rules, "D6")
    title = values.get("min_title")
    return QualificationParameters(
        min_years_in_field=int(values["min_years_in_field"]),
        min_title=TitleLevel[str(title).upper()])


def check_committee_size(rules: Any, seats: int, representatives: int) -> None:
    """RULES D1 via the rulebook's own check: members = drawn experts + the tenderee's
    representatives (a count: they are named by the tenderee, not drawn), odd, at least
    the minimum, experts at least the share."""
    if rules is None:
        return
    from trading.rules_check import check_committee
    check_committee(rules, seats + representatives, seats)


# --------------------------------------------------------------------------- access

def _load(session: Session, actor: Actor, project_id: int, *, for_update: bool = False) -> Project:
    return projects.get_project(session, actor, project_id, for_update=for_update)


def _lot(project: Project, lot: str | None) -> str:
    codes = [l.code for l in project.lots]
    if lot is None:
        if len(codes) != 1:
            raise ValidationFailed("Name the lot: this project has several", field="lot",
                                   code="lot_required", lots=codes)
        return codes[0]
    if lot not in codes:
        raise NotFound(f"No lot {lot} in this project", code="lot_not_found", field="lot")
    return lot


def _require_supervisor(actor: Actor, project: Project) -> None:
    if not actor.has(Role.SUPERVISOR) or (project.supervisor_org_id is not None
                                          and actor.org_id != project.supervisor_org_id):
        raise Forbidden("Only the project's supervising body may do this",
                        code="supervisor_only", message_zh="仅本项目的监督部门可执行")


def _require_forming(project: Project, now: datetime) -> None:
    status = projects.status_of(project, now)
    if status not in FORMING:
        raise Conflict(f"The committee is not formed while the project is {status}",
                       code="wrong_state", message_zh=f"项目当前状态（{status}）不允许组建评标委员会",
                       project_status=str(status))


def result_is_out(session: Session, project: Project, now: datetime) -> bool:
    """True once the result is out (D4): published by :func:`publish_committee`, or the
    project awarded."""
    if projects.status_of(project, now) in RESULT_OUT:
        return True
    return session.execute(sa.select(DrawRecord.id).where(
        DrawRecord.project_id == project.id, DrawRecord.published_at.is_not(None)).limit(1)
    ).first() is not None


def _subject(project: Project) -> str:
    return f"project:{project.id}"


def _loggable(details: dict[str, Any]) -> dict[str, Any]:
    """Error details as canonical-JSON-safe log data (integers, strings, booleans, lists)."""
    def clean(value: Any) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value if 0 <= value < 2**53 else str(value)
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()
                    if isinstance(k, str) and k.isascii() and k.replace("_", "a").isalnum()
                    and k == k.lower()}
        return str(value)  # Fraction, Decimal, datetime
    return clean(details)


def log_refusal(session: Session, actor: Actor, now: datetime, action: str, subject: str,
                error: AppError) -> None:
    """Record a refused attempt (after the caller rolled it back): the code and details,
    which never name a committee member."""
    log.append(session, now=now, actor=actor.log_name, action=action, subject=subject,
               data={"code": error.code, "details": _loggable(dict(error.details))})


# --------------------------------------------------------------------------- commitments

def _commitment(session: Session, project_id: int, lot: str, attempt: int,
                party: str) -> DrawCommitment | None:
    return session.execute(sa.select(DrawCommitment).where(
        DrawCommitment.project_id == project_id, DrawCommitment.lot == lot,
        DrawCommitment.attempt == attempt, DrawCommitment.party == party)).scalar_one_or_none()


def _platform_commit(session: Session, actor: Actor, now: datetime, project: Project, lot: str,
                     attempt: int) -> DrawCommitment:
    existing = _commitment(session, project.id, lot, attempt, PLATFORM)
    if existing is not None:
        return existing
    secret = secrets_module.token_bytes(draw.SECRET_SIZE)
    row = DrawCommitment(project_id=project.id, lot=lot, attempt=attempt, party=PLATFORM,
                         commitment=draw.commitment(secret), secret=secret, status=COMMITTED,
                         committed_by=actor.log_name, committed_at=now, commit_log_index=0)
    row.commit_log_index = _log_commit(session, actor, now, project, row)
    session.add(row)
    return row


def _log_commit(session: Session, actor: Actor, now: datetime, project: Project,
                row: DrawCommitment) -> int:
    return log.append(session, now=now, actor=actor.log_name, action="draw.committed",
                      subject=_subject(project),
                      data={"tender": str(project.id), "lot": row.lot, "attempt": row.attempt,
                            "party": row.party, "commitment": row.commitment}).index


def commit_platform(session: Session, project: Project, now: datetime, *,
                    actor: Actor = SYSTEM) -> list[DrawCommitment]:
    """The platform's commitment for attempt 1 of every lot, before the tender closes.

    Idempotent. Refused with ``commitment_too_late`` once the tender has closed (§8: the
    first draw's commitments precede the closing) and ``not_published`` before publication.
    """
    if project.published_at is None:
        raise Conflict("Publish the project first", code="not_published",
                       message_zh="项目尚未发布")
    if _is_closed(session, project, now):
        raise Conflict("The tender has closed: the first draw's commitments come before",
                       code="commitment_too_late", message_zh="已截标，首次抽取的承诺须在截标前提交")
    return [_platform_commit(session, actor, now, project, lot.code, 1) for lot in project.lots]


def request_platform_commitment(session: Session, actor: Actor, now: datetime,
                                project_id: int) -> list[DrawCommitment]:
    """The agent asks the platform to commit (after publication, before closing)."""
    project = _load(session, actor, project_id, for_update=True)
    if not (projects.manages(actor, project) or actor.has(Role.SUPERVISOR)):
        raise Forbidden("Only the project's agent or supervisor may do this",
                        code="manager_only", message_zh="仅本项目的代理机构或监督部门可执行")
    return commit_platform(session, project, now, actor=actor)


def _next_attempt(session: Session, project_id: int, lot: str) -> int:
    last = session.execute(sa.select(sa.func.max(DrawRecord.attempt)).where(
        DrawRecord.project_id == project_id, DrawRecord.lot == lot)).scalar_one()
    return (last or 0) + 1


def commit_supervisor(session: Session, actor: Actor, now: datetime, project_id: int,
                      body: dict[str, Any]) -> DrawCommitment:
    """The supervising body's commitment (hex from ``ebid draw commit``) for the next
    attempt of a lot. Attempt 1 only before closing (the platform commits alongside if it
    has not yet); a later attempt only before its request is logged. A commitment is never
    replaced (``already_committed``): swapping it would let a party choose its secret late."""
    project = _load(session, actor, project_id, for_update=True)
    _require_supervisor(actor, project)
    lot = _lot(project, body.get("lot"))
    attempt = body.get("attempt", 1)
    expected = _next_attempt(session, project.id, lot)
    if attempt != expected:
        raise Conflict(f"The next draw of lot {lot} is attempt {expected}", code="wrong_attempt",
                       message_zh=f"该标段下一次抽取为第 {expected} 次", expected=expected)
    if attempt == 1:
        if _is_closed(session, project, now):
            raise Conflict("The tender has closed: the first draw's commitments come before",
                           code="commitment_too_late", message_zh="已截标，首次抽取的承诺须在截标前提交")
        commit_platform(session, project, now, actor=SYSTEM)
    if _commitment(session, project.id, lot, attempt, SUPERVISOR) is not None:
        raise Conflict("The supervisor has committed for this attempt already",
                       code="already_committed", message_zh="监督部门已为本次抽取提交承诺")
    row = DrawCommitment(project_id=project.id, lot=lot, attempt=attempt, party=SUPERVISOR,
                         commitment=body["commitment"], status=COMMITTED,
                         committed_by=actor.log_name, committed_org_id=actor.org_id,
                         committed_at=now, commit_log_index=0)
    row.commit_log_index = _log_commit(session, actor, now, project, row)
    session.add(row)
    session.flush()
    return row


def list_commitments(session: Session, actor: Actor, project_id: int) -> list[DrawCommitment]:
    """Every commitment of the project (commitments are public; secrets are not listed)."""
    project = _load(session, actor, project_id)
    return list(session.execute(sa.select(DrawCommitment).where(
        DrawCommitment.project_id == project.id).order_by(
        DrawCommitment.lot, DrawCommitment.attempt, DrawCommitment.party)).scalars())


# --------------------------------------------------------------------------- eligibility

def _parties(session: Session, project: Project, closing: ClosingRef) -> Parties:
    """The tenderee, every bidder listed at closing (all lots: an interest in a bidder does
    not stop at a lot boundary) with its legal representative, and the supervising body."""
    codes = closing.bidders()
    reps = dict(session.execute(sa.select(Organisation.code, Organisation.legal_representative)
                                .where(Organisation.code.in_(codes))).all()) if codes else {}
    org_codes = dict(session.execute(sa.select(Organisation.id, Organisation.code).where(
        Organisation.id.in_([i for i in (project.tenderee_org_id, project.supervisor_org_id)
                             if i is not None]))).all())
    return Parties(tenderee=org_codes[project.tenderee_org_id],
                   bidders=tuple(Bidder(c, reps.get(c)) for c in codes),
                   supervisory_body=org_codes.get(project.supervisor_org_id))


def eligible_lists(session: Session, project: Project, closing: ClosingRef,
                   request: dict[str, Any], now: datetime) -> list[list[str]]:
    """The §8 eligible lists: group filter (specialty prefix, regions), availability,
    every D3 recusal against this tender's parties and D6 qualification."""
    rules = project_rules(project)
    recusal, qualification = recusal_parameters(rules), qualification_parameters(rules)
    parties = _parties(session, project, closing)
    today = local_date(now)
    pool = experts.pool_for_groups(session, request["groups"], today)
    excluded_for_cause = {e.record.id for e in pool if not e.available or exclusion_reasons(
        e.record, parties, now, recusal, qualification)}

    def is_eligible(entry: experts.PoolEntry, group: dict[str, Any]) -> bool:
        return entry.record.id not in excluded_for_cause and experts.matches_group(
            entry.record.specialties, entry.record.region, group)

    return draw.build_eligible_lists(request, pool, is_eligible, id_of=lambda e: e.record.id)


def _check_shortage(request: dict[str, Any], lists: Sequence[Sequence[str]]) -> None:
    """Shortages certain whatever the seed, reported before anything is stored or revealed:
    a group list shorter than its count; fewer candidates in all than seats; alternates that
    cannot be filled once every group is. Same order and details as :func:`draw.run_draw`."""
    groups = request["groups"]
    last = len(groups)
    for index, group in enumerate(groups):
        if len(lists[index]) < group["count"]:
            _shortage(index, group["specialty"], group["count"], len(lists[index]))
    seats = sum(g["count"] for g in groups)
    if len(lists[last]) < seats:
        error = draw.DrawShortage(
            f"Not enough eligible experts in all: {seats} seats, {len(lists[last])} eligible "
            f"for any group", total=True, needed=seats, available=len(lists[last]))
        raise error
    spare = len(lists[last]) - seats
    if spare < request["alternates"]:
        _shortage(last, None, request["alternates"], spare)


def _shortage(index: int, specialty: str | None, needed: int, available: int) -> None:
    what = "the alternates" if specialty is None else f"group {index} ({specialty})"
    error = draw.DrawShortage(f"Not enough eligible experts for {what}: {needed} needed, "
                              f"{available} available", group=index, specialty=specialty,
                              alternates=specialty is None, needed=needed, available=available)
    error.details["specialty"] = specialty
    raise error


# --------------------------------------------------------------------------- requests

def _records(session: Session, project_id: int, lot: str) -> list[DrawRecord]:
    return list(session.execute(sa.select(DrawRecord).where(
        DrawRecord.project_id == project_id, DrawRecord.lot == lot).order_by(DrawRecord.attempt)).scalars())


def request_draw(session: Session, actor: Actor, now: datetime, project_id: int,
                 body: dict[str, Any]) -> DrawRecord:
    """The agent requests a committee for a lot (first draw, or a new draw after a void
    or failed one). Body: ``lot``, ``groups`` ``[{"specialty", "count", "regions"}]``,
    ``alternates``, ``tenderee_representatives`` (seats the tenderee fills itself, counted
    for D1), ``exclude`` (experts a supplier's recusal request removed, GP法 12)."""
    project = _load(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    records = _records(session, project.id, lot)
    if any(r.status == PENDING for r in records):
        raise DrawStateError("A draw of this lot waits for the supervisor's reveal",
                             code="draw_pending", message_zh="本标段有待揭示的抽取")
    if any(r.status == VALID for r in records):
        raise DrawStateError("This lot's committee is drawn; request a replacement instead",
                             code="committee_already_drawn", message_zh="本标段已抽取，请申请补抽")
    attempt = (records[-1].attempt + 1) if records else 1
    representatives = body.get("tenderee_representatives", 0)
    seats = sum(g["count"] for g in body["groups"])
    check_committee_size(project_rules(project), seats, representatives)
    # Earlier exclusions carry over, as they do for replacements.
    exclude = set(body.get("exclude", ())) | (set(json.loads(records[-1].request)["exclude"])
                                              if records else set())
    request = draw.make_request(str(project.id), lot, body["groups"],
                                alternates=body.get("alternates", 0), exclude=exclude,
                                attempt=attempt)
    return _start(session, actor, now, project, request, FIRST if attempt == 1 else REDRAW,
                  representatives, replaces=None)


def _seated(session: Session, project_id: int, lot: str) -> list[CommitteeMember]:
    return list(session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project_id, CommitteeMember.lot == lot,
        CommitteeMember.role == MEMBER).order_by(CommitteeMember.id)).scalars())


def request_replacement(session: Session, actor: Actor, now: datetime, project_id: int,
                        body: dict[str, Any]) -> DrawRecord:
    """§8 Replacement (RULES D5): a new draw for the vacated seats only, ``attempt`` + 1,
    the seated members and every vacated expert in ``exclude``."""
    project = _load(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    records = _records(session, project.id, lot)
    if not any(r.status == VALID for r in records):
        raise DrawStateError("No committee has been drawn for this lot", code="no_committee",
                             message_zh="本标段尚未抽取评标委员会")
    if records[-1].status == PENDING:
        raise DrawStateError("A draw of this lot waits for the supervisor's reveal",
                             code="draw_pending", message_zh="本标段有待揭示的抽取")
    members = _seated(session, project.id, lot)
    vacancies = sorted((m for m in members if m.status in VACATED and m.replaced_in_attempt is None
                        and m.group_spec is not None), key=lambda m: (m.seat_group or 0, m.slot))
    if not vacancies:
        raise DrawStateError("No seat of this lot is vacant", code="no_vacancy",
                             message_zh="本标段没有需要补抽的席位")
    groups: dict[tuple[int, str, tuple[str, ...]], int] = {}
    for member in vacancies:
        spec = member.group_spec or {}
        key = (member.seat_group or 0, spec["specialty"], tuple(spec.get("regions", ())))
        groups[key] = groups.get(key, 0) + 1
    request = draw.make_replacement_request(
        json.loads(records[-1].request),
        seated=[m.expert_id for m in members if m.status in (INVITED, CONFIRMED)],
        replaced=[m.expert_id for m in members if m.status in VACATED],
        groups=[{"specialty": s, "count": n, "regions": list(r)} for (_, s, r), n in groups.items()],
        alternates=body.get("alternates", 0))
    return _start(session, actor, now, project, request, REPLACEMENT, 0,
                  replaces=[m.id for m in vacancies])


def _start(session: Session, actor: Actor, now: datetime, project: Project,
           request: dict[str, Any], kind: str, representatives: int,
           replaces: list[int] | None) -> DrawRecord:
    """Store and log a request with its eligible lists, then the platform's reveal."""
    lot, attempt = request["lot"], request["attempt"]
    closing = find_closing(session, project.id)
    if closing is None:
        raise Conflict("The tender has not closed: the draw needs the closing checkpoint",
                       code="tender_not_closed", message_zh="尚未截标，抽取需要截标检查点")
    platform = _commitment(session, project.id, lot, attempt, PLATFORM)
    if platform is None:
        if attempt == 1:
            raise Conflict("The platform did not commit before the tender closed; the first "
                           "draw cannot be made fairly", code="platform_commitment_missing",
                           message_zh="平台未在截标前提交承诺，无法进行首次抽取")
        platform = _platform_commit(session, actor, now, project, lot, attempt)
    supervisor = _commitment(session, project.id, lot, attempt, SUPERVISOR)
    if supervisor is None:
        raise Conflict("The supervising body has not committed for this attempt",
                       code="supervisor_commitment_missing", message_zh="监督部门尚未提交本次抽取的承诺",
                       attempt=attempt)
    lists = eligible_lists(session, project, closing, request, now)
    _check_shortage(request, lists)
    request_text = canonical_json(request).decode("utf-8")
    lists_sha = draw.eligible_lists_sha256(lists)
    record = DrawRecord(
        project_id=project.id, lot=lot, attempt=attempt, kind=kind, status=PENDING,
        request=request_text, request_sha256=hashlib.sha256(request_text.encode()).hexdigest(),
        tenderee_representatives=representatives,
        eligible_lists=canonical_json(lists).decode("utf-8"), eligible_lists_sha256=lists_sha,
        closing_index=closing.index, closing_size=closing.checkpoint_size,
        closing_root=closing.checkpoint_root.hex(), requested_by=actor.log_name,
        requested_at=now, request_log_index=0, replaces=replaces)
    # The request itself is hidden detail until the result: a replacement's exclude names
    # the seated members. Its hash, and the lists' hash, are public now.
    record.request_log_index = log.append(
        session, now=now, actor=actor.log_name, action="draw.requested", subject=_subject(project),
        data={"tender": str(project.id), "lot": lot, "attempt": attempt, "kind": kind,
              "request_sha256": record.request_sha256, "eligible_lists_sha256": lists_sha,
              "closing_index": closing.index, "closing_size": closing.checkpoint_size,
              "seats": sum(g["count"] for g in request["groups"]),
              "alternates": request["alternates"], "tenderee_representatives": representatives},
        detail={"request": request}).index
    session.add(record)
    _reveal(session, SYSTEM, now, project, platform, bytes(platform.secret or b""))
    session.flush()
    return record


def _reveal(session: Session, actor: Actor, now: datetime, project: Project,
            row: DrawCommitment, secret: bytes) -> bool:
    matches = draw.check_reveal(secret, row.commitment)
    row.secret, row.revealed_at = secret, now
    row.status = REVEALED if matches else MISMATCH
    row.reveal_log_index = log.append(
        session, now=now, actor=actor.log_name, action="draw.revealed", subject=_subject(project),
        data={"tender": str(project.id), "lot": row.lot, "attempt": row.attempt,
              "party": row.party, "matches": matches},
        detail={"secret": secret.hex()}).index
    return matches


# --------------------------------------------------------------------------- the draw

def _record(session: Session, project: Project, lot: str, attempt: int) -> DrawRecord:
    record = session.execute(sa.select(DrawRecord).where(
        DrawRecord.project_id == project.id, DrawRecord.lot == lot,
        DrawRecord.attempt == attempt)).scalar_one_or_none()
    if record is None:
        raise NotFound("No such draw", code="draw_not_found", message_zh="抽取记录不存在")
    return record


def _void(session: Session, actor: Actor, now: datetime, project: Project, record: DrawRecord,
          reason: str, party: str) -> None:
    record.status, record.outcome = VOID, {"reason": reason, "party": party}
    log.append(session, now=now, actor=actor.log_name, action="draw.voided", subject=_subject(project),
               data={"tender": str(project.id), "lot": record.lot, "attempt": record.attempt,
                     "reason": reason, "party": party})
    # The platform commits for the next attempt now, long before its request is logged.
    _platform_commit(session, SYSTEM, now, project, record.lot, record.attempt + 1)


def reveal(session: Session, actor: Actor, now: datetime, project_id: int, attempt: int,
           body: dict[str, Any]) -> DrawRecord:
    """The supervisor reveals its secret (hex); the draw runs at once on the stored lists.

    A secret that does not open the commitment voids the draw (``secret_mismatch``, the
    void committed); a group that runs short during the draw fails it
    (``not_enough_experts``, committed too).
    """
    project = _load(session, actor, project_id, for_update=True)
    _require_supervisor(actor, project)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)  # a suspension (RULES H3) freezes the draw too
    record = _record(session, project, lot, attempt)
    if record.status != PENDING:
        raise DrawStateError(f"The draw is {record.status}", code="draw_not_pending",
                             message_zh="该抽取不在待揭示状态", draw_status=record.status)
    row = _commitment(session, project.id, lot, attempt, SUPERVISOR)
    assert row is not None  # _start refused without it
    if row.committed_org_id is not None and row.committed_org_id != actor.org_id:
        raise Forbidden("Another supervising body made this commitment", code="supervisor_only")
    secret = bytes.fromhex(body["secret"])
    if not _reveal(session, actor, now, project, row, secret):
        _void(session, actor, now, project, record, "secret_mismatch", SUPERVISOR)
        raise _persist(DrawStateError("The secret does not match the commitment: the draw is void",
                                      code="secret_mismatch", message_zh="密钥与承诺不符，本次抽取无效",
                                      attempt=attempt))
    platform = _commitment(session, project.id, lot, attempt, PLATFORM)
    assert platform is not None and platform.status == REVEALED
    request = json.loads(record.request)
    seed = draw.seed(bytes(platform.secret or b""), secret, bytes.fromhex(record.closing_root), request)
    record.seed, record.drawn_at = seed.hex(), now
    try:
        result = draw.draw_committee(seed, request, json.loads(record.eligible_lists))
    except draw.DrawShortage as exc:
        record.status, record.outcome = FAILED, {"code": exc.code, **_loggable(exc.details)}
        log.append(session, now=now, actor=actor.log_name, action="draw.failed",
                   subject=_subject(project),
                   data={"tender": str(project.id), "lot": lot, "attempt": attempt,
                         "code": exc.code, "details": _loggable(exc.details)})
        _platform_commit(session, SYSTEM, now, project, lot, attempt + 1)
        raise _persist(exc) from None
    record.status, record.result = VALID, result.to_json()
    _seat(session, now, project, record, request, result)
    record.result_log_index = log.append(
        session, now=now, actor=actor.log_name, action="draw.completed", subject=_subject(project),
        data={"tender": str(project.id), "lot": lot, "attempt": attempt,
              "request_sha256": record.request_sha256,
              "eligible_lists_sha256": record.eligible_lists_sha256,
              "seats": len(result.members), "alternates": len(result.alternates)},
        detail={"seed": record.seed, "result": record.result}).index
    session.flush()
    return record


def _seat(session: Session, now: datetime, project: Project, record: DrawRecord,
          request: dict[str, Any], result: draw.DrawResult) -> None:
    """Invite the drawn members; alternates stand by. A replacement's seats keep the group
    of the seats they fill."""
    vacated = {m.id: m for m in session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.id.in_(record.replaces or []))).scalars()}
    seat_groups: list[int] = []
    if record.kind == REPLACEMENT:
        for member in sorted(vacated.values(), key=lambda m: (m.seat_group or 0, m.slot)):
            member.replaced_in_attempt = record.attempt
            if not seat_groups or seat_groups[-1] != member.seat_group:
                seat_groups.append(member.seat_group or 0)
    existing = {m.expert_id: m for m in _seated(session, project.id, record.lot)}
    existing.update({m.expert_id: m for m in session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project.id, CommitteeMember.lot == record.lot,
        CommitteeMember.role == ALTERNATE)).scalars()})
    for index, picks in enumerate(result.groups):
        group = request["groups"][index]
        seat_group = seat_groups[index] if record.kind == REPLACEMENT else index
        for slot, expert_id in enumerate(picks):
            member = existing.get(expert_id)  # an alternate of an earlier draw, now seated
            if member is None:
                member = CommitteeMember(project_id=project.id, lot=record.lot, expert_id=expert_id,
                                         created_at=now)
                session.add(member)
            member.attempt, member.role, member.status = record.attempt, MEMBER, INVITED
            member.seat_group, member.slot = seat_group, slot
            member.group_spec = {"specialty": group["specialty"], "regions": group["regions"]}
    for slot, expert_id in enumerate(result.alternates):
        if expert_id in existing and existing[expert_id].role == MEMBER:
            continue
        member = existing.get(expert_id) or CommitteeMember(
            project_id=project.id, lot=record.lot, expert_id=expert_id, created_at=now)
        member.attempt, member.role, member.status, member.slot = record.attempt, ALTERNATE, STANDBY, slot
        session.add(member)


def refuse_reveal(session: Session, actor: Actor, now: datetime, project_id: int, attempt: int,
                  body: dict[str, Any]) -> DrawRecord:
    """The supervisor refuses to reveal, or the agent records that it did not: the draw is
    void and the refusal logged (§8), with the reason given."""
    project = _load(session, actor, project_id, for_update=True)
    if not (projects.manages(actor, project) or actor.has(Role.SUPERVISOR)):
        raise Forbidden("Only the project's agent or supervisor may do this", code="manager_only")
    if actor.has(Role.SUPERVISOR) and not projects.manages(actor, project):
        _require_supervisor(actor, project)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    record = _record(session, project, lot, attempt)
    if record.status != PENDING:
        raise DrawStateError(f"The draw is {record.status}", code="draw_not_pending",
                             message_zh="该抽取不在待揭示状态", draw_status=record.status)
    row = _commitment(session, project.id, lot, attempt, SUPERVISOR)
    assert row is not None
    row.status = REFUSED
    log.append(session, now=now, actor=actor.log_name, action="draw.reveal_refused",
               subject=_subject(project),
               data={"tender": str(project.id), "lot": lot, "attempt": attempt,
                     "party": SUPERVISOR, "reason": body["reason"]})
    _void(session, actor, now, project, record, "reveal_refused", SUPERVISOR)
    session.flush()
    return record


# --------------------------------------------------------------------------- the committee

def _my_seat(session: Session, actor: Actor, project: Project, lot: str) -> CommitteeMember:
    expert = experts.expert_of_user(session, actor)
    member = session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project.id, CommitteeMember.lot == lot,
        CommitteeMember.expert_id == expert.id, CommitteeMember.role == MEMBER)).scalar_one_or_none()
    if member is None:
        raise Forbidden("You hold no seat on this committee", code="not_a_member",
                        message_zh="您不是本评标委员会成员")
    return member


def _log_member(session: Session, actor: Actor, now: datetime, project: Project,
                member: CommitteeMember, action: str, **data: Any) -> None:
    # Hidden leaf (§7: committee members are hidden until the result); the expert may
    # read its own entries.
    log.append(session, now=now, actor=actor.log_name, action=action, subject=_subject(project),
               data={"tender": str(project.id), "lot": member.lot, "expert": member.expert_id, **data},
               hidden=True, readers={"users": [actor.user_id] if actor.user_id else []})


def _vacate(session: Session, actor: Actor, now: datetime, project: Project,
            member: CommitteeMember, status: str, reason: str) -> None:
    member.status, member.vacated_at, member.vacated_reason = status, now, reason
    _platform_commit(session, SYSTEM, now, project, member.lot,
                     _next_attempt(session, project.id, member.lot))


def confirm(session: Session, actor: Actor, now: datetime, project_id: int,
            body: dict[str, Any]) -> CommitteeMember:
    """A drawn expert accepts the invitation."""
    project = _load(session, actor, project_id, for_update=True)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    member = _my_seat(session, actor, project, lot)
    if member.status != INVITED:
        raise Conflict(f"Your seat is {member.status}", code="not_invited",
                       message_zh="您的席位不在待确认状态", seat_status=member.status)
    member.status, member.confirmed_at = CONFIRMED, now
    _log_member(session, actor, now, project, member, "committee.confirmed")
    return member


def decline(session: Session, actor: Actor, now: datetime, project_id: int,
            body: dict[str, Any]) -> CommitteeMember:
    """A drawn expert declines (before declaring); the seat awaits a replacement draw and
    the decline goes into the expert's performance record (RULES H4)."""
    project = _load(session, actor, project_id, for_update=True)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    member = _my_seat(session, actor, project, lot)
    if member.status not in (INVITED, CONFIRMED) or member.conflict is not None:
        raise Conflict(f"Your seat is {member.status}", code="cannot_decline",
                       message_zh="当前状态不能拒绝", seat_status=member.status)
    _vacate(session, actor, now, project, member, DECLINED, body.get("reason") or "")
    _log_member(session, actor, now, project, member, "committee.declined")
    experts.add_credit(session, now, member.expert_id, by=actor.log_name, kind="declined",
                       note=body.get("reason") or "", project_id=project.id)
    return member


def declare(session: Session, actor: Actor, now: datetime, project_id: int,
            body: dict[str, Any]) -> CommitteeMember:
    """A confirmed member declares whether it has a conflict with the bidders (回避声明).
    A conflict recuses it and the seat awaits a replacement; no conflict seats it and
    counts as a service to the tenderee."""
    project = _load(session, actor, project_id, for_update=True)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    member = _my_seat(session, actor, project, lot)
    if member.status != CONFIRMED or member.conflict is not None:
        raise Conflict("Confirm first; a declaration is made once", code="cannot_declare",
                       message_zh="请先确认参加；声明只能提交一次", seat_status=member.status)
    member.conflict, member.declared_at = bool(body["conflict"]), now
    member.declaration_note = body.get("note") or None
    if member.conflict:
        _vacate(session, actor, now, project, member, RECUSED, body.get("note") or "declared conflict")
    else:
        tenderee = session.get(Organisation, project.tenderee_org_id)
        session.add(ExpertService(expert_id=member.expert_id, tenderee_code=tenderee.code if tenderee else "",
                                  served_on=local_date(now), project_id=project.id))
    _log_member(session, actor, now, project, member, "committee.declared", conflict=member.conflict)
    return member


def bidders_for_member(session: Session, actor: Actor, now: datetime, project_id: int,
                       lot: str | None) -> list[dict[str, Any]]:
    """The bidders, shown to a member only after it has accepted (so it declares knowing
    them, and a decliner never learns them)."""
    project = _load(session, actor, project_id)
    lot = _lot(project, lot)
    member = _my_seat(session, actor, project, lot)
    if member.status != CONFIRMED:
        raise Forbidden("Accept the invitation first", code="confirm_first",
                        message_zh="请先确认参加评标")
    closing = find_closing(session, project.id)
    codes = closing.bidders() if closing else []
    names = dict(session.execute(sa.select(Organisation.code, Organisation.name).where(
        Organisation.code.in_(codes))).all()) if codes else {}
    return [{"code": c, "name": names.get(c, c)} for c in codes]


def replace_member(session: Session, actor: Actor, now: datetime, project_id: int,
                   body: dict[str, Any]) -> CommitteeMember:
    """Remove a seated member with cause (a recusal found later, RULES D5): its
    conclusions are void; the seat awaits a replacement draw."""
    project = _load(session, actor, project_id, for_update=True)
    if not projects.manages(actor, project):
        _require_supervisor(actor, project)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    member = session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project.id, CommitteeMember.lot == lot,
        CommitteeMember.expert_id == body["expert"], CommitteeMember.role == MEMBER,
        CommitteeMember.status.in_((INVITED, CONFIRMED)))).scalar_one_or_none()
    if member is None:
        raise NotFound("No such seated member", code="member_not_found", message_zh="无此在席成员")
    _vacate(session, actor, now, project, member, REPLACED, body["reason"])
    _log_member(session, actor, now, project, member, "committee.member_replaced", reason=body["reason"])
    return member


def name_directly(session: Session, actor: Actor, now: datetime, project_id: int,
                  body: dict[str, Any]) -> CommitteeMember:
    """Name an expert without a draw: only for a listed special project, with the basis
    and reason recorded (RULES D2, 条例 47). Logged as ``committee.named_directly``, which
    supervision shows as a red card. The expert must still pass recusal and qualification."""
    project = _load(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    lot = _lot(project, body.get("lot"))
    _require_forming(project, now)
    closing = find_closing(session, project.id)
    if closing is None:
        raise Conflict("The tender has not closed", code="tender_not_closed",
                       message_zh="尚未截标")
    entries = experts.load_entries(session, [body["expert"]], local_date(now))
    if not entries:
        raise NotFound("No such expert", code="expert_not_found", message_zh="专家不存在")
    rules = project_rules(project)
    reasons = exclusion_reasons(entries[0].record, _parties(session, project, closing), now,
                                recusal_parameters(rules), qualification_parameters(rules))
    if not entries[0].available or reasons:
        raise Conflict("This expert may not sit on this committee", code="expert_not_eligible",
                       message_zh="该专家不符合本项目评标条件",
                       reasons=sorted({str(r.code) for r in reasons}) or ["unavailable"])
    if session.execute(sa.select(CommitteeMember.id).where(
            CommitteeMember.project_id == project.id, CommitteeMember.lot == lot,
            CommitteeMember.expert_id == body["expert"])).first():
        raise Conflict("This expert is already on the committee", code="already_member")
    member = CommitteeMember(project_id=project.id, lot=lot, expert_id=body["expert"], attempt=None,
                             role=MEMBER, status=INVITED, named_directly=True,
                             named_reason=f"{body['basis']}: {body['reason']}", created_at=now)
    session.add(member)
    log.append(session, now=now, actor=actor.log_name, action="committee.named_directly",
               subject=_subject(project),
               data={"tender": str(project.id), "lot": lot, "basis": body["basis"],
                     "reason": body["reason"]},
               detail={"expert": body["expert"]})
    session.flush()
    return member


def active_members(session: Session, project_id: int, lot: str | None = None) -> list[CommitteeMember]:
    """The members whose scores count: confirmed, declared no conflict, not replaced. A
    replaced member's conclusions are void (RULES D5), so evaluation uses only these."""
    query = sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project_id, CommitteeMember.role == MEMBER,
        CommitteeMember.status == CONFIRMED, CommitteeMember.conflict.is_(False))
    if lot is not None:
        query = query.where(CommitteeMember.lot == lot)
    return list(session.execute(query.order_by(CommitteeMember.lot, CommitteeMember.seat_group,
                                               CommitteeMember.id)).scalars())


def my_committees(session: Session, actor: Actor) -> list[CommitteeMember]:
    """The acting expert's seats and invitations, newest first."""
    expert = experts.expert_of_user(session, actor)
    return list(session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.expert_id == expert.id, CommitteeMember.role == MEMBER)
        .order_by(CommitteeMember.id.desc())).scalars())


# --------------------------------------------------------------------------- views

def _member_out(member: CommitteeMember, names: dict[str, str], masked: bool) -> dict[str, Any]:
    out = {"lot": member.lot, "role": member.role, "status": member.status,
           "seat_group": member.seat_group, "attempt": member.attempt,
           "named_directly": member.named_directly, "confirmed_at": member.confirmed_at,
           "declared_conflict": member.conflict, "replaced_in_attempt": member.replaced_in_attempt}
    if not masked:
        out.update(expert=member.expert_id, name=names.get(member.expert_id))
    return out


def committee_view(session: Session, actor: Actor, now: datetime, project_id: int,
                   lot: str | None) -> dict[str, Any]:
    """The committee of a lot. Public after the result; before it, supervisors see it
    whole, an expert its own seat, the agent the seats without names. Anyone else (the
    tenderee, bidders) is refused with ``committee_secret`` and the attempt logged (D4)."""
    project = _load(session, actor, project_id)
    lot = _lot(project, lot)
    members = list(session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project.id, CommitteeMember.lot == lot)
        .order_by(CommitteeMember.role.desc(), CommitteeMember.seat_group, CommitteeMember.slot,
                  CommitteeMember.id)).scalars())
    public = result_is_out(session, project, now)
    if public or (actor.has(Role.SUPERVISOR) and _supervises(actor, project)):
        visible, masked = members, False
    elif actor.has(Role.EXPERT):
        expert = experts.expert_of_user(session, actor)
        visible, masked = [m for m in members if m.expert_id == expert.id], False
    elif projects.manages(actor, project):
        visible, masked = members, True
    else:
        refusal = Forbidden("Committee names are secret until the result",
                            code="committee_secret", message_zh="评标委员会名单在结果公布前保密")
        if actor.user_id is None:
            raise refusal  # anonymous: nobody to name in the log (see api_experts._run)
        log.append(session, now=now, actor=actor.log_name, action="committee.access_refused",
                   subject=_subject(project),
                   data={"tender": str(project.id), "lot": lot, "roles": sorted(actor.roles)})
        raise _persist(refusal)
    names = dict(session.execute(sa.select(Expert.id, Expert.name).where(
        Expert.id.in_([m.expert_id for m in visible]))).all()) if visible and not masked else {}
    return {"tender": str(project.id), "lot": lot, "public": public,
            "members": [_member_out(m, names, masked) for m in visible]}


def _supervises(actor: Actor, project: Project) -> bool:
    return project.supervisor_org_id is None or actor.org_id == project.supervisor_org_id


def list_draws(session: Session, actor: Actor, now: datetime, project_id: int) -> list[dict[str, Any]]:
    """Every draw of the project, as :func:`draw_view` shows it to ``actor``."""
    project = _load(session, actor, project_id)
    records = session.execute(sa.select(DrawRecord).where(DrawRecord.project_id == project.id)
                              .order_by(DrawRecord.lot, DrawRecord.attempt)).scalars()
    full = _sees_all(session, actor, project, now)
    return [_draw_out(session, project, r, full) for r in records]


def draw_view(session: Session, actor: Actor, now: datetime, project_id: int, attempt: int,
              lot: str | None) -> dict[str, Any]:
    """One draw. Everyone sees its status, commitments and hashes; after the result (and
    supervisors before it) also the request, the revealed secrets, the seed, the closing
    checkpoint with the inclusion proof of ``tender.closed``, the eligible lists and the
    result: everything a re-runner needs."""
    project = _load(session, actor, project_id)
    record = _record(session, project, _lot(project, lot), attempt)
    return _draw_out(session, project, record, _sees_all(session, actor, project, now))


def _sees_all(session: Session, actor: Actor, project: Project, now: datetime) -> bool:
    return result_is_out(session, project, now) or (actor.has(Role.SUPERVISOR) and _supervises(actor, project))


def _draw_out(session: Session, project: Project, record: DrawRecord, full: bool) -> dict[str, Any]:
    commitments = {c.party: c for c in session.execute(sa.select(DrawCommitment).where(
        DrawCommitment.project_id == project.id, DrawCommitment.lot == record.lot,
        DrawCommitment.attempt == record.attempt)).scalars()}
    out: dict[str, Any] = {
        "tender": str(project.id), "lot": record.lot, "attempt": record.attempt,
        "kind": record.kind, "status": record.status, "public": full,
        "request_sha256": record.request_sha256,
        "eligible_lists_sha256": record.eligible_lists_sha256,
        "requested_at": record.requested_at, "drawn_at": record.drawn_at,
        "outcome": record.outcome, "tenderee_representatives": record.tenderee_representatives,
        "commitments": {party: {"commitment": c.commitment, "status": c.status,
                                "log_index": c.commit_log_index}
                        for party, c in commitments.items()},
        "log": {"requested": record.request_log_index, "completed": record.result_log_index},
    }
    if not full:
        return out
    for party, c in commitments.items():
        if c.revealed_at is not None and c.secret is not None:
            out["commitments"][party]["secret"] = bytes(c.secret).hex()
    path = merkle.inclusion_proof(record.closing_index, record.closing_size, log.DbNodeReader(session))
    entry = session.get(LogEntry, record.closing_index)
    checkpoint = session.get(Checkpoint, record.closing_size)
    out.update(
        request=json.loads(record.request), seed=record.seed,
        eligible_lists=json.loads(record.eligible_lists), result=record.result,
        closing={"index": record.closing_index, "leaf": b64encode(bytes(entry.entry)) if entry else None,
                 "checkpoint": checkpoint.note if checkpoint else None,
                 "size": record.closing_size, "root": record.closing_root,
                 "inclusion": [b64encode(p) for p in path]})
    return out


# --------------------------------------------------------------------------- publication

def publish_committee(session: Session, project: Project, now: datetime, *,
                      actor: Actor = SYSTEM) -> list[DrawRecord]:
    """Publish every draw of the project with the committee (the result is out, RULES D4;
    GP条例 43): one public ``committee.published`` entry per lot carrying each draw's
    request, revealed secrets, seed, closing checkpoint and result, and the members. The
    eligible lists are served by :func:`draw_view` (their hashes are in the log already).
    For the award service: call it in the award's transaction. Idempotent."""
    records = list(session.execute(sa.select(DrawRecord).where(
        DrawRecord.project_id == project.id, DrawRecord.published_at.is_(None),
        DrawRecord.status != PENDING).order_by(DrawRecord.lot, DrawRecord.attempt)).scalars())
    by_lot: dict[str, list[DrawRecord]] = {}
    for record in records:
        by_lot.setdefault(record.lot, []).append(record)
    for lot, lot_records in by_lot.items():
        draws = []
        for record in lot_records:
            record.published_at = now
            commitments = {c.party: c for c in session.execute(sa.select(DrawCommitment).where(
                DrawCommitment.project_id == project.id, DrawCommitment.lot == lot,
                DrawCommitment.attempt == record.attempt)).scalars()}

            def secret_of(party: str) -> str | None:
                c = commitments.get(party)
                return bytes(c.secret).hex() if c and c.revealed_at and c.secret else None
            draws.append({
                "attempt": record.attempt, "kind": record.kind, "status": record.status,
                "request": json.loads(record.request), "request_sha256": record.request_sha256,
                "eligible_lists_sha256": record.eligible_lists_sha256,
                "platform_commitment": commitments[PLATFORM].commitment if PLATFORM in commitments else None,
                "supervisor_commitment": commitments[SUPERVISOR].commitment if SUPERVISOR in commitments else None,
                "platform_secret": secret_of(PLATFORM), "supervisor_secret": secret_of(SUPERVISOR),
                "closing_index": record.closing_index, "closing_size": record.closing_size,
                "closing_root": record.closing_root, "seed": record.seed, "result": record.result})
        members = session.execute(sa.select(CommitteeMember).where(
            CommitteeMember.project_id == project.id, CommitteeMember.lot == lot)
            .order_by(CommitteeMember.id)).scalars()
        log.append(session, now=now, actor=actor.log_name, action="committee.published",
                   subject=_subject(project),
                   data={"tender": str(project.id), "lot": lot, "draws": draws,
                         "members": [{"expert": m.expert_id, "role": m.role, "status": m.status,
                                      "seat_group": m.seat_group, "attempt": m.attempt,
                                      "named_directly": m.named_directly} for m in members]})
    session.flush()
    return records


def publish_committee_request(session: Session, actor: Actor, now: datetime,
                              project_id: int) -> list[DrawRecord]:
    """The agent or supervisor publishes the committee once the project is awarded."""
    project = _load(session, actor, project_id, for_update=True)
    if not projects.manages(actor, project):
        _require_supervisor(actor, project)
    status = projects.status_of(project, now)
    if status not in RESULT_OUT:
        raise Conflict("The committee is published with the result", code="result_not_out",
                       message_zh="评标委员会名单随结果公布", project_status=str(status))
    return publish_committee(session, project, now, actor=actor)


__all__ = [
    "ClosingRef", "find_closing", "commit_platform", "request_platform_commitment",
    "commit_supervisor", "list_commitments", "eligible_lists", "request_draw",
    "request_replacement", "reveal", "refuse_reveal", "confirm", "decline", "declare",
    "bidders_for_member", "replace_member", "name_directly", "active_members",
    "my_committees", "committee_view", "list_draws", "draw_view", "publish_committee",
    "publish_committee_request", "log_refusal", "recusal_parameters",
    "qualification_parameters", "check_committee_size", "project_rules", "result_is_out",
]
