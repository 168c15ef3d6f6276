"""The pure card rules of electronic supervision, at named instants.

Limits come from the packaged rulebook (never literals here): the test names an instant
relative to the limit the rulebook computes, so a province that changes a number changes
the limit and the test still reads the same.
"""
from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from audits import supervision_rules as sr
from trading.rulebook import default_rulebook

AWARDED = datetime(2026, 4, 10, 2, 0, tzinfo=timezone.utc)  # Friday 10:00 in Shanghai
YELLOW = timedelta(hours=72)
ROOT = Path(__file__).resolve().parents[2]


def construction():
    return default_rulebook().for_project("construction", "open_tender", "works", "1000000")


def gp():
    return default_rulebook().for_project("gp", "open_tender", "goods", "1000000")


def contract_watch(done_at=None, **kw):
    rules = construction()
    return sr.Watch(1, "contract", rules.limits_for("contract", AWARDED), AWARDED, done_at, **kw)


class Instants:
    """Named instants around the contract limit (RULES E6) of an award at ``AWARDED``."""

    limit = construction().limits_for("contract", AWARDED).at
    well_before = AWARDED + timedelta(days=1)
    before_yellow = limit - YELLOW - timedelta(seconds=1)
    yellow = limit - YELLOW
    just_before = limit - timedelta(seconds=1)
    at_limit = limit
    after = limit + timedelta(days=2)


def test_before_the_yellow_threshold_there_is_no_card():
    for now in (Instants.well_before, Instants.before_yellow):
        assert sr.card_for(contract_watch(), now, YELLOW) is None
        assert sr.judge(contract_watch(), now, YELLOW).state is sr.StepState.PENDING


def test_inside_the_yellow_threshold_the_card_is_yellow():
    for now in (Instants.yellow, Instants.just_before):
        card = sr.card_for(contract_watch(), now, YELLOW)
        assert card is not None and card.severity == sr.YELLOW
        assert (card.rule, card.step, card.due_at) == ("E6", "contract", Instants.limit)
        assert card.citation == construction().rule("E6").citation
        assert "签订书面合同" in card.message_zh and "signing the contract" in card.message_en


def test_past_the_limit_the_card_is_red():
    for now in (Instants.at_limit, Instants.after):
        card = sr.card_for(contract_watch(), now, YELLOW)
        assert card is not None and card.severity == sr.RED and card.state == "overdue"
        assert "E6" in card.message_en and "overdue" in card.message_en


def test_done_in_time_there_is_no_card_even_long_after():
    watch = contract_watch(done_at=Instants.just_before)
    assert sr.card_for(watch, Instants.after + timedelta(days=100), YELLOW) is None
    assert sr.judge(watch, Instants.after, YELLOW).state is sr.StepState.DONE


def test_done_late_is_red_for_good():
    watch = contract_watch(done_at=Instants.after)
    card = sr.card_for(watch, Instants.after + timedelta(days=100), YELLOW)
    assert card is not None and card.severity == sr.RED and card.state == "late"
    # before the late act happened, the same data read at an earlier instant was overdue
    assert sr.card_for(watch, Instants.at_limit, YELLOW).state == "overdue"


def test_a_step_no_longer_required_earns_no_card():
    assert sr.card_for(contract_watch(expected=False), Instants.after, YELLOW) is None


def test_a_step_not_started_earns_no_card():
    assert sr.card_for(sr.Watch(1, "contract", None), Instants.after, YELLOW) is None


def test_the_yellow_threshold_is_a_setting():
    assert sr.card_for(contract_watch(), Instants.yellow, timedelta(0)) is None
    assert sr.card_for(contract_watch(), Instants.yellow - timedelta(hours=1), timedelta(hours=96)).severity == sr.YELLOW


def test_rule_E4_publicity_shorter_than_three_days_is_red_at_once():
    rules = construction()
    started = datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc)
    limit = rules.limits_for("publicity", started)
    short = sr.Watch(1, "publicity", limit, started, limit.at - timedelta(hours=1))
    long_enough = sr.Watch(1, "publicity", limit, started, limit.at)
    card = sr.card_for(short, started, YELLOW)  # judged when scheduled, not when it ends
    assert card is not None and card.severity == sr.RED and card.rule == "E4"
    assert "shorter" in card.message_en
    assert sr.card_for(long_enough, started, YELLOW) is None


def test_a_day_rule_is_red_when_the_later_event_is_too_early():
    rules = construction()
    documents = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    limit = rules.limits_for("bid_preparation", documents)
    assert sr.card_for(sr.Watch(1, "bid_preparation", limit, documents, limit.day_start - timedelta(seconds=1)),
                       documents, YELLOW).severity == sr.RED
    # 00:00 is 24:00 of the day before, so the first instant that counts is just after it
    on_the_day = limit.day_start + timedelta(hours=9)
    assert sr.card_for(sr.Watch(1, "bid_preparation", limit, documents, on_the_day), documents, YELLOW) is None


def test_a_pause_stops_the_clock_and_moves_the_limit_by_whole_days():
    pause = sr.Pause(AWARDED + timedelta(days=10), AWARDED + timedelta(days=12, hours=3))
    watch = contract_watch(pauses=(pause,))
    judged = sr.judge(watch, Instants.at_limit, YELLOW)
    assert judged.shifted_days == 3 and judged.due_at == Instants.limit + timedelta(days=3)
    assert sr.card_for(watch, Instants.at_limit, YELLOW).severity == sr.YELLOW
    # while a pause lasts there is no card at all
    open_pause = contract_watch(pauses=(sr.Pause(AWARDED + timedelta(days=10)),))
    assert sr.judge(open_pause, Instants.after, YELLOW).state is sr.StepState.PAUSED
    assert sr.card_for(open_pause, Instants.after, YELLOW) is None
    # a pause that began after the limit had passed does not excuse the lateness
    late_pause = contract_watch(pauses=(sr.Pause(Instants.after),))
    assert sr.card_for(late_pause, Instants.after + timedelta(days=1), YELLOW).severity == sr.RED


def test_provisional_limits_say_so():
    # chinese-calendar has official tables up to 2026 only: a 2027 limit is provisional
    rules = gp()
    start = datetime(2027, 1, 20, 2, 0, tzinfo=timezone.utc)
    limit = rules.limits_for("loser_refund", start)
    assert limit.provisional
    card = sr.card_for(sr.Watch(1, "loser_refund", limit, start), limit.at, YELLOW)
    assert card.provisional and card.rule == "B8"


def test_rule_H3_only_gp_suspensions_have_a_maximum():
    start = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    periods = {p.step: sr.PeriodRef(p.step, r.id, r.citation, str(p.sense), p.from_event, p.to_event)
               for r, p in gp().steps()}
    [watch] = sr.suspension_watches(1, [sr.Pause(start, None, "complaint")], periods, gp().limits_for)
    card = sr.card_for(watch, start + timedelta(days=31), YELLOW)
    assert card.severity == sr.RED and card.rule == "H3" and card.subject == "suspension:1"
    built = {p.step for r, p in construction().steps()}
    assert sr.SUSPENSION_STEP not in built


def test_next_check_is_the_earliest_yellow_or_red_instant():
    watch = contract_watch()
    assert sr.next_check([watch], Instants.well_before, YELLOW) == Instants.yellow
    assert sr.next_check([watch], Instants.yellow, YELLOW) == Instants.limit
    assert sr.next_check([watch], Instants.after, YELLOW) is None


def test_cards_sort_red_first_then_earliest_due():
    red = sr.breach_card(2, "committee", "D1", "法 37", "少", "short")
    yellow = sr.card_for(contract_watch(), Instants.yellow, YELLOW)
    assert sr.sort_cards([yellow, red]) == [red, yellow]
    assert red.key == "2/D1/committee/-"


def _bid(lot, bidder, **kw):
    sets = {k: frozenset(v) for k, v in kw.items() if isinstance(v, (set, list, tuple))}
    rest = {k: v for k, v in kw.items() if k not in sets}
    return sr.BidFacts(lot, bidder, **rest, **sets)


def test_collusion_indicators_from_identical_hashes_addresses_keys_and_accounts():
    bids = [
        _bid("L1", "A", org_id=1, ciphertexts={"c1"}, plaintexts={"p1"}, addresses={"10.0.0.1"},
             signing_keys={"k1"}, uploaders={"7"}, payer_accounts={"6222-1"}),
        _bid("L1", "B", org_id=2, ciphertexts={"c1"}, plaintexts={"p1"}, addresses={"10.0.0.1"},
             signing_keys={"k1"}, uploaders={"7"}, payer_accounts={"6222-1"}),
        _bid("L1", "C", org_id=3, ciphertexts={"c3"}, plaintexts={"p3"}, addresses={"10.0.0.3"},
             signing_keys={"k3"}, uploaders={"9"}, payer_accounts={"6222-3"}),
    ]
    found = {(i.kind, i.bidders) for i in sr.collusion_indicators(bids)}
    assert found == {(kind, ("A", "B")) for kind in (
        "identical_file", "identical_plaintext", "same_client_address", "same_signing_key",
        "same_uploader", "same_payer_account")}


def test_related_bidders_on_one_lot_only():
    bids = [
        _bid("L1", "A", org_id=1, legal_representative="张三"),
        _bid("L1", "B", org_id=2, legal_representative="张三"),
        _bid("L1", "C", org_id=3, controlled_by=1),
        _bid("L2", "D", org_id=4, controlled_by=9),
        _bid("L2", "E", org_id=5, controlled_by=9),
        _bid("L2", "A", org_id=1, legal_representative="李四"),
    ]
    found = {(i.lot, i.kind, i.bidders) for i in sr.collusion_indicators(bids)}
    assert found == {("L1", "same_legal_representative", ("A", "B")),
                     ("L1", "control_relationship", ("A", "C")),
                     ("L2", "control_relationship", ("D", "E"))}


def test_a_bidder_is_never_its_own_indicator():
    bids = [_bid("L1", "A", org_id=1, ciphertexts={"c1"}), _bid("L1", "A", org_id=1, ciphertexts={"c1", "c2"})]
    assert sr.collusion_indicators(bids) == []


def test_complaint_kinds_name_steps_of_the_rulebook():
    steps = {p.step for rules in (construction(), gp()) for _, p in rules.steps()}
    for kind in sr.COMPLAINT_KINDS.values():
        assert set(kind.steps) & steps, kind.name
        assert kind.filing_step is None or kind.filing_step in steps


@pytest.mark.parametrize("name", ["audits/supervision_rules.py"])
def test_the_card_rules_are_pure(name):
    tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
    imported = set()
    clock_calls = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
                   ("time", "time"), ("time", "time_ns")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            owner = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            assert (owner, node.func.attr) not in clock_calls, f"line {node.lineno} reads the clock"
    assert not imported & {"flask", "sqlalchemy", "flask_sqlalchemy", "trading", "bidding", "core"}
