"""The expert pool (专家库): import and export, lookups, credit records, and the
records recusal and qualification read.

Services take ``(session, actor, now, ...)`` and append to the audit log in the same
transaction. Pool keepers are admins (the exchange centre's pool administration: the
platform has no narrower role, and the pool holds personal data); supervisors may export
and read the pool too, because §8 lets them check the draw's filters.

**The file format** (CSV or XLSX, first sheet): a header row naming the columns below, in
any order; ``id``, ``name``, ``specialties``, ``title`` and ``field_since`` are required,
the others optional. Rows are numbered as a spreadsheet shows them: the header is row 1.

============================ ==============================================================
``id``                       ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``
``name``                     1-100 characters
``specialties``              codes separated by ``;`` (``A0101;B02``); a group asking
                             ``A01`` matches ``A0101``
``region``                   a region code (matched exactly), or empty
``employer``                 the current employer as people read it (free text)
``title``                    none, junior, intermediate, associate_senior, senior
``field_since``              ``YYYY-MM-DD``: start of practice in the field (RULES D6)
``status``                   active (default), suspended, retired
``unavailable_until``        ``YYYY-MM-DD`` or empty
``supervisory_staff``        true / false (default false)
``username``                 the expert's platform account, or empty
``phone``                    or empty
``employments``              ``ORG@2019-01-01/2022-05-31;ORG2@2022-06-01/`` (open end: current)
``roles``                    ``director:ORG@2020-01-01/2021-06-30;controller:ORG2@2018-01-01/``
``relatives``                ``spouse:张三@ORG1,ORG2;brother:李四@`` (relation:person@orgs)
``services``                 declared past services: ``TENDEREE@2025-01-10;...``
============================ ==============================================================

An import is all or nothing: every row is checked first and any error refuses the whole
file, naming each bad row. An id already in the pool is replaced by the row (its declared
ties and services too); services the platform recorded itself and credit records stay.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from core.actor import Actor
from core.errors import AppError, Forbidden, NotFound, ValidationFailed
from trading.domain import Role
from trading.experts_models import (ACTIVE, CONTROLLER, DIRECTOR, EXPERT_STATUSES, RELATIVE,
                                    Expert, ExpertCredit, ExpertEmployment, ExpertRelationship,
                                    ExpertService, ExpertSpecialty)
from trading.recusal import (Employment, ExpertRecord, OrgRole, Relative, RoleKind, Service,
                             TitleLevel, local_date)

COLUMNS = ("id", "name", "specialties", "region", "employer", "title", "field_since", "status",
           "unavailable_until", "supervisory_staff", "username", "phone", "employments",
           "roles", "relatives", "services")
REQUIRED = ("id", "name", "specialties", "title", "field_since")
TITLES = {level.name.lower(): level for level in TitleLevel}
CREDIT_KINDS = ("commendation", "declined", "warning", "violation", "suspension")
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Rows written per INSERT batch: large enough to amortize round trips, small enough to
#: stay under SQLite's bound-parameter limit with ~15 columns.
BATCH = 2000
#: Errors reported for one file; a file with more is refused all the same.
MAX_REPORTED_ERRORS = 200

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SPECIALTY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_PERSON = re.compile(r"[^;:@,\s][^;:@,]{0,98}[^;:@,\s]|[^;:@,\s]")
_RELATION = re.compile(r"[^;:@,\s][^;:@,]{0,30}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PHONE = re.compile(r"[0-9+() -]{3,32}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ImportRefused(ValidationFailed):
    """The file has bad rows; nothing was stored. ``details.errors``: ``[{"row", "column",
    "message"}]`` (row 1 is the header), ``details.error_count``: how many in all."""

    code, message_zh, message_en = "import_invalid", "导入文件有错误，未导入任何数据", \
        "The file has errors; nothing was imported"


def require_pool_keeper(actor: Actor, *, read_only: bool = False) -> None:
    """Admins keep the pool; supervisors may also read and export it (they check filters)."""
    allowed = (Role.ADMIN, Role.SUPERVISOR) if read_only else (Role.ADMIN,)
    if not actor.has(*allowed):
        raise Forbidden("Only the pool keepers may do this", code="pool_keepers_only",
                        message_zh="仅专家库管理员可执行此操作", required=[str(r) for r in allowed])


# --------------------------------------------------------------------------- parsing

@dataclass
class _Row:
    number: int
    expert: dict[str, Any]
    specialties: list[str]
    employments: list[dict[str, Any]]
    relationships: list[dict[str, Any]]
    services: list[dict[str, Any]]


class _RowErrors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.count = 0

    def add(self, row: int, column: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append({"row": row, "column": column, "message": message})


def _text(value: Any) -> str:
    """A cell as text: numbers typed into a spreadsheet (a region 430426) lose the ``.0``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _date(text: str, what: str) -> date:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} must be a date YYYY-MM-DD, got {text!r}") from None


def _period(text: str, what: str) -> tuple[str, date, date | None]:
    """``ORG@START/END`` (END may be empty)."""
    org, at, span = text.partition("@")
    if not at or not _IDENT.fullmatch(org):
        raise ValueError(f"{what} {text!r} must be ORG@YYYY-MM-DD/[YYYY-MM-DD]")
    start_text, _, end_text = span.partition("/")
    start = _date(start_text, f"{what} start")
    end = _date(end_text, f"{what} end") if end_text else None
    if end is not None and end < start:
        raise ValueError(f"{what} {text!r} ends before it starts")
    return org, start, end


def _items(text: str) -> list[str]:
    if not text:
        return []  # most optional cells are empty: skip the split
    return [part.strip() for part in text.split(";") if part.strip()]


# One validator per column: text in, value out, ValueError with a message for people.

def _v_id(v: str, today: date) -> str:
    if not _IDENT.fullmatch(v):
        raise ValueError("id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    return v


def _v_name(v: str, today: date) -> str:
    if not v or len(v) > 100:
        raise ValueError("name is required, at most 100 characters")
    return v


def _v_specialties(v: str, today: date) -> list[str]:
    codes = _items(v)
    if not codes:
        raise ValueError("at least one specialty code")
    bad = [c for c in codes if not _SPECIALTY.fullmatch(c)]
    if bad:
        raise ValueError(f"bad specialty code(s) {bad}: letters, digits, . _ -, at most 32")
    if len(set(codes)) != len(codes):
        raise ValueError("a specialty code is listed twice")
    return sorted(codes)


def _v_region(v: str, today: date) -> str | None:
    if v and not _REGION.fullmatch(v):
        raise ValueError("region must be a code: letters, digits, . _ -, at most 32")
    return v or None


def _v_employer(v: str, today: date) -> str | None:
    if len(v) > 200:
        raise ValueError("employer: at most 200 characters")
    return v or None


def _v_title(v: str, today: date) -> str:
    if v.lower() not in TITLES:
        raise ValueError(f"title must be one of {sorted(TITLES)}")
    return v.lower()


def _v_field_since(v: str, today: date) -> date:
    day = _date(v, "field_since")
    if day > today:
        raise ValueError("field_since is in the future")
    return day


def _v_status(v: str, today: date) -> str:
    v = v.lower() or ACTIVE
    if v not in EXPERT_STATUSES:
        raise ValueError(f"status must be one of {list(EXPERT_STATUSES)}")
    return v


def _v_unavailable_until(v: str, today: date) -> date | None:
    return _date(v, "unavailable_until") if v else None


def _v_flag(v: str, today: date) -> bool:
    v = v.lower()
    if v in ("", "false", "0", "no"):
        return False
    if v in ("true", "1", "yes"):
        return True
    raise ValueError("supervisory_staff must be true or false")


def _v_username(v: str, today: date) -> str | None:
    if v and not _USERNAME.fullmatch(v):
        raise ValueError("username: letters, digits, . _ -, at most 64")
    return v or None


def _v_phone(v: str, today: date) -> str | None:
    if v and not _PHONE.fullmatch(v):
        raise ValueError("phone: digits, spaces, + ( ) -, at most 32")
    return v or None


def _v_employments(v: str, today: date) -> list[dict[str, Any]]:
    out = []
    for item in _items(v):
        org, start, end = _period(item, "employment")
        out.append({"org_code": org, "start": start, "end": end})
    return out


def _v_roles(v: str, today: date) -> list[dict[str, Any]]:
    out = []
    for item in _items(v):
        kind, colon, rest = item.partition(":")
        if not colon or kind not in (DIRECTOR, CONTROLLER):
            raise ValueError(f"role {item!r} must start with director: or controller:")
        org, start, end = _period(rest, "role")
        out.append({"kind": kind, "org_code": org, "start": start, "end": end,
                    "person_key": None, "relation": None, "org_codes": []})
    return out


def _v_relatives(v: str, today: date) -> list[dict[str, Any]]:
    out = []
    for item in _items(v):
        relation, colon, rest = item.partition(":")
        person, _, orgs_text = rest.partition("@")
        person = person.strip()
        if not colon or not _RELATION.fullmatch(relation) or not _PERSON.fullmatch(person):
            raise ValueError(f"relative {item!r} must be relation:person[@ORG,ORG]")
        orgs = sorted({o.strip() for o in orgs_text.split(",") if o.strip()})
        bad = [o for o in orgs if not _IDENT.fullmatch(o)]
        if bad:
            raise ValueError(f"relative {item!r}: bad organisation code(s) {bad}")
        out.append({"kind": RELATIVE, "person_key": person, "relation": relation,
                    "org_codes": orgs, "org_code": None, "start": None, "end": None})
    return out


def _v_services(v: str, today: date) -> list[dict[str, Any]]:
    out = []
    for item in _items(v):
        org, at, day = item.partition("@")
        if not at or not _IDENT.fullmatch(org):
            raise ValueError(f"service {item!r} must be TENDEREE@YYYY-MM-DD")
        out.append({"tenderee_code": org, "served_on": _date(day, "service date")})
    return out


# column -> (validator, the Expert attribute it fills or None for a child list)
_VALIDATORS: dict[str, Any] = {
    "id": _v_id, "name": _v_name, "specialties": _v_specialties, "region": _v_region,
    "employer": _v_employer, "title": _v_title, "field_since": _v_field_since,
    "status": _v_status, "unavailable_until": _v_unavailable_until,
    "supervisory_staff": _v_flag, "username": _v_username, "phone": _v_phone,
    "employments": _v_employments, "roles": _v_roles, "relatives": _v_relatives,
    "services": _v_services,
}
_EXPERT_COLUMNS = ("id", "name", "region", "employer", "title", "field_since", "status",
                   "unavailable_until", "supervisory_staff", "username", "phone")


def _parse_row(number: int, cells: dict[str, str], today: date) -> _Row:
    """One row's values; :class:`_BadRow` with every (column, message) that is wrong."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for column, validator in _VALIDATORS.items():
        try:
            values[column] = validator(cells.get(column, ""), today)
        except ValueError as exc:
            problems.append((column, str(exc)))
    if problems:
        raise _BadRow(problems)
    return _Row(number, {c: values[c] for c in _EXPERT_COLUMNS}, values["specialties"],
                values["employments"], values["roles"] + values["relatives"], values["services"])


class _BadRow(Exception):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _csv_rows(data: bytes) -> Iterator[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            # Excel on a Chinese Windows saves CSV in GB18030 (a superset of GBK).
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise ImportRefused("The CSV file is neither UTF-8 nor GB18030",
                                errors=[{"row": None, "column": None,
                                         "message": "undecodable text"}], error_count=1) from None
    for row in csv.reader(io.StringIO(text, newline="")):
        yield [cell.strip() for cell in row]


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    from openpyxl import load_workbook
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not XLSX
        raise ImportRefused("The file is not a readable XLSX workbook",
                            errors=[{"row": None, "column": None, "message": str(exc)[:200]}],
                            error_count=1) from None
    try:
        sheet = workbook.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield [_text(v) for v in values]
    finally:
        workbook.close()


def file_format(content_type: str | None, filename: str | None) -> str:
    """``csv`` or ``xlsx`` from a content type or a file name; 415 otherwise."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    name = (filename or "").lower()
    if ctype == XLSX_TYPE or name.endswith(".xlsx"):
        return "xlsx"
    if ctype in CSV_TYPES or name.endswith(".csv"):
        return "csv"
    raise AppError("Send a CSV (text/csv) or XLSX file", code="unsupported_media_type",
                   message_zh="请上传 CSV 或 XLSX 文件", status=415,
                   content_type=ctype or None)


def parse_file(data: bytes, fmt: str, today: date) -> list[_Row]:
    """Every row of the file, checked; :class:`ImportRefused` listing every bad row."""
    rows_iter = _xlsx_rows(data) if fmt == "xlsx" else _csv_rows(data)
    errors = _RowErrors()
    header: list[str] | None = None
    parsed: list[_Row] = []
    seen_ids: dict[str, int] = {}
    seen_users: dict[str, int] = {}
    for number, cells in enumerate(rows_iter, start=1):
        if header is None:
            header = [c.strip().lower() for c in cells]
            while header and header[-1] == "":
                header.pop()
            unknown = [c for c in header if c not in COLUMNS]
            missing = [c for c in REQUIRED if c not in header]
            duplicated = sorted({c for c in header if header.count(c) > 1})
            for problem in ([f"unknown column {c!r}" for c in unknown]
                            + [f"missing column {c!r}" for c in missing]
                            + [f"column {c!r} given twice" for c in duplicated]):
                errors.add(1, None, problem)
            if errors.count:
                break
            continue
        if not any(cells):
            continue  # a blank line (spreadsheets often end with some)
        if len(cells) > len(header) and any(cells[len(header):]):
            errors.add(number, None, "more cells than columns")
            continue
        values = dict(zip(header, cells + [""] * (len(header) - len(cells))))
        try:
            row = _parse_row(number, values, today)
        except _BadRow as bad:
            for column, message in bad.problems:
                errors.add(number, column, message)
            continue
        expert_id, username = row.expert["id"], row.expert["username"]
        if expert_id in seen_ids:
            errors.add(number, "id", f"id {expert_id} already on row {seen_ids[expert_id]}")
            continue
        seen_ids[expert_id] = number
        if username:
            if username in seen_users:
                errors.add(number, "username",
                           f"username {username} already on row {seen_users[username]}")
                continue
            seen_users[username] = number
        parsed.append(row)
    if header is None:
        errors.add(1, None, "the file is empty: a header row is required")
    if errors.count:
        raise ImportRefused(errors=errors.items, error_count=errors.count)
    return parsed


# --------------------------------------------------------------------------- import

@dataclass(frozen=True)
class ImportReport:
    """What an import did: rows read, experts created and replaced, the file's hash."""

    rows: int
    created: int
    updated: int
    sha256: str
    format: str
    log_index: int


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def import_experts(session: Session, actor: Actor, now: datetime, data: bytes, fmt: str) -> ImportReport:
    """Import a pool file (CSV or XLSX), all or nothing, in batched bulk inserts.

    Refuses with :class:`ImportRefused` (``import_invalid``) listing bad rows by number,
    and with ``username_taken`` when a row's username belongs to another expert.
    """
    require_pool_keeper(actor)
    today = local_date(now)
    rows = parse_file(data, fmt, today)
    ids = [r.expert["id"] for r in rows]
    existing: set[str] = set()
    for chunk in _chunks(ids):
        existing.update(session.execute(sa.select(Expert.id).where(Expert.id.in_(chunk))).scalars())
    _check_usernames(session, rows)

    # Replace what a row describes entirely: an id re-imported keeps nothing stale.
    old = sorted(existing)
    for chunk in _chunks(old):
        session.execute(sa.delete(ExpertSpecialty).where(ExpertSpecialty.expert_id.in_(chunk)))
        session.execute(sa.delete(ExpertEmployment).where(ExpertEmployment.expert_id.in_(chunk)))
        session.execute(sa.delete(ExpertRelationship).where(ExpertRelationship.expert_id.in_(chunk)))
        session.execute(sa.delete(ExpertService).where(ExpertService.expert_id.in_(chunk),
                                                       ExpertService.project_id.is_(None)))
    new_rows = [{**r.expert, "created_at": now, "updated_at": now}
                for r in rows if r.expert["id"] not in existing]
    changed = [{**r.expert, "updated_at": now} for r in rows if r.expert["id"] in existing]
    # Core inserts (executemany): the ORM's per-row bookkeeping costs more than the I/O.
    for chunk in _chunks(new_rows):
        session.execute(sa.insert(Expert.__table__), list(chunk))
    for chunk in _chunks(changed):
        session.execute(sa.update(Expert), list(chunk))  # bulk UPDATE by primary key
    children: list[tuple[Any, list[dict[str, Any]]]] = [
        (ExpertSpecialty, [{"expert_id": r.expert["id"], "code": c} for r in rows for c in r.specialties]),
        (ExpertEmployment, [{"expert_id": r.expert["id"], **e} for r in rows for e in r.employments]),
        (ExpertRelationship, [{"expert_id": r.expert["id"], **e} for r in rows for e in r.relationships]),
        (ExpertService, [{"expert_id": r.expert["id"], "project_id": None, **e}
                         for r in rows for e in r.services]),
    ]
    for model, values in children:
        for chunk in _chunks(values):
            session.execute(sa.insert(model.__table__), list(chunk))
    digest = hashlib.sha256(data).hexdigest()
    # The log names no expert: the pool is personal data; the file hash pins what came in.
    appended = log.append(session, now=now, actor=actor.log_name, action="experts.imported",
                          subject="experts", data={"rows": len(rows), "created": len(new_rows),
                                                   "updated": len(changed), "format": fmt,
                                                   "file_sha256": digest})
    return ImportReport(len(rows), len(new_rows), len(changed), digest, fmt, appended.index)


def _check_usernames(session: Session, rows: list[_Row]) -> None:
    wanted = {r.expert["username"]: r for r in rows if r.expert["username"]}
    if not wanted:
        return
    names = sorted(wanted)
    errors = _RowErrors()
    for chunk in _chunks(names):
        for expert_id, username in session.execute(
                sa.select(Expert.id, Expert.username).where(Expert.username.in_(chunk))):
            row = wanted[username]
            if row.expert["id"] != expert_id:
                errors.add(row.number, "username",
                           f"username {username} belongs to expert {expert_id}")
    if errors.count:
        raise ImportRefused(errors=sorted(errors.items, key=lambda e: e["row"]),
                            error_count=errors.count)


def log_import_refused(session: Session, actor: Actor, now: datetime, error: AppError,
                       data: bytes) -> None:
    """Record a refused import (after the caller rolled back the attempt)."""
    log.append(session, now=now, actor=actor.log_name, action="experts.import_refused",
               subject="experts", data={"code": error.code,
                                        "errors": int(error.details.get("error_count", 1)),
                                        "file_sha256": hashlib.sha256(data).hexdigest()})


# --------------------------------------------------------------------------- export

def _period_text(org: str, start: date | None, end: date | None) -> str:
    return f"{org}@{start.isoformat() if start else ''}/{end.isoformat() if end else ''}"


def _export_pages(session: Session, page: int = BATCH,
                  release_between_pages: bool = False) -> Iterator[list[list[str]]]:
    """Rows of the pool in id order, a page at a time. Keyset pagination holds no cursor
    between pages, and a page's children are read by the id range of the page (no long IN
    lists); plain column tuples, no ORM objects. With ``release_between_pages`` the read
    transaction ends after each page (rolled back: it wrote nothing), so a slow client
    holds no lock or snapshot (on SQLite every transaction takes the write lock). Rows
    changed meanwhile may show their new state; none is listed twice."""
    experts_t = Expert.__table__
    last: str | None = None
    while True:
        query = sa.select(experts_t).order_by(experts_t.c.id).limit(page)
        if last is not None:
            query = query.where(experts_t.c.id > last)
        experts = session.execute(query).all()
        if not experts:
            return
        first, final = experts[0].id, experts[-1].id

        def children(model: Any, *columns: Any, extra: Any = None) -> Any:
            table = model.__table__
            query = sa.select(table.c.expert_id, *columns).where(
                table.c.expert_id >= first, table.c.expert_id <= final)
            if extra is not None:
                query = query.where(extra)
            order = [table.c.id] if "id" in table.c else []
            return session.execute(query.order_by(*order)).all()

        specialties: dict[str, list[str]] = {}
        for expert_id, code in children(ExpertSpecialty, ExpertSpecialty.__table__.c.code):
            specialties.setdefault(expert_id, []).append(code)
        jobs: dict[str, list[str]] = {}
        t = ExpertEmployment.__table__
        for expert_id, org, start, end in children(ExpertEmployment, t.c.org_code, t.c.start, t.c.end):
            jobs.setdefault(expert_id, []).append(_period_text(org, start, end))
        roles: dict[str, list[str]] = {}
        relatives: dict[str, list[str]] = {}
        t = ExpertRelationship.__table__
        for expert_id, kind, org, start, end, person, relation, org_codes in children(
                ExpertRelationship, t.c.kind, t.c.org_code, t.c.start, t.c.end, t.c.person_key,
                t.c.relation, t.c.org_codes):
            if kind == RELATIVE:
                relatives.setdefault(expert_id, []).append(
                    f"{relation}:{person}@{','.join(org_codes or [])}")
            else:
                roles.setdefault(expert_id, []).append(f"{kind}:{_period_text(org or '', start, end)}")
        services: dict[str, list[str]] = {}
        t = ExpertService.__table__
        for expert_id, tenderee, served_on in children(ExpertService, t.c.tenderee_code, t.c.served_on,
                                                       extra=t.c.project_id.is_(None)):
            services.setdefault(expert_id, []).append(f"{tenderee}@{served_on.isoformat()}")
        yield [[
            e.id, e.name, ";".join(sorted(specialties.get(e.id, []))), e.region or "",
            e.employer or "", e.title, e.field_since.isoformat(), e.status,
            e.unavailable_until.isoformat() if e.unavailable_until else "",
            "true" if e.supervisory_staff else "false", e.username or "", e.phone or "",
            ";".join(jobs.get(e.id, [])), ";".join(roles.get(e.id, [])),
            ";".join(relatives.get(e.id, [])), ";".join(services.get(e.id, [])),
        ] for e in experts]
        last = final
        if release_between_pages:
            session.rollback()


def log_export(session: Session, actor: Actor, now: datetime, fmt: str) -> None:
    """Check the actor may export, and log the disclosure (before any byte leaves)."""
    require_pool_keeper(actor, read_only=True)
    count = session.execute(sa.select(sa.func.count()).select_from(Expert)).scalar_one()
    log.append(session, now=now, actor=actor.log_name, action="experts.exported",
               subject="experts", data={"format": fmt, "experts": count})


def export_csv(session: Session, *, release_between_pages: bool = False) -> Iterator[bytes]:
    """The pool as UTF-8 CSV with a byte-order mark (so Excel reads the Chinese right),
    streamed page by page (see :func:`_export_pages` for ``release_between_pages``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    for page in _export_pages(session, release_between_pages=release_between_pages):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(page)
        yield buffer.getvalue().encode("utf-8")


def export_xlsx(session: Session, *, release_between_pages: bool = False,
                chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The pool as an XLSX workbook. openpyxl's write-only mode keeps memory flat; the
    workbook is assembled in a temporary file (a ZIP cannot be streamed before its
    directory is known) and then streamed in chunks."""
    from openpyxl import Workbook
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("experts")
    sheet.append(list(COLUMNS))
    for page in _export_pages(session, release_between_pages=release_between_pages):
        for row in page:
            sheet.append(row)
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        handle.seek(0)
        while chunk := handle.read(chunk_size):
            yield chunk


# --------------------------------------------------------------------------- lookups

def get_expert(session: Session, actor: Actor, expert_id: str) -> Expert:
    """One expert, for pool keepers and supervisors."""
    require_pool_keeper(actor, read_only=True)
    expert = session.get(Expert, expert_id)
    if expert is None:
        raise NotFound("No such expert", code="expert_not_found", message_zh="专家不存在")
    return expert


def list_experts(session: Session, actor: Actor, filters: dict[str, Any]) -> tuple[list[Expert], int]:
    """Experts filtered by specialty prefix, region and status, paginated by id."""
    require_pool_keeper(actor, read_only=True)
    query = sa.select(Expert)
    if filters.get("specialty"):
        prefix = filters["specialty"]
        query = query.where(Expert.id.in_(sa.select(ExpertSpecialty.expert_id).where(
            ExpertSpecialty.code.startswith(prefix, autoescape=True))))
    for name in ("region", "status", "title"):
        if filters.get(name):
            query = query.where(getattr(Expert, name) == filters[name])
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    page, per_page = filters.get("page", 1), filters.get("per_page", 20)
    rows = session.execute(query.order_by(Expert.id).offset((page - 1) * per_page)
                           .limit(per_page)).scalars().all()
    return list(rows), total


_VIEW_FIELDS = ("id", "name", "region", "employer", "title", "field_since", "status",
                "unavailable_until", "supervisory_staff", "username")


def expert_views(session: Session, rows: Sequence[Expert]) -> list[dict[str, Any]]:
    """Experts as the API shows them, with their specialty codes."""
    specs = specialties_of(session, [e.id for e in rows])
    return [{**{name: getattr(e, name) for name in _VIEW_FIELDS}, "specialties": specs.get(e.id, [])}
            for e in rows]


def specialties_of(session: Session, ids: Iterable[str]) -> dict[str, list[str]]:
    """Specialty codes of each expert in ``ids``."""
    found: dict[str, list[str]] = {}
    for chunk in _chunks(sorted(set(ids))):
        for expert_id, code in session.execute(sa.select(ExpertSpecialty.expert_id, ExpertSpecialty.code)
                                               .where(ExpertSpecialty.expert_id.in_(chunk))):
            found.setdefault(expert_id, []).append(code)
    return {k: sorted(v) for k, v in found.items()}


def expert_of_user(session: Session, actor: Actor) -> Expert:
    """The pool entry linked to the acting expert's account (403 if none)."""
    expert = None
    if actor.has(Role.EXPERT):
        expert = session.execute(sa.select(Expert).where(Expert.username == actor.username)
                                 ).scalar_one_or_none()
    if expert is None:
        raise Forbidden("Your account is not linked to an expert of the pool",
                        code="not_an_expert", message_zh="您的账号未关联专家库中的专家")
    return expert


def record_credit(session: Session, actor: Actor, now: datetime, expert_id: str,
                  body: dict[str, Any]) -> ExpertCredit:
    """Record a performance or credit entry (RULES H4): pool keepers and supervisors."""
    if not actor.has(Role.ADMIN, Role.SUPERVISOR):
        raise Forbidden("Only pool keepers and supervisors record credit entries",
                        code="pool_keepers_only", message_zh="仅专家库管理员和监督人员可记录信用")
    if session.get(Expert, expert_id) is None:
        raise NotFound("No such expert", code="expert_not_found", message_zh="专家不存在")
    return add_credit(session, now, expert_id, by=actor.log_name, **body)


def add_credit(session: Session, now: datetime, expert_id: str, *, by: str, kind: str,
               points: int = 0, note: str = "", project_id: int | None = None,
               suspended_until: date | None = None) -> ExpertCredit:
    """Store a credit entry and log it (without the expert's name: the id is enough)."""
    if kind not in CREDIT_KINDS:
        raise ValidationFailed(f"kind must be one of {list(CREDIT_KINDS)}", field="kind")
    credit = ExpertCredit(expert_id=expert_id, kind=kind, points=points, note=note,
                          project_id=project_id, suspended_until=suspended_until,
                          recorded_by=by, recorded_at=now)
    session.add(credit)
    session.flush()
    # Hidden detail: a credit entry tied to a project would name a committee member
    # before the result (D4); supervisors read it.
    appended = log.append(session, now=now, actor=by, action="expert.credit_recorded",
                          subject=f"expert:{expert_id}",
                          # points as text: canonical JSON has no negative integers
                          data={"credit": credit.id, "kind": kind, "points": str(points),
                                "project": project_id,
                                "suspended_until": suspended_until.isoformat() if suspended_until else None},
                          hidden=project_id is not None)
    credit.log_index = appended.index
    return credit


# --------------------------------------------------------------------------- for the draw

@dataclass(frozen=True)
class PoolEntry:
    """An expert as the draw's eligibility predicate reads it."""

    record: ExpertRecord
    available: bool


def matches_group(specialties: Iterable[str], region: str | None, group: dict[str, Any]) -> bool:
    """The group filter: a specialty under the group's code (``A01`` admits ``A0101``) and,
    when the group lists regions, a region among them (matched exactly)."""
    prefix = group["specialty"]
    if not any(code.startswith(prefix) for code in specialties):
        return False
    return not group["regions"] or region in group["regions"]


def pool_for_groups(session: Session, groups: Sequence[dict[str, Any]], today: date) -> list[PoolEntry]:
    """Experts holding a specialty under any group's code, with everything recusal and
    qualification read. The SQL prefilter (prefix LIKE on the indexed code) keeps a draw
    from reading a 100,000-expert pool whole; the exact test is :func:`matches_group`."""
    prefixes = sorted({g["specialty"] for g in groups})
    condition = sa.or_(*(ExpertSpecialty.code.startswith(p, autoescape=True) for p in prefixes))
    ids = sorted(set(session.execute(sa.select(ExpertSpecialty.expert_id).where(condition)).scalars()))
    return load_entries(session, ids, today)


def load_entries(session: Session, ids: Sequence[str], today: date) -> list[PoolEntry]:
    """The pool entries of ``ids`` (in that order), read in batches as plain tuples (a
    draw over a large pool would spend most of its time building ORM objects)."""
    entries: list[PoolEntry] = []
    for chunk in _chunks(list(ids)):
        def rows(model: Any, *columns: str, extra: Any = None) -> Any:
            table = model.__table__
            query = sa.select(table.c.expert_id, *(table.c[c] for c in columns)).where(
                table.c.expert_id.in_(chunk))
            return session.execute(query if extra is None else query.where(extra(table))).all()

        specs: dict[str, set[str]] = {}
        for expert_id, code in rows(ExpertSpecialty, "code"):
            specs.setdefault(expert_id, set()).add(code)
        jobs: dict[str, list[Employment]] = {}
        for expert_id, org, start, end in rows(ExpertEmployment, "org_code", "start", "end"):
            jobs.setdefault(expert_id, []).append(Employment(org, start, end))
        roles: dict[str, list[OrgRole]] = {}
        relatives: dict[str, list[Relative]] = {}
        for expert_id, kind, org, start, end, person, relation, org_codes in rows(
                ExpertRelationship, "kind", "org_code", "start", "end", "person_key", "relation",
                "org_codes"):
            if kind == RELATIVE:
                relatives.setdefault(expert_id, []).append(
                    Relative(person or "", relation or "", frozenset(org_codes or ())))
            else:
                role_kind = RoleKind.DIRECTOR if kind == DIRECTOR else RoleKind.CONTROLLER
                # A role declared without dates is treated as current: doubt falls on recusal.
                roles.setdefault(expert_id, []).append(OrgRole(org or "", role_kind, start or date.min, end))
        services: dict[str, list[Service]] = {}
        for expert_id, tenderee, served_on in rows(ExpertService, "tenderee_code", "served_on"):
            services.setdefault(expert_id, []).append(Service(tenderee, served_on))
        suspended = {row[0] for row in rows(ExpertCredit, extra=lambda t: t.c.suspended_until >= today)}
        t = Expert.__table__
        experts = {e.id: e for e in session.execute(sa.select(
            t.c.id, t.c.region, t.c.field_since, t.c.title, t.c.status, t.c.unavailable_until,
            t.c.supervisory_staff).where(t.c.id.in_(chunk))).all()}
        for expert_id in chunk:
            e = experts.get(expert_id)
            if e is None:
                continue
            record = ExpertRecord(
                id=e.id, specialties=frozenset(specs.get(e.id, ())), region=e.region,
                field_since=e.field_since, title=TITLES.get(e.title, TitleLevel.NONE),
                employments=tuple(jobs.get(e.id, ())), roles=tuple(roles.get(e.id, ())),
                relatives=tuple(relatives.get(e.id, ())), supervisory_staff=e.supervisory_staff,
                services=tuple(services.get(e.id, ())))
            available = (e.status == ACTIVE and expert_id not in suspended
                         and (e.unavailable_until is None or e.unavailable_until < today))
            entries.append(PoolEntry(record, available))
    return entries
