"""The demo world of ``ebid serve --demo``: a county's public-resource trading platform
with two months of history, seeded into an empty database only.

**What is seeded.** 祁东县 (region 430426): the exchange centre, three principals (the
housing bureau, the education bureau, the county's state-asset company), a bidding agent,
a supervisory office, six bidder companies, eleven experts in the pool, and one account per
role (admin, agent, tenderee, supervisor, custodian, bidders, experts), each with a random
password returned as ``(username, password, role)``. Twelve projects:

=============  ==========================  ===============================  ==================
domain         contracted / awarded        closed (sealed, not opened)      bidding, draft
=============  ==========================  ===============================  ==================
construction   one contracted (refunds     one, three sealed bids           one each
               paid), one awarded
gp             one awarded (losers'        one, three sealed bids           one each
               securities refunded)
assets         (none: evaluation has no    one sealed single bid (一次报价)  one each
               highest-price method yet)   with two offers
=============  ==========================  ===============================  ==================

**How.** Every step goes through the platform's HTTP API with ``app.test_client()``, as
each party's own client would: logins and bearer tokens, signing keys, opening policies
with custodian statements, bids sealed in-process with :mod:`crypto` exactly as the
bidder's tool seals them, securities, closing, the expert draw (the supervisor's
commit-reveal), releases checked against the closing's inclusion proof as ``ebid release``
checks them, opening, scoring, signatures, publicity, award, contract and refunds. Only
organisations and accounts are created by the account services with the system actor, as
``ebid users create`` does.

**Time.** The real time is read once; the runtime clock is replaced by a
:class:`~core.clock.FixedClock` set sixty days back and moved forward event by event (the
story is planned first, then played in time order), and the original clock is put back
in a ``finally``. Dates come from the rulebook in force: deadlines are the earliest the
pinned rules allow after the issue of the documents (A1 for tenders, G3 for the asset
listing), moved onto working days; closed tenders close the day before today; the bidding
and draft ones close weeks from now. The audit log therefore holds the whole history in
order, and ``ebid audit check`` passes on it.

One runtime setting is widened while the story plays, and restored with the clock: the
access-token lifetime. Weeks of story time pass in seconds of real time, so each party
logs in once rather than once per step (the password KDF already dominates the seeding
time, and the login throttle counts real seconds); every token is revoked by a logout at
the end. Each party speaks from its own client address, as bidders sharing one would
rightly be flagged for collusion (B6).

**Keys left behind.** Tenders that are not opened keep what their custodians need to
open them later: ``<instance>/demo-keys/<username>/`` holds each custodian's signing key
and per-tender X25519 keys (PEM) and the supervisor's draw secrets, for ``ebid release``
and ``ebid draw reveal``.
"""
from __future__ import annotations

import contextvars
import io
import os
import secrets
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from core.clock import FixedClock
from core.db import db
from crypto import keys, sealed, shamir, shares
from crypto.bidform import BID_FORM_NAME, pad_bid_form
from crypto.canonical import b64encode, canonical_json, format_time
from crypto.manifest import make_manifest
from crypto.policy import header_custodians, make_statement, parse_policy, seal_targets
from crypto.signing import MANIFEST, RELEASE, sign_object
from trading.calendar import SHANGHAI

__all__ = ["seed_demo", "DemoError"]

TTL_SETTING = "EBID_TOKEN_TTL_SECONDS"
HISTORY = timedelta(days=60)
LOT = "BD1"
REGION = "430426"            # 祁东县, 衡阳市, 湖南省
OPENING = time(9, 30)        # bid deadlines (= opening) in Asia/Shanghai
OFFICE = time(10, 0)
KEYS_FOLDER = "demo-keys"

# --------------------------------------------------------------------------- the cast

# (code, name, kind, region, legal representative)
ORGS = (
    ("QDGGZY", "祁东县公共资源交易中心", "exchange_centre", REGION, "刘志明"),
    ("QDZJJ", "祁东县住房和城乡建设局", "tenderee", REGION, "陈国强"),
    ("QDJYJ", "祁东县教育局", "tenderee", REGION, "李红梅"),
    ("QDGTGS", "祁东县国有资产投资经营有限公司", "tenderee", REGION, "王卫东"),
    ("QDJGB", "祁东县公共资源交易监督管理办公室", "supervisory_body", REGION, "赵立新"),
    ("HYZXZB", "衡阳市正信招标代理有限公司", "agent", "430400", "周晓峰"),
    ("HNYCJS", "湖南永昌建设工程有限公司", "bidder", REGION, "谭振华"),
    ("HYTQLQ", "衡阳市通衢路桥工程有限公司", "bidder", "430400", "罗文斌"),
    ("HNXYSZ", "湖南湘岳市政工程有限公司", "bidder", "430100", "邓建平"),
    ("HYQMJY", "衡阳市启明教育装备有限公司", "bidder", "430400", "曾丽娟"),
    ("HNBYKJ", "湖南博远科教设备有限公司", "bidder", "430100", "彭志勇"),
    ("QDHDBG", "祁东县鸿达办公设备有限公司", "bidder", REGION, "蒋小兵"),
)

# (username, role, organisation, display name); experts follow from EXPERTS
STAFF = (
    ("admin", "admin", "QDGGZY", "孙丽"),
    ("agent", "agent", "HYZXZB", "周晓峰"),
    ("tenderee", "tenderee", "QDZJJ", "陈国强"),
    ("supervisor", "supervisor", "QDJGB", "赵立新"),
    ("custodian", "custodian", "QDGGZY", "欧阳静"),
    ("bidder1", "bidder", "HNYCJS", "谭振华"),
    ("bidder2", "bidder", "HYTQLQ", "罗文斌"),
    ("bidder3", "bidder", "HNXYSZ", "邓建平"),
    ("bidder4", "bidder", "HYQMJY", "曾丽娟"),
    ("bidder5", "bidder", "HNBYKJ", "彭志勇"),
    ("bidder6", "bidder", "QDHDBG", "蒋小兵"),
)

CIVIL, EQUIPMENT, COST = "A01", "B02", "C01"     # pool specialty groups
# (id, name, specialties, employer, region, in the field since); account expertNN
EXPERTS = (
    ("E001", "黄志刚", "A0102", "衡阳市市政工程设计研究院", "430400", "1998-07-01"),
    ("E002", "彭建华", "A0101;A0102", "湖南省建筑设计院衡阳分院", "430400", "2001-09-01"),
    ("E003", "唐国平", "A0102", "衡阳市交通规划勘察设计院", "430400", "2003-03-01"),
    ("E004", "许文涛", "A0101", "南华大学土木工程学院", "430400", "2005-09-01"),
    ("E005", "龙海燕", "B0201", "衡阳师范学院信息中心", "430400", "2004-07-01"),
    ("E006", "易明辉", "B0202", "衡阳市电化教育馆", "430400", "2002-08-01"),
    ("E007", "段晓东", "B0201;B0202", "湖南工学院", "430400", "2006-09-01"),
    ("E008", "胡雪梅", "B0202", "衡阳市第八中学", "430400", "2000-09-01"),
    ("E009", "雷振宇", "C0101", "衡阳正衡工程造价咨询有限公司", "430400", "1999-05-01"),
    ("E010", "贺丽君", "C0102", "衡阳市审计事务所", "430400", "2003-06-01"),
    ("E011", "谢永红", "C0101", "湖南建科工程管理有限公司", REGION, "2007-04-01"),
)
COST_SEATS = 2                                       # economists on each committee

# --------------------------------------------------------------------------- the projects


def _scoring(price: str, **criteria: str) -> dict[str, Any]:
    """Comprehensive scoring (综合评分法): the named criteria and the price, their points."""
    return {"method": "comprehensive",
            "criteria": [*({"id": c, "max_score": points} for c, points in criteria.items()),
                         {"id": "price", "max_score": price, "is_price": True}]}


CONSTRUCTION_SCORING = _scoring("60", technical="30", business="10")
GOODS_SCORING = _scoring("40", technical="40", business="20")
SERVICES_SCORING = _scoring("30", service_plan="50", qualifications="20")
LOWEST_PRICE = {"method": "lowest_evaluated_price"}


@dataclass(frozen=True)
class Spec:
    """One demo project: what the agent files, and who bids what (username, price, declared)."""

    key: str
    title: str
    domain: str
    procedure: str
    category: str
    tenderee: str
    money: dict[str, str]
    method: dict[str, Any] | None = None
    bids: tuple[tuple[str, str, dict[str, str]], ...] = ()
    specialty: str | None = None          # the committee's technical group
    scores: dict[str, dict[str, str]] = field(default_factory=dict)   # username -> criterion -> base


def _works(key: str, title: str, estimate: str, security: str, method: dict[str, Any],
           bids: tuple[tuple[str, str, dict[str, str]], ...], **extra: Any) -> Spec:
    """A works tender of the housing bureau (施工招标), its maximum price at the estimate."""
    return Spec(key, title, "construction", "open_tender", "works", "QDZJJ",
                {"estimate": estimate, "max_price": estimate, "bid_security": security}, method, bids,
                CIVIL, **extra)


def _gp(key: str, title: str, category: str, budget: str, security: str, method: dict[str, Any],
        bids: tuple[tuple[str, str, dict[str, str]], ...], **extra: Any) -> Spec:
    """An open GP tender of the education bureau, its maximum price at the budget."""
    return Spec(key, title, "gp", "open_tender", category, "QDJYJ",
                {"budget": budget, "max_price": budget, "bid_security": security}, method, bids,
                EQUIPMENT, **extra)


def _assets(key: str, title: str, value: str, security: str,
            bids: tuple[tuple[str, str, dict[str, str]], ...] = ()) -> Spec:
    """A sealed single-bid transfer (一次报价) by the state-asset company, floor at appraisal."""
    return Spec(key, title, "assets", "sealed_bid", "property_rights", "QDGTGS",
                {"appraisal_value": value, "floor_price": value, "bid_security": security}, None, bids)


def _days(n: str) -> dict[str, str]:
    """A works bid's declared construction period."""
    return {"duration_days": n}


def _delivery(n: str) -> dict[str, str]:
    """A goods bid's declared delivery and warranty."""
    return {"delivery_days": n, "warranty_years": "3"}


ROAD = _works("road", "祁东县城区主干道提质改造工程（一期）施工", "2860000.00", "50000.00", CONSTRUCTION_SCORING,
              (("bidder1", "2718500.00", _days("180")), ("bidder2", "2695000.00", _days("200")),
               ("bidder3", "2742300.00", _days("170"))),
              scores={"bidder1": {"technical": "26.50", "business": "8.50"},
                      "bidder2": {"technical": "23.00", "business": "8.00"},
                      "bidder3": {"technical": "27.50", "business": "9.00"}})
CLASSROOMS = _gp("classrooms", "祁东县中小学智慧教室设备采购项目", "goods", "1280000.00", "20000.00", GOODS_SCORING,
                 (("bidder4", "1186000.00", _delivery("30")), ("bidder5", "1159800.00", _delivery("45")),
                  ("bidder6", "1214500.00", _delivery("25"))),
                 scores={"bidder4": {"technical": "36.00", "business": "17.00"},
                         "bidder5": {"technical": "31.50", "business": "15.00"},
                         "bidder6": {"technical": "33.00", "business": "18.00"}})
WATER = _works("water", "祁东县归阳镇农村饮水安全巩固提升工程施工", "960000.00", "15000.00", LOWEST_PRICE,
               (("bidder1", "918000.00", _days("120")), ("bidder2", "902600.00", _days("120")),
                ("bidder3", "931200.00", _days("110"))))
ESTATE = _works("estate", "祁东县洪桥街道老旧小区改造工程施工", "3450000.00", "60000.00", CONSTRUCTION_SCORING,
                (("bidder1", "3298000.00", _days("240")), ("bidder2", "3315500.00", _days("220")),
                 ("bidder3", "3276800.00", _days("250"))))
OFFICE_KIT = _gp("office", "祁东县县直机关办公设备采购项目", "goods", "680000.00", "10000.00", GOODS_SCORING,
                 (("bidder4", "655000.00", _delivery("20")), ("bidder5", "642300.00", _delivery("30")),
                  ("bidder6", "661800.00", _delivery("15"))))
SHARES = _assets("shares", "祁东县城投物业服务有限公司100%股权转让", "3650000.00", "365000.00",
                 (("bidder1", "3720000.00", {"payment": "lump_sum"}),
                  ("bidder4", "3688000.00", {"payment": "lump_sum"})))
SEWER = _works("sewer", "祁东县白地市镇污水处理厂配套管网工程施工", "5120000.00", "80000.00", CONSTRUCTION_SCORING,
               (("bidder2", "4986000.00", _days("300")), ("bidder3", "4951200.00", _days("280"))))
REPAIRS = _gp("repairs", "祁东县公务用车定点维修服务采购项目", "services", "450000.00", "5000.00", SERVICES_SCORING,
              (("bidder6", "428000.00", {"response_hours": "2"}),))
BUILDING = _assets("building", "祁东县建设路88号闲置办公楼转让", "5860000.00", "580000.00",
                   (("bidder2", "5900000.00", {"payment": "instalments"}),))
SCHOOL = _works("school", "祁东县黄土铺镇中心小学教学楼新建工程施工", "7380000.00", "100000.00",
                CONSTRUCTION_SCORING, ())
CLINICS = _gp("clinics", "祁东县乡镇卫生院信息化建设采购项目", "goods", "2350000.00", "30000.00", GOODS_SCORING, ())
VEHICLES = _assets("vehicles", "祁东县国投公司所属公务车辆一批（12台）转让", "468000.00", "46800.00")

DOCUMENTS = {"construction": "招标文件", "gp": "采购文件", "assets": "产权转让公告"}   # by domain


class DemoError(RuntimeError):
    """A step of the demo story was refused: the message names the step and the answer."""


# --------------------------------------------------------------------------- entry point


def seed_demo(app: Any) -> list[tuple[str, str, str]]:
    """Seed the demo world into an empty database; return ``(username, password, role)``
    of every account, or ``[]`` (and change nothing) when the database is not empty.

    Runs in a fresh context so each request gets its own app context (and its own
    ``now``) even when the caller holds one.
    """
    return contextvars.Context().run(_seed, app)


def _seed(app: Any) -> list[tuple[str, str, str]]:
    """Swap in the story's clock (and token lifetime), play the story, restore both."""
    if not _database_empty(app):
        return []
    runtime = app.extensions["ebid"]
    original, ttl = runtime.clock, runtime.config[TTL_SETTING]
    real_now = original.now()                      # the one read of the real time
    clock = FixedClock(_local(_day(real_now - HISTORY), time(8, 30)))
    runtime.clock = clock
    runtime.config[TTL_SETTING] = int((real_now - clock.now()).total_seconds())
    try:
        demo = Demo(app, clock, real_now)
        demo.play()
        return demo.credentials()
    except DemoError as exc:
        raise DemoError(f"{exc}\nThe database now holds part of the demo: seed an empty one.") from None
    finally:
        runtime.clock = original
        runtime.config[TTL_SETTING] = ttl


def _database_empty(app: Any) -> bool:
    """No accounts, organisations, projects or log entries yet."""
    from audits.models import LogEntry
    from trading.models import Organisation, Project, User
    with app.app_context():
        return all(db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one() == 0
                   for model in (User, Organisation, Project, LogEntry))


# --------------------------------------------------------------------------- time


def _local(day: date, at: time) -> datetime:
    """``at`` on ``day`` in Asia/Shanghai, as an aware UTC instant."""
    return datetime.combine(day, at, SHANGHAI).astimezone(timezone.utc)


def _day(instant: datetime) -> date:
    """The Asia/Shanghai date of ``instant``."""
    return instant.astimezone(SHANGHAI).date()


def _working(calendar: Any, day: date, step: int = 1) -> date:
    """``day`` or the nearest working day after it (``step=-1``: before it)."""
    while not calendar.is_working_day(day):
        day += timedelta(days=step)
    return day


_DEADLINE_STEPS = ("bid_preparation", "response", "single_source_publicity", "listing")


def _deadline_step(rules: Any) -> str:
    """The period that bounds the bid deadline for these rules (A1, F3 or G3)."""
    return next(step for step in _DEADLINE_STEPS if rules.has_step(step))


def earliest_deadline(rules: Any, issued: datetime) -> datetime:
    """The first working morning after the shortest bidding period the rules allow."""
    limit = rules.limits_for(_deadline_step(rules), issued)
    return _local(_working(rules.calendar, limit.last_day + timedelta(days=1)), OPENING)


def latest_issue(rules: Any, deadline: datetime) -> datetime:
    """The last working morning on which documents may be issued for ``deadline``."""
    day = rules.latest_start(_deadline_step(rules), deadline).last_day
    while True:
        day = _working(rules.calendar, day, -1)
        if earliest_deadline(rules, _local(day, OFFICE)) <= deadline:
            return _local(day, OFFICE)
        day -= timedelta(days=1)


def documents_until(rules: Any, issued: datetime, deadline: datetime) -> datetime | None:
    """17:00 on the day after the shortest document availability (A2), if it applies."""
    if not rules.has_step("document_availability"):
        return None
    return min(rules.limits_for("document_availability", issued).at + timedelta(hours=17), deadline)


# --------------------------------------------------------------------------- the story


@dataclass(order=True)
class Event:
    """One step of the story: who does what is in ``run``; ``seq`` keeps planning order."""

    at: datetime
    seq: int
    label: str = field(compare=False)
    run: Callable[[], None] = field(compare=False)


class Story:
    """Events planned in any order, played in time order (ties in planning order)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def at(self, when: datetime, label: str, run: Callable[[], None]) -> None:
        """Plan ``run`` for the instant ``when``."""
        self.events.append(Event(when, len(self.events), label, run))

    def play(self, clock: FixedClock, before: datetime) -> None:
        """Run every event with the clock at its instant; all must come ``before``."""
        for event in sorted(self.events):
            if event.at >= before or event.at < clock.now():
                raise DemoError(f"{event.label}: planned at {format_time(event.at)}, outside the story")
            clock.set(event.at)
            try:
                event.run()
            except DemoError as exc:
                raise DemoError(f"{event.label} ({format_time(event.at)}): {exc}") from None


# --------------------------------------------------------------------------- HTTP


@dataclass
class Party:
    """An account of the demo and the secret its owner would keep."""

    username: str
    password: str
    role: str
    org: str | None
    display: str


class Http:
    """The platform's API as each party's client speaks it: JSON, bearer tokens."""

    def __init__(self, app: Any, parties: dict[str, Party]) -> None:
        self.client = app.test_client()
        self.parties = parties
        self.tokens: dict[str, str] = {}

    def token(self, who: str) -> str:
        """The party's access token, logging in on first use."""
        if who not in self.tokens:
            party = self.parties[who]
            data = self.call("POST", "/api/v1/auth/token",
                             json={"username": party.username, "password": party.password})
            self.tokens[who] = data["access_token"]
        return self.tokens[who]

    def address(self, who: str | None) -> str:
        """Each party's own network address (documentation range, RFC 5737): bidders
        sharing one would rightly look like collusion (B6)."""
        names = list(self.parties)
        return f"198.51.100.{names.index(who) + 10}" if who in self.parties else "192.0.2.1"

    def call(self, method: str, path: str, who: str | None = None, *, raw: bool = False,
             **kwargs: Any) -> Any:
        """Send one request; the ``data`` of the answer (or its bytes with ``raw``)."""
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(who)}"
        resp = self.client.open(path, method=method, headers=headers,
                                environ_base={"REMOTE_ADDR": self.address(who)}, **kwargs)
        if resp.status_code not in (200, 201, 204):
            raise DemoError(f"{method} {path} as {who or 'anonymous'}: HTTP {resp.status_code} "
                            f"{resp.get_data(as_text=True)[:800]}")
        if raw:
            return resp.get_data()
        body = resp.get_json(silent=True)
        return body.get("data") if isinstance(body, dict) else body


# --------------------------------------------------------------------------- tenders


@dataclass
class Tender:
    """A demo project while the story runs."""

    spec: Spec
    issued: datetime
    deadline: datetime
    id: int = 0
    policy_bytes: bytes = b""
    custodians: dict[int, tuple[str, Any]] = field(default_factory=dict)  # slot -> (holder, X25519)
    draw_secret: bytes | None = None
    committee: list[str] = field(default_factory=list)
    winner: str | None = None
    opened: bool = False

    @property
    def ref(self) -> str:
        """The tender as the crypto layer names it."""
        return str(self.id)

    @property
    def base(self) -> str:
        """The root of the tender's bidding endpoints."""
        return f"/api/v1/tenders/{self.id}"

    def bid(self, org: str) -> tuple[str, dict[str, str]]:
        """The price and declared items of ``org``'s bid."""
        return next((price, declared) for who, price, declared in self.spec.bids
                    if STAFF_ORG[who] == org)


STAFF_ORG = {username: org for username, _, org, _ in STAFF}
# custodian slots of every opening policy: (holder, role written in the policy)
SLOTS = ((1, "agent", "agent"), (2, "supervisor", "supervisor"), (3, "custodian", "custodian"))
THRESHOLD = 2


class Demo:
    """Plans the story of every project, then plays it over HTTP."""

    def __init__(self, app: Any, clock: FixedClock, real_now: datetime) -> None:
        self.app, self.clock, self.real_now = app, clock, real_now
        self.start = clock.now()
        self.parties = _cast()
        self.http = Http(app, self.parties)
        self.story = Story()
        self.signing: dict[str, Any] = {}
        self.tenders: list[Tender] = []
        self.calendar = app.extensions["ebid"].rulebook.calendar

    # ----------------------------------------------------------------- the plan

    def play(self) -> None:
        """Plan every project, play the story, log everyone out, keep the open keys."""
        self.story.at(self.start, "accounts", self.accounts)
        self.plan()
        self.story.play(self.clock, self.real_now)
        self.clock.set(self.clock.now() + timedelta(minutes=1))
        for who in list(self.http.tokens):
            self.http.call("POST", "/api/v1/auth/logout", who)
        self.keep_keys()

    def plan(self) -> None:
        """Which project reaches which stage, and when it starts: three awarded ones
        early on, three closed yesterday, three open for bids, three drafts."""
        today = _day(self.real_now)
        first = _working(self.calendar, _day(self.start))
        self.awarded(ROAD, _local(first, OFFICE), contract=True)
        self.awarded(CLASSROOMS, _local(_working(self.calendar, first + timedelta(days=20)), OFFICE))
        self.awarded(WATER, _local(_working(self.calendar, first + timedelta(days=9)), OFFICE))
        yesterday = _working(self.calendar, today - timedelta(days=1), -1)   # the last working day
        for spec in (ESTATE, OFFICE_KIT, SHARES):
            self.closed(spec, _local(yesterday, OPENING))
        issued = _local(_working(self.calendar, yesterday - timedelta(days=5), -1), OFFICE)
        for spec in (SEWER, REPAIRS, BUILDING):
            self.published(spec, issued, bid_day=yesterday)
        for spec in (SCHOOL, CLINICS, VEHICLES):
            self.draft(spec, _local(yesterday, time(15, 0)), _local(today + timedelta(days=7), OFFICE))

    def rules(self, spec: Spec) -> Any:
        """The rules the platform will pin on ``spec`` at publication."""
        money = spec.money.get("budget") or spec.money.get("estimate")
        return self.app.extensions["ebid"].rulebook.for_project(spec.domain, spec.procedure, spec.category,
                                                               budget=money)

    def published(self, spec: Spec, issued: datetime, deadline: datetime | None = None,
                  bid_day: date | None = None) -> Tender:
        """Filed, with a document and a policy, then published at ``issued``; the
        supervisor commits to the draw and the bidders bid on ``bid_day`` (by default the
        next working day)."""
        t = Tender(spec, issued, deadline or earliest_deadline(self.rules(spec), issued))
        self.tenders.append(t)
        self.story.at(issued - timedelta(hours=1), f"{spec.key}: filed", lambda: self.file(t))
        self.story.at(issued, f"{spec.key}: published", lambda: self.publish(t))
        bid_day = bid_day or _working(self.calendar, _day(issued) + timedelta(days=1))
        if spec.domain != "assets":
            self.story.at(_local(bid_day, time(9, 0)), f"{spec.key}: draw commitment", lambda: self.commit(t))
        for n, (who, price, declared) in enumerate(spec.bids):
            self.story.at(_local(bid_day, OFFICE) + timedelta(minutes=47 * n), f"{spec.key}: bid by {who}",
                          lambda who=who, price=price, declared=declared: self.submit(t, who, price, declared))
        return t

    def draft(self, spec: Spec, at: datetime, issue: datetime) -> None:
        """A draft with its schedule (weeks ahead) and a tender document."""
        t = Tender(spec, issue, earliest_deadline(self.rules(spec), issue))
        self.story.at(at, f"{spec.key}: draft", lambda: self.file(t))

    def closed(self, spec: Spec, deadline: datetime) -> None:
        """Bids sealed and in, the deadline passed, the closing list fixed; not opened."""
        t = self.published(spec, latest_issue(self.rules(spec), deadline), deadline)
        self.story.at(deadline, f"{spec.key}: closed", lambda: self.close(t))

    def awarded(self, spec: Spec, issued: datetime, contract: bool = False) -> None:
        """Through closing, draw, opening and evaluation to the award (and the contract)."""
        t = self.published(spec, issued)
        d = t.deadline
        self.story.at(d, f"{spec.key}: closed", lambda: self.close(t))
        self.story.at(d + timedelta(minutes=5), f"{spec.key}: expert draw", lambda: self.draw(t))
        self.story.at(d + timedelta(minutes=15), f"{spec.key}: opening", lambda: self.open(t))
        self.story.at(d + timedelta(hours=1), f"{spec.key}: evaluation", lambda: self.evaluate(t))
        reported = d + timedelta(hours=3)
        self.story.at(reported, f"{spec.key}: report", lambda: self.report(t))
        if spec.domain == "construction":
            self.award_after_publicity(t, reported, contract)
        else:
            self.award_directly(t, reported)

    def award_after_publicity(self, t: Tender, reported: datetime, contract: bool) -> None:
        """Construction: candidates publicised for the rule's period (E4), then the award,
        the written report to the supervisor (E6), the contract and every refund (B8)."""
        start = _local(_day(reported) + timedelta(days=1), time(9, 0))
        rules = self.rules(t.spec)
        ends = rules.limits_for("publicity", start).at
        key = t.spec.key
        self.story.at(start, f"{key}: publicity", lambda: self.post(t, "publicity", "agent",
                                                                      {"ends_at": format_time(ends)}))
        award_at = ends + timedelta(hours=9)
        self.story.at(award_at, f"{key}: award", lambda: self.award(t))
        self.story.at(award_at + timedelta(days=1, hours=1), f"{key}: report to the supervisor",
                      lambda: self.post(t, "supervisor-report", "agent",
                                        {"text": "招标投标情况书面报告：开标、评标、中标候选人公示及定标情况"}))
        if contract:
            signed = award_at + timedelta(days=7)
            self.story.at(signed, f"{key}: contract", lambda: self.contract(t, "tenderee"))
            self.story.at(signed + timedelta(days=1), f"{key}: refunds", lambda: self.refunds(t, "36.50"))

    def award_directly(self, t: Tender, reported: datetime) -> None:
        """GP: the award the next day (E6), the committee made public, losers refunded."""
        award_at = reported + timedelta(days=1)
        self.story.at(award_at, f"{t.spec.key}: award", lambda: self.award(t))
        self.story.at(award_at + timedelta(days=1), f"{t.spec.key}: refunds", lambda: self.refunds(t))

    # ----------------------------------------------------------------- accounts

    def accounts(self) -> None:
        """Organisations and accounts by the account services (as ``ebid users create``),
        then the expert pool imported by the administrator."""
        from core.actor import SYSTEM
        from trading import accounts
        now = self.clock.now()
        with self.app.app_context():
            for code, name, kind, region, representative in ORGS:
                accounts.create_organisation(db.session, SYSTEM, now, code=code, name=name, kind=kind,
                                             region=region, legal_representative=representative)
            for p in self.parties.values():
                accounts.create_user(db.session, SYSTEM, now, username=p.username, password=p.password,
                                     roles=(p.role,), org_code=p.org, display_name=p.display)
            db.session.commit()
        self.http.call("POST", "/api/v1/experts/import", "admin", data=_pool_csv(),
                       content_type="text/csv")

    def signing_key(self, who: str) -> Any:
        """The party's Ed25519 key, registered with its account on first use."""
        if who not in self.signing:
            key = keys.generate_private_key("ed25519")
            self.http.call("POST", "/api/v1/me/keys", who,
                           json={"public_key": b64encode(keys.raw_public_bytes(key))})
            self.signing[who] = key
        return self.signing[who]

    def credentials(self) -> list[tuple[str, str, str]]:
        """``(username, password, role)`` of every account, for ``ebid serve`` to print."""
        return [(p.username, p.password, p.role) for p in self.parties.values()]

    # ----------------------------------------------------------------- filing and bidding

    def file(self, t: Tender) -> None:
        """The agent files the project with its schedule and uploads the tender document."""
        spec, rules = t.spec, self.rules(t.spec)
        schedule = {"documents_from": format_time(t.issued), "bid_deadline": format_time(t.deadline)}
        until = documents_until(rules, t.issued, t.deadline)
        if until is not None:
            schedule["documents_until"] = format_time(until)
        body = {"title": spec.title, "domain": spec.domain, "procedure": spec.procedure,
                "category": spec.category, "region": REGION, "tenderee": spec.tenderee,
                "supervisor": "QDJGB", **spec.money, "schedule": schedule,
                "lots": [{"code": LOT, "title": "第一标段"}]}
        if spec.method:
            body["evaluation_method"] = spec.method
        t.id = self.http.call("POST", "/api/v1/projects", "agent", json=body)["id"]
        kind = DOCUMENTS[spec.domain]
        text = f"{spec.title}\n{kind}（示范）\n投标截止时间：{format_time(t.deadline)}\n".encode()
        self.http.call("POST", f"/api/v1/projects/{t.id}/documents", "agent",
                       query_string={"name": f"{kind}.txt"}, data=text, content_type="text/plain")

    def publish(self, t: Tender) -> None:
        """The custodians' statements with fresh per-tender keys, the policy, publication."""
        entries = []
        for i, holder, role in SLOTS:
            x25519 = keys.generate_private_key("x25519")
            entries.append(make_statement(t.ref, i, role, keys.raw_public_bytes(x25519), self.signing_key(holder)))
            t.custodians[i] = (holder, x25519)
        self.http.call("PUT", f"{t.base}/policy", "agent",
                       json={"threshold": THRESHOLD, "release_window_s": 3600, "custodians": entries})
        t.policy_bytes = self.http.call("GET", f"{t.base}/policy", "agent", raw=True)
        self.http.call("POST", f"/api/v1/projects/{t.id}/publish", "agent")

    def commit(self, t: Tender) -> None:
        """The supervising body commits to its draw secret (``ebid draw commit``)."""
        from trading.draw import commitment
        t.draw_secret = secrets.token_bytes(32)
        self.http.call("POST", f"{t.base}/draws/commitments", "supervisor",
                       json={"lot": LOT, "commitment": commitment(t.draw_secret)})

    def submit(self, t: Tender, who: str, price: str, declared: dict[str, str]) -> None:
        """Pay the security, seal the bid form as the bidder's tool does, post and upload."""
        org = self.parties[who].org
        if t.spec.money.get("bid_security"):
            self.http.call("POST", f"{t.base}/securities", who,
                           json={"lot": LOT, "amount": t.spec.money["bid_security"],
                                 "payer_account": f"6217{zlib.crc32(org.encode()):012d}"})
        envelope, ebid = self.seal(t, who, price, declared)
        started = self.http.call("POST", f"{t.base}/submissions", who, data=canonical_json(envelope),
                                 content_type="application/json")
        self.http.call("PUT", started["upload"], who, data=ebid, content_type="application/octet-stream")

    def seal(self, t: Tender, who: str, price: str, declared: dict[str, str]) -> tuple[dict, bytes]:
        """A sealed bid-form.json, its shares sealed to the custodians, the signed manifest."""
        org = self.parties[who].org
        policy = parse_policy(t.policy_bytes)
        header = sealed.build_header(t.ref, LOT, org, BID_FORM_NAME, policy.sha256, policy.threshold,
                                     header_custodians(policy), os.urandom(8), format_time(self.clock.now()))
        form = pad_bid_form({"tender": t.ref, "lot": LOT, "bidder": org, "price": price, "currency": "CNY",
                             **declared})
        bid_key, out = os.urandom(32), io.BytesIO()
        result = sealed.seal_stream(io.BytesIO(form), out, header, bid_key)
        h = bytes.fromhex(result.header_sha256)
        sealed_shares = []
        for (i, y), (_, public) in zip(shamir.split(bid_key, policy.threshold, policy.n), seal_targets(policy)):
            plain = shares.share_plaintext(i, y)
            sealed_shares.append((i, shares.seal_share(public, h, i, plain), shares.share_digest(h, plain)))
        manifest = make_manifest(t.ref, LOT, org, BID_FORM_NAME, result.header_sha256, policy.sha256,
                                 result.ciphertext_sha256, result.size, result.commitment, sealed_shares,
                                 os.urandom(16))
        envelope = sign_object("manifest", manifest, self.signing_key(who), MANIFEST)
        return envelope, out.getvalue()

    # ----------------------------------------------------------------- closing and opening

    def close(self, t: Tender) -> None:
        """The first request after the deadline closes the tender and fixes its list."""
        self.http.call("GET", f"{t.base}/closing")

    def draw(self, t: Tender) -> None:
        """The agent requests the committee, the supervisor reveals, the drawn confirm."""
        members = self.rules(t.spec).rule("D1").integer("min_members")
        groups = [{"specialty": t.spec.specialty, "count": members - COST_SEATS},
                  {"specialty": COST, "count": COST_SEATS}]
        attempt = self.http.call("POST", f"{t.base}/draws", "agent", json={"lot": LOT, "groups": groups})["attempt"]
        self.http.call("POST", f"{t.base}/draws/{attempt}/reveal", "supervisor",
                       json={"lot": LOT, "secret": t.draw_secret.hex()})
        for username in _experts_of(t.spec.specialty, COST):
            seats = self.http.call("GET", "/api/v1/experts/me/committees", username)
            if any(s["tender"] == t.id and s["status"] == "invited" for s in seats):
                self.post(t, "committee/confirm", username, {"lot": LOT})
                self.post(t, "committee/declaration", username, {"lot": LOT, "conflict": False})
                t.committee.append(username)
        if len(t.committee) != members:
            raise DemoError(f"{len(t.committee)} experts confirmed, {members} seats")

    def open(self, t: Tender) -> None:
        """Start the opening, each custodian releases its shares, decrypt and publish."""
        self.post(t, "opening/start", "agent")
        key_line = self.http.call("GET", "/api/v1/audit/key", raw=True).decode().strip()
        for i, (holder, x25519) in t.custodians.items():
            self.release(t, i, holder, x25519, key_line)
        self.post(t, "opening/finish", "agent")
        t.opened = True

    def release(self, t: Tender, i: int, holder: str, x25519: Any, key_line: str) -> None:
        """Custodian ``i`` checks the closing against the log key and releases, as
        ``ebid release`` does (the same checks, from :mod:`bidding.cli`)."""
        from bidding.cli import plan_releases, verify_closing
        closed = verify_closing(t.ref, self.http.call("GET", f"{t.base}/closing"), key_line)
        offered = self.http.call("GET", f"{t.base}/shares", holder, query_string={"i": i})
        plan = plan_releases(t.ref, i, closed, offered, x25519)
        if plan.skipped or not plan.releases:
            raise DemoError(f"custodian {i} would not release: {plan.skipped}")
        signed = [sign_object("release", payload, self.signing_key(holder), RELEASE) for payload in plan.releases]
        self.http.call("POST", f"{t.base}/releases", holder, json={"data": signed})

    # ----------------------------------------------------------------- evaluation and award

    def post(self, t: Tender, path: str, who: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON body to one of the tender's endpoints as ``who``."""
        return self.http.call("POST", f"{t.base}/{path}", who, json=body or {})

    def evaluate(self, t: Tender) -> None:
        """The agent opens the evaluation; each member scores every bid (comprehensive)."""
        self.post(t, "evaluation/start", "agent")
        if not t.spec.scores:
            return
        price_criteria = {c["id"] for c in t.spec.method["criteria"] if c.get("is_price")}
        for n, username in enumerate(t.committee):
            items = [{"bid": STAFF_ORG[who], "criterion": criterion, "value": _nudge(base, n)}
                     for who, criteria in t.spec.scores.items() for criterion, base in criteria.items()
                     if criterion not in price_criteria]
            self.post(t, "evaluation/scores", username, {"scores": items})

    def report(self, t: Tender) -> None:
        """The result is computed and every member signs the report."""
        result = self.post(t, "evaluation/report", "agent")["result"]
        t.winner = result["candidates"][0]
        for username in t.committee:
            self.post(t, "evaluation/report/sign", username)

    def award(self, t: Tender) -> None:
        """The award to the first candidate: every notice at one instant."""
        self.post(t, "award", "agent", {"bidder": t.winner})

    def contract(self, t: Tender, who: str) -> None:
        """The contract at the awarded price and on the winning bid's declared terms."""
        price, declared = t.bid(t.winner)
        self.post(t, "contracts", who, {"amount": price, "terms": {**declared, "payment": "按工程进度支付"}})

    def refunds(self, t: Tender, interest: str | None = None) -> None:
        """The agent refunds every security that is due (with interest where owed)."""
        for refund in self.http.call("GET", f"{t.base}/award", "agent")["refunds"]:
            if refund["refunded_at"]:
                continue
            body = {"interest": interest} if interest and refund.get("with_interest") else {}
            self.post(t, f"refunds/{refund['id']}", "agent", body)

    # ----------------------------------------------------------------- what stays

    def keep_keys(self) -> None:
        """Custodian keys of the tenders left unopened, and the supervisor's draw secrets,
        under ``<instance>/demo-keys/<username>/`` (mode 0600) so they can be opened later."""
        folder = Path(self.app.instance_path) / KEYS_FOLDER
        for t in (t for t in self.tenders if not t.opened):
            for i, (holder, x25519) in t.custodians.items():
                _private(folder / holder / f"tender-{t.id}-slot{i}.x25519.pem", keys.dump_private_pem(x25519))
                _private(folder / holder / "signing.pem", keys.dump_private_pem(self.signing[holder]))
            if t.draw_secret is not None:
                _private(folder / "supervisor" / f"tender-{t.id}-draw.secret", (t.draw_secret.hex() + "\n").encode())


def _private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _nudge(base: str, n: int) -> str:
    """Member ``n``'s score near ``base`` (members differ a little, deterministically)."""
    from decimal import Decimal
    return str(Decimal(base) + Decimal((n % 3) - 1) / 2)


def _cast() -> dict[str, Party]:
    """Every account with a fresh random password."""
    people = [(username, role, org, name) for username, role, org, name in STAFF]
    people += [(f"expert{n:02d}", "expert", None, name) for n, (_, name, *_rest) in enumerate(EXPERTS, start=1)]
    return {username: Party(username, secrets.token_urlsafe(12), role, org, name)
            for username, role, org, name in people}


def _experts_of(*groups: str) -> list[str]:
    """Accounts of the pool experts with a specialty under any of ``groups``."""
    return [f"expert{n:02d}" for n, (_, _, specialties, *_rest) in enumerate(EXPERTS, start=1)
            if any(s.startswith(g) for s in specialties.split(";") for g in groups)]


def _pool_csv() -> bytes:
    """The pool as the exchange centre keeps it (CSV, one row per expert)."""
    rows = ["id,name,specialties,region,employer,title,field_since,username"]
    for n, (expert_id, name, specialties, employer, region, since) in enumerate(EXPERTS, start=1):
        rows.append(f"{expert_id},{name},{specialties},{region},{employer},senior,{since},expert{n:02d}")
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")
