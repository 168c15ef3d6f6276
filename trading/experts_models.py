"""ORM models of the expert pool (专家库) and of the expert draw (专家抽取, PROTOCOL §8).

The pool: :class:`Expert` with its specialty codes, employment history, declared
relationships (director roles, control, close relatives), past services to tenderees and
credit records (RULES H4). What recusal (D3) and qualification (D6) look at is stored as
dated facts, never as a precomputed verdict, because a verdict depends on the project's
parties and on the day of the draw.

The draw: :class:`DrawCommitment` (each party's commitment and, once revealed, its
secret), :class:`DrawRecord` (one attempt of one lot: the logged request, the eligible
lists, the seed and the result) and :class:`CommitteeMember` (a seat and what happened to
it). Identifiers follow the protocol: ``tender`` is ``str(project.id)``, ``lot`` a
:class:`trading.models.Lot` code, expert ids match ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``.

Committee names are secret until the result (RULES D4): they live only in these tables and
in hidden log details until :func:`trading.expert_draw.publish_committee` runs.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db

# Expert.status values.
ACTIVE = "active"          # may be drawn (subject to availability, recusal, qualification)
SUSPENDED = "suspended"    # by the pool keeper (e.g. a credit sanction, RULES H4)
RETIRED = "retired"        # left the pool; kept for the record
EXPERT_STATUSES = (ACTIVE, SUSPENDED, RETIRED)

# ExpertRelationship.kind values (RULES D3, GP条例 9).
DIRECTOR = "director"      # 董事、监事、高级管理人员
CONTROLLER = "controller"  # 控股股东、实际控制人
RELATIVE = "relative"      # a close relative, with the organisations they are tied to
RELATIONSHIP_KINDS = (DIRECTOR, CONTROLLER, RELATIVE)

# DrawCommitment.party values and states.
PLATFORM = "platform"
SUPERVISOR = "supervisor"
COMMITTED = "committed"
REVEALED = "revealed"
MISMATCH = "mismatch"      # the revealed secret does not open the commitment: draw void
REFUSED = "refused"        # the party refused (or failed) to reveal: draw void

# DrawRecord.status values.
PENDING = "pending"        # request logged, waiting for the supervisor's reveal
VALID = "valid"            # drawn; the committee is seated from it
VOID = "void"              # a secret did not match, or a party refused to reveal
FAILED = "failed"          # a group ran short during the draw (not_enough_experts)

# DrawRecord.kind values.
FIRST = "first"
REDRAW = "redraw"          # a new draw after a void or failed one (same groups)
REPLACEMENT = "replacement"  # §8 Replacement: missing seats only

# CommitteeMember.status values (the brief's five, plus "standby" for alternates).
INVITED = "invited"
CONFIRMED = "confirmed"
DECLINED = "declined"
RECUSED = "recused"        # declared a conflict, or a recusal found later
REPLACED = "replaced"      # removed with cause after seating (RULES D5): scores void
STANDBY = "standby"        # an alternate, not seated
VACATED = (DECLINED, RECUSED, REPLACED)

# CommitteeMember.role values.
MEMBER = "member"
ALTERNATE = "alternate"


class Expert(db.Model):
    """An evaluation expert in the pool (评标专家).

    ``field_since`` is the start of practice in the field (D6 counts whole years from it);
    ``title`` a :class:`trading.recusal.TitleLevel` name in lower case. ``employer`` is the
    current employer as shown to people; recusal reads :class:`ExpertEmployment` only.
    ``username`` links the expert to a platform account with role ``expert``.
    """

    __tablename__ = "experts"

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    region: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    employer: Mapped[str | None] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.String(24), index=True)
    field_since: Mapped[date] = mapped_column(sa.Date)
    status: Mapped[str] = mapped_column(sa.String(16), default=ACTIVE, index=True)
    # On leave, abroad, ill: not drawn up to and including this day (Asia/Shanghai).
    unavailable_until: Mapped[date | None] = mapped_column(sa.Date)
    supervisory_staff: Mapped[bool] = mapped_column(default=False)
    username: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExpertSpecialty(db.Model):
    """One specialty code of an expert (评标专业), from a code tree: ``A0101`` is under ``A01``."""

    __tablename__ = "expert_specialties"

    expert_id: Mapped[str] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"),
                                           primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), primary_key=True, index=True)


class ExpertEmployment(db.Model):
    """A period of employment (劳动关系); ``end`` None while still employed."""

    __tablename__ = "expert_employments"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[str] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"),
                                           index=True)
    org_code: Mapped[str] = mapped_column(sa.String(128), index=True)
    start: Mapped[date] = mapped_column(sa.Date)
    end: Mapped[date | None] = mapped_column(sa.Date)


class ExpertRelationship(db.Model):
    """A declared tie (专家申报): a director role or control of an organisation over a period,
    or a close relative (``person_key``, ``relation``) and the organisations the relative
    works at, directs or controls (``org_codes``)."""

    __tablename__ = "expert_relationships"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[str] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    org_code: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    start: Mapped[date | None] = mapped_column(sa.Date)
    end: Mapped[date | None] = mapped_column(sa.Date)
    person_key: Mapped[str | None] = mapped_column(sa.String(100))
    relation: Mapped[str | None] = mapped_column(sa.String(32))
    org_codes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)


class ExpertService(db.Model):
    """One evaluation the expert served on for a tenderee. ``project_id`` is set when the
    platform recorded it; declared past services (imported) have none."""

    __tablename__ = "expert_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[str] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"),
                                           index=True)
    tenderee_code: Mapped[str] = mapped_column(sa.String(128))
    served_on: Mapped[date] = mapped_column(sa.Date)
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("projects.id"), index=True)


class ExpertCredit(db.Model):
    """A performance or credit record (专家信用记录, RULES H4): a commendation, a decline,
    a warning or a violation, with points; ``suspended_until`` keeps the expert out of
    draws up to and including that day."""

    __tablename__ = "expert_credits"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[str] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(sa.String(24))
    points: Mapped[int] = mapped_column(default=0)
    note: Mapped[str] = mapped_column(sa.Text, default="")
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("projects.id"))
    suspended_until: Mapped[date | None] = mapped_column(sa.Date)
    recorded_by: Mapped[str] = mapped_column(sa.String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


class DrawCommitment(db.Model):
    """One party's commitment for one draw attempt of one lot (§8 Seed).

    ``secret`` holds the platform's own secret from the moment it commits (it must keep it
    to reveal it), and the supervisor's only once revealed. ``status``: committed,
    revealed, mismatch or refused.
    """

    __tablename__ = "draw_commitments"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot", "attempt", "party",
                                          name="uq_draw_commitments_party"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot: Mapped[str] = mapped_column(sa.String(128))
    attempt: Mapped[int] = mapped_column(sa.Integer)
    party: Mapped[str] = mapped_column(sa.String(16))
    commitment: Mapped[str] = mapped_column(sa.String(64))
    secret: Mapped[bytes | None] = mapped_column(sa.LargeBinary(32))
    status: Mapped[str] = mapped_column(sa.String(16), default=COMMITTED)
    committed_by: Mapped[str] = mapped_column(sa.String(64))
    committed_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    commit_log_index: Mapped[int] = mapped_column(sa.BigInteger)
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reveal_log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


class DrawRecord(db.Model):
    """One draw attempt of one lot: request, eligible lists, seed, result (§8).

    ``request`` and ``eligible_lists`` are stored as their exact canonical JSON text, so
    the published bytes are the hashed bytes. The eligible lists are fixed when the request
    is logged, before any secret is revealed, so nobody who learns the seed can still
    change who is eligible.
    """

    __tablename__ = "draw_records"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot", "attempt",
                                          name="uq_draw_records_attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot: Mapped[str] = mapped_column(sa.String(128))
    attempt: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default=PENDING)
    request: Mapped[str] = mapped_column(sa.Text)              # canonical JSON text
    request_sha256: Mapped[str] = mapped_column(sa.String(64))
    # Seats filled by the tenderee's representatives (not drawn), for RULES D1.
    tenderee_representatives: Mapped[int] = mapped_column(default=0)
    eligible_lists: Mapped[str] = mapped_column(sa.Text)       # canonical JSON text
    eligible_lists_sha256: Mapped[str] = mapped_column(sa.String(64))
    closing_index: Mapped[int] = mapped_column(sa.BigInteger)
    closing_size: Mapped[int] = mapped_column(sa.BigInteger)
    closing_root: Mapped[str] = mapped_column(sa.String(64))  # hex
    seed: Mapped[str | None] = mapped_column(sa.String(64))   # hex
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # why void or failed
    # A replacement: the CommitteeMember ids of the vacated seats it fills.
    replaces: Mapped[list[int] | None] = mapped_column(sa.JSON)
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_log_index: Mapped[int] = mapped_column(sa.BigInteger)
    drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result_log_index: Mapped[int | None] = mapped_column(sa.BigInteger)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CommitteeMember(db.Model):
    """A seat on a lot's evaluation committee (评标委员会) and what became of it.

    ``seat_group`` is the index of the request group the seat came from (None for alternates
    and named experts) and ``group_spec`` that group's ``{"specialty", "regions"}``, so a
    replacement draws the same kind of seat. ``replaced_in_attempt`` is the replacement
    draw that filled this vacated seat.
    """

    __tablename__ = "committee_members"
    __table_args__ = (sa.Index("ix_committee_members_project_lot", "project_id", "lot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    lot: Mapped[str] = mapped_column(sa.String(128))
    expert_id: Mapped[str] = mapped_column(sa.ForeignKey("experts.id"), index=True)
    attempt: Mapped[int | None] = mapped_column(sa.Integer)   # None: named directly
    role: Mapped[str] = mapped_column(sa.String(16), default=MEMBER)
    seat_group: Mapped[int | None] = mapped_column(sa.Integer)
    slot: Mapped[int] = mapped_column(sa.Integer, default=0)  # order of the pick
    group_spec: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), default=INVITED)
    conflict: Mapped[bool | None] = mapped_column()           # None until declared
    declaration_note: Mapped[str | None] = mapped_column(sa.Text)
    declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    vacated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    vacated_reason: Mapped[str | None] = mapped_column(sa.Text)
    replaced_in_attempt: Mapped[int | None] = mapped_column(sa.Integer)
    named_directly: Mapped[bool] = mapped_column(default=False)
    named_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
