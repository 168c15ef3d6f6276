"""The rulebook (交易规则): RULES.md's numbers as data, resolved for one project.

Pure: TOML files in, values out; no clock, no database. ``rulebook.toml`` (beside this
module) holds every number with its citation and confidence mark; override files merge
on top (:func:`load_rulebook`). :meth:`Rulebook.for_project` resolves every rule for one
project (domain → procedure → category, then the law's conditions such as the GP budget)
into :class:`ProjectRules`, which a project pins at publication (``to_json``) together
with the rulebook's content hash (``version``). The checks that use these numbers are in
``trading/rules_check.py``; they raise :class:`RuleViolation`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import RuleBroken
from trading.calendar import (
    DayKind, Deadline, Sense, WorkCalendar, counting_day, default_calendar, end_of_day, load_calendar,
)
from trading.domain import CATEGORIES_BY_DOMAIN, PROCEDURES_BY_DOMAIN, Category, Domain, Procedure

__all__ = [
    "RULEBOOK_TOML", "RulebookError", "RuleViolation", "RuleNotApplicable", "Period",
    "ResolvedRule", "ProjectFacts", "Rulebook", "ProjectRules", "load_rulebook",
    "default_rulebook",
]

RULEBOOK_TOML = Path(__file__).with_name("rulebook.toml")
MARKS = ("V", "S", "M")
_META = ("title_en", "title_zh", "citation", "mark", "applies", "periods", "note")
_CONDITIONS = ("budget_gte", "budget_lt", "complex", "state_funded")


class RulebookError(ValueError):
    """The rulebook data (packaged or an override) is not usable."""


class RuleViolation(RuleBroken):
    """A rule refuses the action (违反交易规则).

    ``code`` is always ``"rule_violation"``; ``rule`` is the RULES.md id (``"A1"``),
    ``citation`` the statute; ``details`` says what was required and what was given.
    """

    def __init__(self, rule: str, citation: str, message_zh: str, message_en: str,
                 details: Mapping[str, Any] | None = None) -> None:
        self.rule = rule
        self.rule_id = rule  # the name the constructor's signature uses
        self.citation = citation
        clean = {k: _jsonable(v) for k, v in (details or {}).items()}
        super().__init__(message_en, message_zh=message_zh, rule=rule, citation=citation, **clean)


class RuleNotApplicable(LookupError):
    """The rule or step does not apply to this project (or does not exist)."""

    code = "rule_not_applicable"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (Decimal, Fraction)):
        return str(value)
    if isinstance(value, Deadline):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value


# -- data values ------------------------------------------------------------------------

def _parse_decimal(text: Any, where: str) -> Decimal:
    if not isinstance(text, str):
        raise RulebookError(f"{where}: money and shares are decimal strings, got {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise RulebookError(f"{where}: not a decimal: {text!r}") from exc
    if not value.is_finite():
        raise RulebookError(f"{where}: not a finite decimal: {text!r}")
    return value


def _parse_fraction(text: Any, where: str) -> Fraction:
    if not isinstance(text, str):
        raise RulebookError(f"{where}: fractions are strings like \"2/3\", got {text!r}")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise RulebookError(f"{where}: not a fraction: {text!r}") from exc


def _validate_values(node: Any, where: str) -> None:
    """Floats are refused everywhere (money is never float); typed suffixes must parse."""
    if isinstance(node, float):
        raise RulebookError(f"{where}: floats are not allowed; write a decimal string")
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{where}.{key}"
            if key.endswith(("_amount", "_ratio")):
                _parse_decimal(value, here)
            elif key.endswith("_fraction"):
                _parse_fraction(value, here)
            else:
                _validate_values(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _validate_values(value, f"{where}[{i}]")


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; anything else (numbers, strings, arrays) is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# -- scopes -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scope:
    domain: str
    procedure: str
    category: str

    @classmethod
    def parse(cls, text: str, where: str) -> _Scope:
        parts = text.split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise RulebookError(f"{where}: scope {text!r} is not domain[/procedure[/category]]")
        parts += ["*"] * (3 - len(parts))
        for value, enum in zip(parts, (Domain, Procedure, Category)):
            if value != "*" and value not in {m.value for m in enum}:
                raise RulebookError(f"{where}: unknown {enum.__name__.lower()} {value!r} in {text!r}")
        return cls(*parts)

    @property
    def specificity(self) -> int:
        # procedure outranks category, which outranks domain: d < */*/c < d/*/c < d/p < d/p/c
        return ((self.domain != "*") * 1 + (self.category != "*") * 2
                + (self.procedure != "*") * 4)

    def matches(self, domain: str, procedure: str, category: str) -> bool:
        return all(s in ("*", v) for s, v in
                   ((self.domain, domain), (self.procedure, procedure), (self.category, category)))


# -- resolved values --------------------------------------------------------------------

@dataclass(frozen=True)
class ProjectFacts:
    """What the law's conditions look at: the budget (or estimate) in CNY and flags."""

    budget: Decimal | None = None
    complex: bool = False
    state_funded: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.budget, float):
            raise TypeError("budget must be a Decimal, not a float")
        if self.budget is not None and not isinstance(self.budget, Decimal):
            object.__setattr__(self, "budget", Decimal(str(self.budget)))

    def holds(self, conditions: Mapping[str, Any], where: str) -> bool:
        """Do all ``conditions`` hold? An unknown budget satisfies no budget condition."""
        for name, expected in conditions.items():
            if name == "budget_gte":
                ok = self.budget is not None and self.budget >= _parse_decimal(expected, where)
            elif name == "budget_lt":
                ok = self.budget is not None and self.budget < _parse_decimal(expected, where)
            elif name in ("complex", "state_funded"):
                ok = getattr(self, name) is expected
            else:
                raise RulebookError(f"{where}: unknown condition {name!r}")
            if not ok:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"budget": None if self.budget is None else str(self.budget),
                "complex": self.complex, "state_funded": self.state_funded}


@dataclass(frozen=True)
class Period:
    """A time limit of a rule: ``days`` (or ``months``) of ``kind``, read in ``sense``,
    running from the event ``from_event`` to the event ``to_event``."""

    step: str
    days: int
    kind: DayKind
    sense: Sense
    months: int = 0
    from_event: str = ""
    to_event: str = ""

    @classmethod
    def from_data(cls, step: str, data: Mapping[str, Any], default_kind: DayKind, where: str) -> Period:
        days, months = data.get("days", 0), data.get("months", 0)
        if not isinstance(days, int) or not isinstance(months, int) or days < 0 or months < 0:
            raise RulebookError(f"{where}: days/months must be whole numbers ≥ 0")
        if not days and not months and "days" not in data:
            raise RulebookError(f"{where}: a period needs days or months")
        try:
            kind = DayKind(data.get("kind", default_kind))
            sense = Sense(data.get("sense", Sense.WITHIN))
        except ValueError as exc:
            raise RulebookError(f"{where}: {exc}") from exc
        return cls(step, days, kind, sense, months, data.get("from", ""), data.get("to", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, "months": self.months, "kind": str(self.kind),
                "sense": str(self.sense), "from": self.from_event, "to": self.to_event}


@dataclass(frozen=True)
class ResolvedRule:
    """One rule resolved for one project: its citation, mark, values and periods."""

    id: str
    citation: str
    mark: str
    title_en: str = ""
    title_zh: str = ""
    applies: bool = True
    values: Mapping[str, Any] = field(default_factory=dict)
    periods: Mapping[str, Period] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of ``key`` (strings for money and shares)."""
        return self.values.get(key, default)

    def decimal(self, key: str) -> Decimal | None:
        """A money amount or share as :class:`Decimal` (None when the rule has none)."""
        value = self.values.get(key)
        return None if value is None else _parse_decimal(value, f"{self.id}.{key}")

    def fraction(self, key: str) -> Fraction | None:
        """An exact share such as ``2/3``."""
        value = self.values.get(key)
        return None if value is None else _parse_fraction(value, f"{self.id}.{key}")

    def integer(self, key: str) -> int | None:
        value = self.values.get(key)
        return None if value is None else int(value)

    def flag(self, key: str) -> bool:
        return bool(self.values.get(key, False))

    def to_dict(self) -> dict[str, Any]:
        return {"citation": self.citation, "mark": self.mark, "title_en": self.title_en,
                "title_zh": self.title_zh, "applies": self.applies,
                "values": copy.deepcopy(dict(self.values)),
                "periods": {name: p.to_dict() for name, p in self.periods.items()}}

    @classmethod
    def from_dict(cls, rule_id: str, data: Mapping[str, Any]) -> ResolvedRule:
        periods = {name: Period.from_data(name, p, DayKind(p["kind"]), f"{rule_id}.{name}")
                   for name, p in data.get("periods", {}).items()}
        return cls(rule_id, data["citation"], data["mark"], data.get("title_en", ""),
                   data.get("title_zh", ""), bool(data.get("applies", True)),
                   dict(data.get("values", {})), periods)


# -- the rulebook -----------------------------------------------------------------------

class Rulebook:
    """The merged rule data and its content hash; resolves rules for projects."""

    def __init__(self, data: Mapping[str, Any], sources: Sequence[str] = (),
                 calendar: WorkCalendar | None = None) -> None:
        self.data = copy.deepcopy(dict(data))
        self.sources = tuple(sources)
        #: The working calendar projects count on (holiday overrides included).
        self.calendar = calendar or default_calendar()
        canonical = json.dumps(self.data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        #: sha256 of the canonical merged data, short: pinned by each project.
        self.version = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
        self._validate()

    @property
    def rule_ids(self) -> list[str]:
        return sorted(self.data.get("rules", {}))

    def day_kind(self, domain: Domain | str) -> DayKind:
        """The day kind a period of ``domain`` counts when it does not say."""
        return DayKind(self.data.get("domains", {}).get(str(domain), {}).get("day_kind", "calendar"))

    def resolve(self, rule_id: str, domain: Domain | str, procedure: Procedure | str,
                category: Category | str, facts: ProjectFacts | None = None) -> ResolvedRule:
        """Rule ``rule_id`` for one (domain, procedure, category) and the project's facts."""
        try:
            data = self.data["rules"][rule_id]
        except KeyError:
            raise RuleNotApplicable(f"no rule {rule_id!r} in the rulebook") from None
        domain, procedure, category = str(domain), str(procedure), str(category)
        facts = facts or ProjectFacts()
        where = f"rules.{rule_id}"
        merged = {k: v for k, v in data.items() if k not in ("by", "when")}
        scopes = sorted(((_Scope.parse(text, where), values) for text, values in data.get("by", {}).items()),
                        key=lambda pair: pair[0].specificity)
        for scope, values in scopes:
            if scope.matches(domain, procedure, category):
                merged = _deep_merge(merged, values)
        for i, entry in enumerate(data.get("when", [])):
            scope_texts = entry.get("scopes", ["*"])
            if any(_Scope.parse(t, f"{where}.when[{i}]").matches(domain, procedure, category)
                   for t in scope_texts) and facts.holds(entry.get("if", {}), f"{where}.when[{i}]"):
                merged = _deep_merge(merged, entry.get("set", {}))
        default_kind = self.day_kind(domain)
        periods = {
            name: Period.from_data(name, p, default_kind, f"{where}.periods.{name}")
            for name, p in merged.get("periods", {}).items() if p.get("applies", True)
        }
        mark = merged.get("mark", "")
        return ResolvedRule(
            id=rule_id, citation=merged.get("citation", ""), mark=mark,
            title_en=merged.get("title_en", ""), title_zh=merged.get("title_zh", ""),
            applies=bool(merged.get("applies", True)),
            values={k: v for k, v in merged.items() if k not in _META},
            periods=periods,
        )

    def for_project(self, domain: Domain | str, procedure: Procedure | str,
                    category: Category | str, budget: Decimal | str | int | None = None, *,
                    complex: bool = False, state_funded: bool | None = None,
                    calendar: WorkCalendar | None = None) -> ProjectRules:
        """Every rule resolved for one project.

        ``budget`` is the budget (GP) or estimated price (construction) in CNY; it decides
        conditional rules such as a 7-member GP committee from ¥10,000,000.
        """
        domain, procedure, category = Domain(domain), Procedure(procedure), Category(category)
        if procedure not in PROCEDURES_BY_DOMAIN[domain] or category not in CATEGORIES_BY_DOMAIN[domain]:
            raise RulebookError(f"{procedure}/{category} is not a procedure/category of {domain}")
        facts = ProjectFacts(budget, complex, state_funded)  # type: ignore[arg-type]
        rules = {rule_id: self.resolve(rule_id, domain, procedure, category, facts)
                 for rule_id in self.rule_ids}
        return ProjectRules(self.version, domain, procedure, category, facts, rules,
                            calendar or self.calendar)

    def _validate(self) -> None:
        data = self.data
        if not isinstance(data.get("rules"), Mapping) or not data["rules"]:
            raise RulebookError("the rulebook has no [rules]")
        for name, section in data.get("domains", {}).items():
            if name not in {d.value for d in Domain}:
                raise RulebookError(f"domains.{name}: unknown domain")
            try:
                DayKind(section.get("day_kind", "calendar"))
            except ValueError as exc:
                raise RulebookError(f"domains.{name}.day_kind: {exc}") from exc
        step_owner: dict[str, str] = {}
        for rule_id, rule in data["rules"].items():
            where = f"rules.{rule_id}"
            _validate_values(rule, where)
            for key in ("citation", "mark"):
                if not rule.get(key):
                    raise RulebookError(f"{where}: needs a {key}")
            variants = [rule, *rule.get("by", {}).values(), *(w.get("set", {}) for w in rule.get("when", []))]
            for variant in variants:
                if "mark" in variant and variant["mark"] not in MARKS:
                    raise RulebookError(f"{where}: mark must be one of {MARKS}")
                for step in variant.get("periods", {}):
                    if step_owner.setdefault(step, rule_id) != rule_id:
                        raise RulebookError(f"{where}: step {step!r} already belongs to {step_owner[step]}")
            for text in rule.get("by", {}):
                _Scope.parse(text, where)
        # Resolve every rule for every valid project shape, so a bad period or scope fails
        # at load time, not in the middle of a publication.
        for domain, procedures in PROCEDURES_BY_DOMAIN.items():
            for procedure in procedures:
                for category in CATEGORIES_BY_DOMAIN[domain]:
                    for facts in (ProjectFacts(), ProjectFacts(Decimal("1E12"), True, True)):
                        for rule_id in data["rules"]:
                            self.resolve(rule_id, domain, procedure, category, facts)


def load_rulebook(paths: Sequence[Path] | None = None, *, holidays: Sequence[Path] | None = None) -> Rulebook:
    """The packaged ``rulebook.toml`` with each override file of ``paths`` merged on top,
    in order (tables merge key by key, other values are replaced). ``holidays`` are
    holiday-table override files for the calendar (see ``holidays.toml``)."""
    sources = [RULEBOOK_TOML, *(paths or [])]
    merged: dict[str, Any] = {}
    for path in sources:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise RulebookError(f"{path}: {exc}") from exc
        merged = _deep_merge(merged, data)
    calendar = load_calendar(holidays) if holidays else None
    return Rulebook(merged, [str(p) for p in sources], calendar)


@lru_cache(maxsize=1)
def default_rulebook() -> Rulebook:
    """The packaged rulebook without overrides, loaded once."""
    return load_rulebook()


# -- one project's rules ----------------------------------------------------------------

@dataclass
class ProjectRules:
    """The rules in force for one project, pinned at publication.

    ``limits_for(step, start)`` gives each step's legal time limit as a :class:`Deadline`
    labelled with its rule and citation, so supervision can show it.
    """

    rulebook_version: str
    domain: Domain
    procedure: Procedure
    category: Category
    facts: ProjectFacts
    rules: Mapping[str, ResolvedRule]
    calendar: WorkCalendar = field(default_factory=default_calendar, repr=False, compare=False)

    @property
    def version(self) -> str:
        return self.rulebook_version

    def rule(self, rule_id: str) -> ResolvedRule:
        """The resolved rule, applicable or not."""
        try:
            return self.rules[rule_id]
        except KeyError:
            raise RuleNotApplicable(f"no rule {rule_id!r}") from None

    def applies(self, rule_id: str) -> bool:
        return rule_id in self.rules and self.rules[rule_id].applies

    def require(self, rule_id: str) -> ResolvedRule:
        """The rule, or :class:`RuleNotApplicable` when it does not apply here."""
        rule = self.rule(rule_id)
        if not rule.applies:
            raise RuleNotApplicable(f"rule {rule_id} does not apply to {self.domain}/{self.procedure}")
        return rule

    def steps(self) -> Iterator[tuple[ResolvedRule, Period]]:
        """Every time limit in force for this project."""
        for rule in self.rules.values():
            if rule.applies:
                yield from ((rule, period) for period in rule.periods.values())

    def has_step(self, step: str) -> bool:
        return any(period.step == step for _, period in self.steps())

    def period(self, step: str) -> tuple[ResolvedRule, Period]:
        """The rule and period of ``step`` (e.g. ``"contract"``, ``"bid_preparation"``)."""
        for rule, period in self.steps():
            if period.step == step:
                return rule, period
        raise RuleNotApplicable(f"step {step!r} has no time limit for {self.domain}/{self.procedure}")

    def limits_for(self, step: str, start: datetime) -> Deadline:
        """The legal limit of ``step`` counted from the event at ``start``."""
        rule, period = self.period(step)
        if period.months:
            deadline = self.calendar.add_months(start, period.months)
        else:
            deadline = self.calendar.add_days(start, period.days, period.kind)
        return _label(deadline, rule, period)

    def latest_start(self, step: str, end: datetime) -> Deadline:
        """Counted backwards: the last day on which the ``from`` event of ``step`` may
        happen for the period to fit before ``end`` (e.g. the last day for an objection
        deadline before a bid deadline). ``at`` is 24:00 of that day, the latest instant
        the event may take (inclusive)."""
        rule, period = self.period(step)
        if period.months:
            raise RuleNotApplicable(f"step {step!r} counts months; no backward count")
        day = self.calendar.latest_start_day(counting_day(end), period.days, period.kind)
        forward = self.calendar.add_days(end_of_day(day), period.days, period.kind)
        deadline = Deadline(start=end, days=period.days, kind=period.kind, last_day=day,
                            at=end_of_day(day), provisional=forward.provisional)
        return _label(deadline, rule, period, sense=Sense.WITHIN)

    def to_dict(self) -> dict[str, Any]:
        return {"rulebook_version": self.rulebook_version, "domain": str(self.domain),
                "procedure": str(self.procedure), "category": str(self.category),
                "facts": self.facts.to_dict(),
                "rules": {rule_id: rule.to_dict() for rule_id, rule in sorted(self.rules.items())}}

    def to_json(self) -> str:
        """Canonical JSON to pin with the project."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], calendar: WorkCalendar | None = None) -> ProjectRules:
        facts = data.get("facts", {})
        return cls(
            rulebook_version=data["rulebook_version"], domain=Domain(data["domain"]),
            procedure=Procedure(data["procedure"]), category=Category(data["category"]),
            facts=ProjectFacts(None if facts.get("budget") is None else Decimal(facts["budget"]),
                               bool(facts.get("complex", False)), facts.get("state_funded")),
            rules={rule_id: ResolvedRule.from_dict(rule_id, rule) for rule_id, rule in data["rules"].items()},
            calendar=calendar or default_calendar(),
        )

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any], calendar: WorkCalendar | None = None) -> ProjectRules:
        """The pinned rules back (JSON text, or the dict a JSON column gives back),
        counted on ``calendar`` (the packaged one by default)."""
        return cls.from_dict(json.loads(text) if isinstance(text, str) else text, calendar)


def _label(deadline: Deadline, rule: ResolvedRule, period: Period, sense: Sense | None = None) -> Deadline:
    return replace(deadline, rule=rule.id, citation=rule.citation, step=period.step,
                   sense=sense or period.sense)
